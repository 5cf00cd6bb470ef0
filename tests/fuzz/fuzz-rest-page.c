/* A /api/v3/klines body through the batch layer's parser and checks. */
#include "fuzz.h"
#include "kline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *arr = json_loadb((const char *)data, size, 0, NULL);
	struct kl_kline k;

	for (size_t i = 0; i < json_array_size(arr); i++) {
		if (kl_kline_from_json(json_array_get(arr, i), &k) == KL_KLINE_OK)
			kl_kline_check(&k, 0, INT64_MAX);
	}
	json_decref(arr);
	return 0;
}
