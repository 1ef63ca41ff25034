/*
 * imap-seqset.c - sequence sets (RFC 3501 section 9 sequence-set) and
 * mapping them onto the selected mailbox's view.
 *
 * A set is parsed into sorted, merged ranges in the command arena. The
 * number of ranges is bounded by the set's length (itself bounded by the
 * line limit), and the index list by the view's message count, so a client
 * cannot make us allocate more than O(line + mailbox).
 */
#include "imap-private.h"

#include <stdlib.h>
#include <string.h>

/* nz-number or "*"; 0 and leading zeros are refused. */
static int imap_seq_number(const char *s, size_t len, size_t *pos,
			   uint32_t max_value, uint32_t *out)
{
	size_t i = *pos;
	uint64_t v = 0;

	if (i < len && s[i] == '*') {
		*out = max_value;
		*pos = i + 1;
		return 0;
	}
	if (i >= len || s[i] < '1' || s[i] > '9')
		return -1;
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX)
			return -1;
		i++;
	}
	*out = (uint32_t)v;
	*pos = i;
	return 0;
}

static int imap_range_cmp(const void *a, const void *b)
{
	const struct imap_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : 0;
}

int imap_seqset_parse(struct ma_arena *a, const char *s, size_t len,
		      uint32_t max_value, struct imap_seqset *out)
{
	size_t pos = 0, n = 1, count = 0;
	struct imap_range *r;

	out->r = NULL;
	out->n = 0;
	if (s == NULL || len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == ',')
			n++;
	}
	r = ma_arena_alloc(a, n * sizeof(*r));
	while (pos < len) {
		uint32_t lo, hi;

		if (imap_seq_number(s, len, &pos, max_value, &lo) < 0)
			return -1;
		hi = lo;
		if (pos < len && s[pos] == ':') {
			pos++;
			if (imap_seq_number(s, len, &pos, max_value, &hi) < 0)
				return -1;
		}
		if (lo > hi) {
			uint32_t t = lo;

			lo = hi;
			hi = t;
		}
		r[count].lo = lo;
		r[count].hi = hi;
		count++;
		if (pos == len)
			break;
		if (s[pos] != ',' || pos + 1 == len)
			return -1;
		pos++;
	}
	qsort(r, count, sizeof(*r), imap_range_cmp);
	/* merge overlapping and adjacent ranges */
	size_t m = 0;
	for (size_t i = 0; i < count; i++) {
		if (m > 0 && (r[m - 1].hi == UINT32_MAX ||
			      r[i].lo <= r[m - 1].hi + 1)) {
			if (r[i].hi > r[m - 1].hi)
				r[m - 1].hi = r[i].hi;
		} else {
			r[m++] = r[i];
		}
	}
	out->r = r;
	out->n = (unsigned)m;
	return 0;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t v)
{
	unsigned lo = 0, hi = set->n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (v < set->r[mid].lo)
			hi = mid;
		else if (v > set->r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* First index whose uid >= v. */
static uint32_t imap_uid_lower_bound(const struct imap_selected *sel, uint32_t v)
{
	uint32_t lo = 0, hi = sel->count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (sel->msgs[mid].uid < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int imap_seqset_indexes(struct ma_arena *a, const struct imap_selected *sel,
			const char *set, size_t len, bool uid, uint32_t **idx_r,
			uint32_t *n_r)
{
	struct imap_seqset ss;
	uint32_t max_value, *idx, n = 0;

	*idx_r = NULL;
	*n_r = 0;
	if (sel == NULL)
		return -1;
	if (uid) {
		/* RFC 3501 6.4.8: "*" is the largest UID in use */
		max_value = sel->count > 0 ? sel->msgs[sel->count - 1].uid : 0;
		/* an empty mailbox: "*" matches nothing, "1:*" nothing */
		if (sel->count == 0) {
			if (imap_seqset_parse(a, set, len, 0, &ss) < 0 &&
			    imap_seqset_parse(a, set, len, 1, &ss) < 0)
				return -1;
			*idx_r = ma_arena_alloc(a, sizeof(uint32_t));
			return 0;
		}
	} else {
		max_value = sel->count;
	}
	if (imap_seqset_parse(a, set, len, max_value, &ss) < 0)
		return -1;
	idx = ma_arena_alloc(a, (sel->count > 0 ? sel->count : 1) *
			     sizeof(uint32_t));
	for (unsigned i = 0; i < ss.n; i++) {
		if (!uid) {
			/* "*" in an empty mailbox is 0: out of range too */
			if (ss.r[i].lo == 0 || ss.r[i].hi > sel->count)
				return -1;
			for (uint32_t v = ss.r[i].lo; v <= ss.r[i].hi; v++)
				idx[n++] = v - 1;
		} else {
			for (uint32_t j = imap_uid_lower_bound(sel, ss.r[i].lo);
			     j < sel->count && sel->msgs[j].uid <= ss.r[i].hi; j++)
				idx[n++] = j;
		}
	}
	*idx_r = idx;
	*n_r = n;
	return 0;
}
