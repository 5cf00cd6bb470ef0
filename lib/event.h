/*
 * The websocket kline event (`{"e":"kline","E":..,"s":..,"k":{..}}`, the
 * `data` of a combined stream), as the consumer reads it from Kafka: one
 * scan of the text for the shape Binance sends, jansson for anything else.
 * Both roads end in the same judgement, so an event gets the same verdict
 * and the same fields whichever one read it.
 */
#pragma once

#include "kline.h"

/* One member's value as read: its JSON type, a string's bytes or an integer. */
enum kl_jtype { KL_J_NONE, KL_J_STRING, KL_J_INT, KL_J_TRUE, KL_J_FALSE, KL_J_OTHER };

struct kl_jval {
	enum kl_jtype type;
	const char *s; /* KL_J_STRING: borrowed, len bytes (NUL-terminated or not) */
	size_t len;
	int64_t i; /* KL_J_INT */
};

/* The members an event is judged on; a missing one is KL_J_NONE. */
enum { KL_EV_O, KL_EV_H, KL_EV_L, KL_EV_C, KL_EV_V, KL_EV_Q, KL_EV_TV, KL_EV_TQ, KL_EV_NDEC };
struct kl_evview {
	bool object, k_object; /* the text, and its "k", are objects */
	struct kl_jval e, E, s, t, T, i, x, n, dec[KL_EV_NDEC];
};

/**
 * Judge an event from its members (either road's). @p v is borrowed.
 * @return KL_KLINE_OK with @p ev filled, or the verdict (ev is then partial).
 */
enum kl_verdict kl_event_judge(const struct kl_evview *v, struct kl_event *ev);

/**
 * Read @p text in one pass if it has the plain shape of Binance's events:
 * one object, string values without escapes or bytes outside printable
 * ASCII, integers, booleans, null, a single nested object "k", no
 * repeated member that matters. @p v borrows from @p text.
 * @return true when that settled it (valid or not as an event), false when
 * only a full JSON parser can tell (escapes, reals, arrays, bad JSON).
 */
bool kl_event_scan(const char *text, size_t n, struct kl_evview *v);

/**
 * Judge an event that jansson parsed (the `data` of a combined stream).
 * @p data is borrowed. @return as kl_event_judge.
 */
enum kl_verdict kl_event_from_json(const json_t *data, struct kl_event *ev);

/**
 * Parse and judge an event from its JSON text: kl_event_scan, else
 * jansson and kl_event_from_json. @return as kl_event_judge.
 */
enum kl_verdict kl_event_parse(const char *text, size_t n, struct kl_event *ev);
