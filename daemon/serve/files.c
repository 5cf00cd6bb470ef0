/*
 * The page's files, from the assets directory ([http] assets). Invariant
 * 2 of http.c: only the names of a fixed table are ever opened; no path
 * from the request reaches the file system.
 */
#include "http_int.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Invariant 2: the only files ever served. */
static const struct {
	const char *path, *file, *mime;
} files[] = {
    {"/", "index.html", "text/html; charset=utf-8"},
    {"/index.html", "index.html", "text/html; charset=utf-8"},
    {"/app.js", "app.js", "text/javascript; charset=utf-8"},
    {"/app.css", "app.css", "text/css; charset=utf-8"},
    {"/lightweight-charts.js", "lightweight-charts.standalone.production.js",
     "text/javascript; charset=utf-8"},
};

/* Scripts only from here; styles may be inline because lightweight-charts
 * applies one (the page test fails on any CSP violation in the console). */
static const char csp[] = "content-security-policy: default-src 'none'; script-src 'self'; "
			  "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
			  "connect-src 'self'; frame-ancestors 'none'\r\n"
			  "x-content-type-options: nosniff\r\n";

int kl__files_serve(struct lws *wsi, struct pss *pss, struct kl_http *http, int i)
{
	const char *dir = http->conf->http_assets ? http->conf->http_assets : "(none)";
	char path[4096], msg[4200];
	int n;

	snprintf(path, sizeof(path), "%s/%s", dir, files[i].file);
	if (access(path, R_OK) < 0) {
		snprintf(msg, sizeof(msg), "page file %s missing from the assets directory %s",
			 files[i].file, dir);
		return kl__http_respond_error(wsi, pss, 404, msg);
	}
	n = lws_serve_http_file(wsi, path, files[i].mime, csp, (int)strlen(csp));
	if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi)))
		return -1;
	return 0;
}

int kl__files_find(const char *uri)
{
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (!strcmp(uri, files[i].path))
			return (int)i;
	}
	return -1;
}
