/*
 * The plain client (kl_rest_new_plain): the same curl multi on the loop for
 * another host, the archives, without the exchange's policy. Split from
 * rest.c, which holds that policy.
 */
#include "rest_int.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

/*
 * A plain client's answer: everything but transport errors, 5xx and 429 is
 * the caller's to judge (a 404 is an answer); those are retried until
 * max_attempts, then the caller gets the failure, to go another way.
 */
void kl__rest_plain_finish(struct kl_rest *rest, struct req *q, CURLcode res, long status)
{
	struct kl_rest_reply reply = {0};
	char why[CURL_ERROR_SIZE + 64];

	if (res == CURLE_OK && status >= 200 && status < 500 && status != 429) {
		reply.status = status;
		reply.body = q->body ? q->body : "";
		reply.len = q->len;
		kl__rest_deliver(rest, q, &reply);
		return;
	}
	if (res != CURLE_OK)
		snprintf(why, sizeof(why), "%s",
			 q->too_large	? "response body too large"
			 : q->errbuf[0] ? q->errbuf
					: curl_easy_strerror(res));
	else
		snprintf(why, sizeof(why), "HTTP %ld", status);
	if (q->attempt + 1 < rest->max_attempts) {
		kl__rest_retry_later(rest, q, why);
		return;
	}
	kl_warn(rest->group, "GET %s: %s; given up after %u attempts", q->path, why,
		q->attempt + 1);
	reply.status = res == CURLE_OK ? status : 0;
	reply.body = why;
	reply.len = strlen(why);
	kl__rest_deliver(rest, q, &reply);
}

int kl_rest_new_plain(uv_loop_t *loop, const struct kl_conf *conf, const char *base,
		      const char *group, unsigned concurrency, unsigned max_attempts,
		      struct kl_rest **ret)
{
	int r = kl__rest_new(loop, conf, base, concurrency ? concurrency : 1, ret);

	if (r == 0) {
		(*ret)->plain = true;
		(*ret)->group = group;
		(*ret)->max_attempts = max_attempts ? max_attempts : 1;
	}
	return r;
}
