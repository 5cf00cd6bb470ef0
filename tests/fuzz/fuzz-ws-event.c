/* A websocket frame through the router's scans and the consumer's event parser,
 * whose one-pass scan must agree with jansson's road wherever it settles. */
#include "event.h"
#include "fuzz.h"
#include "kline.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *t = (const char *)data;
	size_t off = 0, len = size;
	char sym[32];
	int64_t e;
	json_t *j;
	struct kl_event ev, scanned;
	struct kl_evview v;
	enum kl_verdict r;

	if (kl_json_member(t, size, "data", &off, &len) < 0) {
		off = 0;
		len = size;
	}
	kl_json_member_string(t + off, len, "s", sym, sizeof(sym));
	kl_json_member_int(t + off, len, "E", &e);
	memset(&ev, 0, sizeof(ev));
	memset(&scanned, 0, sizeof(scanned));
	j = json_loadb(t + off, len, 0, NULL);
	r = j ? kl_event_from_json(j, &ev) : KL_KLINE_EVENT;
	json_decref(j);
	if (r == KL_KLINE_OK)
		kl_kline_check(&ev.k, 0, INT64_MAX);
	if (kl_event_scan(t + off, len, &v)) {
		enum kl_verdict s = kl_event_judge(&v, &scanned);
		if (s != r || (s == KL_KLINE_OK && memcmp(&scanned, &ev, sizeof(ev)) != 0))
			abort();
	}
	return 0;
}
