/* Dump lines through the CSV parser and the checks. */
#include "fuzz.h"
#include "kline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *t = (const char *)data;
	size_t start = 0;
	struct kl_kline k;

	for (size_t i = 0; i <= size; i++) {
		if (i == size || t[i] == '\n') {
			if (kl_kline_from_csv(t + start, i - start, &k) == KL_KLINE_OK)
				kl_kline_check(&k, 0, INT64_MAX);
			start = i + 1;
		}
	}
	return 0;
}
