/* A websocket frame through the router's scans and the consumer's event parser. */
#include "fuzz.h"
#include "kline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *t = (const char *)data;
	size_t off = 0, len = size;
	char sym[32];
	int64_t e;
	json_t *j;
	struct kl_event ev;

	if (kl_json_member(t, size, "data", &off, &len) < 0) {
		off = 0;
		len = size;
	}
	kl_json_member_string(t + off, len, "s", sym, sizeof(sym));
	kl_json_member_int(t + off, len, "E", &e);
	j = json_loadb(t + off, len, 0, NULL);
	if (j && kl_event_from_json(j, &ev) == KL_KLINE_OK)
		kl_kline_check(&ev.k, 0, INT64_MAX);
	json_decref(j);
	return 0;
}
