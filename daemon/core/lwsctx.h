/*
 * libwebsockets contexts on the daemon's foreign libuv loop, brought to
 * their end. lws 4.1.6 closes a context's connections and handles on
 * lws_context_destroy(), but with a foreign loop it frees the context
 * itself only when lws_context_destroy() is called once more after those
 * handles have closed (seen under valgrind: ~1 MB per context otherwise).
 * Each context registers a slot here (lws's info.pcontext, which lws
 * clears once it has really freed the context, so a context lws finished
 * on its own is never touched again); kl_lwsctx_finish() makes the second
 * call once the loop has run dry.
 */
#pragma once

struct lws_context;

/**
 * A slot for a new context: pass it as info.pcontext and store the
 * context there once created. @return the slot, or NULL when all are in
 * use (the context then simply is not finished: a leak, not a crash).
 */
struct lws_context **kl_lwsctx_slot(void);

/** Close the context in @p slot (its handles close as the loop runs on). NULL is fine. */
void kl_lwsctx_destroy(struct lws_context **slot);

/**
 * Free what lws left behind: call after uv_run() returned, then run the
 * loop once more before uv_loop_close().
 */
void kl_lwsctx_finish(void);

/**
 * lws has one log hook for the whole process, so the page's server and the
 * websocket client share this one (each setting its own made the last one
 * to start log the other's lines). Errors and warnings go to klined's log
 * as "lws" (notices too at debug level), except what lws 4.1.6 says at error
 * level about every connection it adopts (the page's: daemon/serve/
 * httplisten.c), which is debug. Call before creating a context.
 */
void kl_lwsctx_log_init(void);
