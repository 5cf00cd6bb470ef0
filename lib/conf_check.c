/*
 * The validators behind conf.c's setters: text only, nothing stored.
 * Each names the problem in @p err and returns -EINVAL, so that a typo
 * exits 78 at start-up instead of failing every request, forever.
 */
#include "conf_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

int kl__conf_uint(const char *v, int64_t max, int64_t *ret, const char **end)
{
	int64_t x = 0;
	const char *p = v;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		x = x * 10 + (*p - '0');
		if (x > max)
			return -ERANGE;
	}
	*ret = x;
	*end = p;
	return 0;
}

int kl__conf_check_brokers(const char *v, char *err, size_t n)
{
	const char *p = v;

	if (*v && v[strlen(v) - 1] == ',')
		return kl__conf_fail(err, n, "'%s' ends with a comma", v);
	while (*p) {
		const char *e = strchr(p, ','), *colon = NULL;
		long port = 0;

		if (!e)
			e = p + strlen(p);
		for (const char *q = p; q < e; q++) {
			if (*q == ':')
				colon = q;
			else if (isspace((unsigned char)*q) || (unsigned char)*q < 0x20)
				return kl__conf_fail(
				    err, n, "'%s' is not HOST:PORT[,HOST:PORT...] or off", v);
		}
		for (const char *q = colon ? colon + 1 : e; q < e && port <= 65535; q++)
			port = isdigit((unsigned char)*q) ? port * 10 + (*q - '0') : 65536;
		if (!colon || colon == p || colon + 1 == e || port < 1 || port > 65535)
			return kl__conf_fail(err, n, "'%.*s' is not HOST:PORT (in '%s')",
					     (int)(e - p), p, v);
		p = *e ? e + 1 : e;
	}
	if (!*v)
		return kl__conf_fail(err, n, "must not be empty");
	return 0;
}

/* Kafka's own rule for topic names. */
int kl__conf_check_topic(const char *v, char *err, size_t n)
{
	size_t len = strlen(v);

	if (len == 0 || len > 249 || !strcmp(v, ".") || !strcmp(v, ".."))
		return kl__conf_fail(err, n, "'%s' is not a Kafka topic name (1 to 249 characters)",
				     v);
	for (const char *p = v; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
			return kl__conf_fail(
			    err, n,
			    "'%s' is not a Kafka topic name (letters, digits, '.', '_', '-')", v);
	}
	return 0;
}

/*
 * HOST[:PORT] or [IPv6][:PORT] up to the first '/': curl would take
 * "http://:80" or port 99999 and fail at every request, forever, with a
 * warning; a typo is the configuration's problem, not the network's.
 */
static int check_authority(const char *a, size_t len)
{
	const char *slash = memchr(a, '/', len), *end, *host_end, *colon;
	long port = 0;

	end = slash ? slash : a + len;
	if (memchr(a, '@', (size_t)(end - a)))
		return -EINVAL; /* credentials have no place in an exchange URL */
	if (a < end && *a == '[') {
		char buf[64];
		unsigned char addr[16];
		const char *close = memchr(a, ']', (size_t)(end - a));
		if (!close || (size_t)(close - a - 1) >= sizeof(buf))
			return -EINVAL;
		memcpy(buf, a + 1, (size_t)(close - a - 1));
		buf[close - a - 1] = '\0';
		if (inet_pton(AF_INET6, buf, addr) != 1)
			return -EINVAL;
		host_end = close + 1;
		if (host_end < end && *host_end != ':')
			return -EINVAL;
	} else {
		host_end = memchr(a, ':', (size_t)(end - a));
		if (!host_end)
			host_end = end;
		if (host_end == a)
			return -EINVAL;
		for (const char *q = a; q < host_end; q++) {
			if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_')
				return -EINVAL;
		}
	}
	if (host_end == end)
		return 0;
	colon = host_end;
	if (colon + 1 == end)
		return -EINVAL;
	for (const char *q = colon + 1; q < end; q++) {
		if (!isdigit((unsigned char)*q) || port > 65535)
			return -EINVAL;
		port = port * 10 + (*q - '0');
	}
	return port >= 1 && port <= 65535 ? 0 : -EINVAL;
}

int kl__conf_check_url(const char *v, bool ws, size_t *ret, char *err, size_t n)
{
	static const char *const schemes[2][2] = {{"http://", "https://"}, {"ws://", "wss://"}};
	const char *const *sc = schemes[ws];
	size_t len = strlen(v), skip;

	if (strncmp(v, sc[0], strlen(sc[0])) == 0)
		skip = strlen(sc[0]);
	else if (strncmp(v, sc[1], strlen(sc[1])) == 0)
		skip = strlen(sc[1]);
	else
		return kl__conf_fail(err, n, "'%s' is not a %s or %s URL", v, sc[0], sc[1]);
	while (len > skip && v[len - 1] == '/')
		len--;
	if (len == skip)
		return kl__conf_fail(err, n, "'%s' has no host", v);
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)v[i] <= 0x20 || v[i] == '?' || v[i] == '#')
			return kl__conf_fail(err, n, "'%s' must be a bare base URL", v);
	}
	if (check_authority(v + skip, len - skip) < 0)
		return kl__conf_fail(err, n,
				     "'%s' has no valid HOST[:PORT] (port 1 to 65535, [IPv6])", v);
	*ret = len;
	return 0;
}

/* An IPv4 or IPv6 address ("[...]" for IPv6) or "localhost": what a listener binds. */
static bool listen_addr(const char *a, size_t len)
{
	char buf[64];
	unsigned char addr[16];

	if (len >= 2 && a[0] == '[' && a[len - 1] == ']') {
		a++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, a, len);
	buf[len] = '\0';
	return !strcmp(buf, "localhost") || inet_pton(AF_INET, buf, addr) == 1 ||
	       inet_pton(AF_INET6, buf, addr) == 1;
}

int kl__conf_check_listen(const char *v, char *err, size_t n)
{
	const char *colon = strrchr(v, ':');
	int64_t port;
	const char *end;

	if (!colon || colon == v || kl__conf_uint(colon + 1, 65535, &port, &end) < 0 || *end ||
	    port == 0)
		return kl__conf_fail(err, n, "'%s' is not ADDR:PORT (e.g. 127.0.0.1:8642) or off",
				     v);
	if (!listen_addr(v, (size_t)(colon - v)))
		return kl__conf_fail(err, n, "'%.*s' is not an IP address or localhost",
				     (int)(colon - v), v);
	return 0;
}
