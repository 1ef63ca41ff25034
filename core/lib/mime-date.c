/*
 * mime-date.c - ma_mime_parse_date(): RFC 5322 3.3 date-time, with the
 * obsolete forms of 4.3 that real mail still carries: no day of week,
 * two- and three-digit years (RFC 5322 4.3: 00-49 -> 20xx, 50-99 -> 19xx,
 * three digits + 1900), missing seconds, zone names UT/GMT/EST/EDT/CST/
 * CDT/MST/MDT/PST/PDT, military letters (read as +0000, which RFC 5322
 * says they effectively mean), no zone at all (+0000), comments anywhere,
 * '-' between day, month and year ("22-Nov-2026"), and full month names.
 */
#include <string.h>
#include <strings.h>

#include "core-private.h"
#include "mime-private.h"

static bool mime_is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Up to max digits; -1 if none. */
static long mime_date_num(const char **pp, unsigned max, unsigned *ndigits_r)
{
	const char *p = *pp;
	long v = 0;
	unsigned n = 0;

	while (*p >= '0' && *p <= '9' && n < max) {
		v = v * 10 + (*p - '0');
		p++;
		n++;
	}
	if (n == 0 || (*p >= '0' && *p <= '9'))
		return -1;
	*pp = p;
	if (ndigits_r != NULL)
		*ndigits_r = n;
	return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t mime_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int ma_mime_parse_date(const char *s, int64_t *t_r, int32_t *tz_minutes_r)
{
	static const char *const months[] = { "jan", "feb", "mar", "apr", "may",
		"jun", "jul", "aug", "sep", "oct", "nov", "dec" };
	static const struct { const char *name; int minutes; } zones[] = {
		{ "UT", 0 }, { "UTC", 0 }, { "GMT", 0 }, { "Z", 0 },
		{ "EST", -300 }, { "EDT", -240 }, { "CST", -360 }, { "CDT", -300 },
		{ "MST", -420 }, { "MDT", -360 }, { "PST", -480 }, { "PDT", -420 },
	};
	const char *p, *w;
	long day, year, hour, min, sec = 0;
	unsigned month = 0, nd;
	int tz = 0;

	*t_r = 0;
	*tz_minutes_r = 0;
	if (s == NULL)
		return -1;
	p = mime_skip_cfws(s);
	/* Optional day of week, with or without the comma. */
	if (mime_is_alpha(*p)) {
		while (mime_is_alpha(*p))
			p++;
		p = mime_skip_cfws(p);
		if (*p == ',')
			p = mime_skip_cfws(p + 1);
	}
	if ((day = mime_date_num(&p, 2, NULL)) < 1 || day > 31)
		return -1;
	p = mime_skip_cfws(p);
	if (*p == '-')
		p = mime_skip_cfws(p + 1);
	w = p;
	while (mime_is_alpha(*p))
		p++;
	if (p - w < 3)
		return -1;
	for (unsigned i = 0; i < 12; i++)
		if (strncasecmp(w, months[i], 3) == 0)
			month = i + 1;
	if (month == 0)
		return -1;
	p = mime_skip_cfws(p);
	if (*p == '-')
		p = mime_skip_cfws(p + 1);
	if ((year = mime_date_num(&p, 4, &nd)) < 0)
		return -1;
	if (nd == 2)
		year += year < 50 ? 2000 : 1900;
	else if (nd == 3)
		year += 1900;
	else if (nd == 1)
		return -1;
	p = mime_skip_cfws(p);
	if ((hour = mime_date_num(&p, 2, NULL)) < 0 || hour > 23)
		return -1;
	p = mime_skip_cfws(p);
	if (*p != ':')
		return -1;
	p = mime_skip_cfws(p + 1);
	if ((min = mime_date_num(&p, 2, NULL)) < 0 || min > 59)
		return -1;
	p = mime_skip_cfws(p);
	if (*p == ':') {
		p = mime_skip_cfws(p + 1);
		if ((sec = mime_date_num(&p, 2, NULL)) < 0 || sec > 60)
			return -1;
		if (sec == 60)
			sec = 59;	/* leap second: keep it in the minute */
		p = mime_skip_cfws(p);
	}
	if (*p == '+' || *p == '-') {
		const char *z = p + 1;
		long v = mime_date_num(&z, 4, &nd);
		if (v < 0 || nd != 4 || v % 100 > 59)
			return -1;
		tz = (int)((v / 100) * 60 + v % 100);
		if (*p == '-')
			tz = -tz;
	} else if (mime_is_alpha(*p)) {
		w = p;
		while (mime_is_alpha(*p))
			p++;
		size_t zl = (size_t)(p - w);
		for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
			if (strlen(zones[i].name) == zl &&
			    strncasecmp(w, zones[i].name, zl) == 0)
				tz = zones[i].minutes;
		/* Military letters and unknown names: +0000 (RFC 5322 4.3). */
	}
	if ((unsigned long)day > 28) {
		static const unsigned char mdays[] = { 31, 29, 31, 30, 31, 30, 31,
						       31, 30, 31, 30, 31 };
		if ((unsigned long)day > mdays[month - 1])
			return -1;
	}
	*t_r = mime_days_from_civil(year, month, (unsigned)day) * 86400 +
		hour * 3600 + min * 60 + sec - (int64_t)tz * 60;
	*tz_minutes_r = tz;
	return 0;
}
