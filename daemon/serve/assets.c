#include "assets.h"

#include "conf.h"
#include "log.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return 0;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* BUILD/web when the binary is BUILD/daemon/klined of a meson build; the
 * build path is found at run time, never compiled in, so the installed
 * binary (and the Debian one) stays the same wherever it was built. */
static int build_web(char *out, size_t n)
{
	char *exe = realpath("/proc/self/exe", NULL);
	char *slash;
	int ok = 0;

	if (!exe)
		return 0;
	slash = strrchr(exe, '/');
	if (slash && slash > exe && !strcmp(slash, "/klined")) {
		*slash = '\0';
		slash = strrchr(exe, '/');
		if (slash && !strcmp(slash, "/daemon")) {
			*slash = '\0';
			ok = is_dir(exe, "meson-private") && is_dir(exe, "web") &&
			     (size_t)snprintf(out, n, "%s/web", exe) < n;
		}
	}
	free(exe);
	return ok;
}

int kl_assets_resolve(struct kl_conf *c)
{
	char dir[PATH_MAX], err[256], index[PATH_MAX + 16];
	int r;

	if (!c->http_listen || !strcmp(c->http_listen, "off"))
		return 0;
	if (c->http_assets && !strcmp(c->http_assets, KL_WEB_DIR) && build_web(dir, sizeof(dir))) {
		r = kl_conf_set_option(c, "http-assets", dir, err, sizeof(err));
		if (r < 0)
			return r;
	}
	if (!c->http_assets || !*c->http_assets)
		return 0; /* asked for no page: the API and /metrics only */
	snprintf(index, sizeof(index), "%s/index.html", c->http_assets);
	if (access(index, R_OK) < 0)
		kl_warn("http",
			"the page's files are not in %s ([http] assets): the page will answer 404",
			c->http_assets);
	return 0;
}
