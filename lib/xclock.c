#include "xclock.h"

static void believe(struct kl_xclock *c, int64_t server_ms, uint64_t mono_ms)
{
	c->ms = server_ms;
	c->at = mono_ms;
	c->doubts = 0;
}

bool kl_xclock_read(struct kl_xclock *c, int64_t server_ms, uint64_t mono_ms, int64_t witness_ms)
{
	int64_t ref, step;

	if (c->ms == 0) {
		believe(c, server_ms, mono_ms);
		return true;
	}
	/* Where the believed clock has got to at real speed, or the witness if later. */
	ref = c->ms + (int64_t)(mono_ms - c->at);
	if (witness_ms > ref)
		ref = witness_ms;
	if (server_ms <= ref + KL_XCLOCK_JUMP_MS && server_ms >= c->ms - KL_XCLOCK_JUMP_MS) {
		believe(c, server_ms, mono_ms);
		return true;
	}
	/* A run of doubted readings that go on from each other: the jump may be real. */
	step = server_ms - c->doubt_ms;
	if (c->doubts && step >= 0 &&
	    step <= (int64_t)(mono_ms - c->doubt_at) + KL_XCLOCK_JUMP_MS) {
		c->doubts++;
	} else {
		c->doubts = 1;
		c->doubt_from = mono_ms;
	}
	c->doubt_ms = server_ms;
	c->doubt_at = mono_ms;
	if (c->doubts >= KL_XCLOCK_CONFIRM && mono_ms - c->doubt_from >= KL_XCLOCK_CONFIRM_MS) {
		believe(c, server_ms, mono_ms);
		return true;
	}
	return false;
}
