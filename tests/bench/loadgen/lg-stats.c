/*
 * lg-stats.c - latency histograms for ma-loadgen.
 *
 * Log-linear buckets over microseconds (as HdrHistogram): values below 64
 * exactly, above that 64 sub-buckets per power of two, so any percentile
 * is within 1.6% of the true value; the maximum is kept exactly. Fixed
 * size, no allocation, O(1) insert.
 */
#include "lg.h"

static unsigned lg_hist_index(uint64_t v)
{
	if (v < LG_HIST_SUB)
		return (unsigned)v;
	unsigned e = 63 - (unsigned)__builtin_clzll(v);	/* >= 6 */
	unsigned idx = LG_HIST_SUB + (e - 6) * LG_HIST_SUB
		+ (unsigned)((v >> (e - 6)) & (LG_HIST_SUB - 1));
	return idx < LG_HIST_BUCKETS ? idx : LG_HIST_BUCKETS - 1;
}

/* The middle of a bucket, in microseconds. */
static double lg_hist_value(unsigned idx)
{
	if (idx < LG_HIST_SUB)
		return idx;
	unsigned e = (idx - LG_HIST_SUB) / LG_HIST_SUB + 6;
	uint64_t m = LG_HIST_SUB + (idx - LG_HIST_SUB) % LG_HIST_SUB;
	double lo = (double)(m << (e - 6));
	return lo + (double)(1ull << (e - 6)) / 2.0;
}

void lg_hist_add(struct lg_hist *h, uint64_t us)
{
	h->b[lg_hist_index(us)]++;
	h->n++;
	if (us > h->max_us)
		h->max_us = us;
}

void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src)
{
	for (unsigned i = 0; i < LG_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->n += src->n;
	if (src->max_us > dst->max_us)
		dst->max_us = src->max_us;
}

/* Percentile pct (0..100) in milliseconds; 0 when empty. */
double lg_hist_pct_ms(const struct lg_hist *h, double pct)
{
	if (!h->n)
		return 0;
	uint64_t want = (uint64_t)((double)h->n * pct / 100.0 + 0.999999);
	uint64_t seen = 0;

	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			double v = lg_hist_value(i);
			if (v > (double)h->max_us)
				v = (double)h->max_us;
			return v / 1000.0;
		}
	}
	return (double)h->max_us / 1000.0;
}
