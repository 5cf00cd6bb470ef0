/* The decimal parser (issue 12: up to 20 integer digits), with checks of its own:
 * an accepted value prints back to itself, its nearest double agrees with glibc's
 * correctly rounded strtod, and a refusal leaves the result untouched. Space-
 * separated input also goes through the list form the store keeps for large klines. */
#include "dec.h"
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	kl_i128 v = -42, back = -1, list[8];
	char buf[64];
	size_t n;
	int r = kl_dec_parse(s, size, &v);

	if (r < 0) {
		if (v != -42 || (r != -EINVAL && r != -ERANGE && r != -EDOM))
			abort();
	} else {
		if (v < 0 || v > KL_DEC_MAX)
			abort();
		n = kl_dec_format8(v, buf, sizeof(buf));
		if (kl_dec_parse(buf, n, &back) != 0 || back != v)
			abort();
		if (kl_dec_double(v) != strtod(buf, NULL))
			abort();
		n = kl_dec_format(v, buf, sizeof(buf));
		if (kl_dec_parse(buf, n, &back) != 0 || back != v)
			abort();
	}
	for (size_t k = 1; k <= 8; k++) {
		if (kl_dec_parse_list(s, size, list, k) == 0) {
			char text[48 * 8];
			n = kl_dec_format_list(list, k, text, sizeof(text));
			if (kl_dec_parse_list(text, n, list, k) != 0)
				abort();
		}
	}
	return 0;
}
