/*
 * INI files, read through inih: line numbers, keys given twice, and the
 * continuation lines of [exchange] symbols. The keys' table stays in conf.c.
 */
#include "conf.h"

#include "conf_int.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * inih as Debian builds it neither passes the handler a line number nor
 * stops at the first error (it returns the first error's line but keeps
 * calling the handler), and it splits lines longer than its buffer into
 * pieces it parses as lines. So the text is fed through our own reader,
 * which counts lines, and the message kept is the first one, with its line.
 */
struct ini_ctx {
	struct kl_conf *c;
	const char *p;	   /* the text not yet read */
	int line;	   /* of the line last read */
	int errline;	   /* of the first handler error, 0: none yet */
	int longline;	   /* of a line too long for inih's buffer, 0: none */
	bool indented;	   /* the line last read starts with blanks: inih's continuation */
	char msg[400];	   /* "[section] key: problem" of errline */
	struct seen *seen; /* keys given so far, to refuse a second value */
	size_t nseen;
};

/* "section\0key" of a key set in the file, and the line it was set on. */
struct seen {
	char *id;
	int line;
};

/*
 * A key given twice is refused: which of two values was meant is not ours
 * to guess. A continuation line (indented, inih's multi-line value) is
 * how [exchange] symbols grows past one line; for other keys it is refused.
 * @return 0 to set, 1 to append (symbols' continuation), -EINVAL with @p msg.
 */
static int note_key(struct ini_ctx *ctx, const char *section, const char *name, char *msg, size_t n)
{
	size_t ls = strlen(section), ln = strlen(name);
	struct seen *grown;
	char *id;

	for (size_t i = 0; i < ctx->nseen; i++) {
		if (strcmp(ctx->seen[i].id, section) != 0 ||
		    strcmp(ctx->seen[i].id + ls + 1, name) != 0)
			continue;
		if (ctx->indented && !strcmp(section, "exchange") && !strcmp(name, "symbols"))
			return 1;
		if (ctx->indented)
			return kl__conf_fail(
			    msg, n,
			    "continuation line (the value goes on from line %d); only "
			    "[exchange] symbols takes more than one line",
			    ctx->seen[i].line);
		return kl__conf_fail(msg, n, "given twice (lines %d and %d)", ctx->seen[i].line,
				     ctx->line);
	}
	grown = realloc(ctx->seen, (ctx->nseen + 1) * sizeof(*grown));
	if (!grown)
		return kl__conf_fail(msg, n, "out of memory");
	ctx->seen = grown;
	id = malloc(ls + ln + 2);
	if (!id)
		return kl__conf_fail(msg, n, "out of memory");
	memcpy(id, section, ls + 1);
	memcpy(id + ls + 1, name, ln + 1);
	ctx->seen[ctx->nseen++] = (struct seen){id, ctx->line};
	return 0;
}

static char *ini_read(char *str, int num, void *stream)
{
	struct ini_ctx *ctx = stream;
	const char *nl = strchr(ctx->p, '\n');
	size_t len = nl ? (size_t)(nl - ctx->p) + 1 : strlen(ctx->p);

	if (len == 0)
		return NULL;
	ctx->line++;
	ctx->indented = *ctx->p == ' ' || *ctx->p == '\t';
	if (num < 1 || len >= (size_t)num) {
		ctx->longline = ctx->line; /* stop here rather than misread it */
		return NULL;
	}
	memcpy(str, ctx->p, len);
	str[len] = '\0';
	ctx->p += len;
	return str;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *ctx = user;
	char msg[256];
	int how, r;

	if (!name) /* a section header alone */
		return 1;
	if ((how = note_key(ctx, section, name, msg, sizeof(msg))) < 0)
		goto bad;
	if (how == 1)
		r = kl_conf_add_symbols(ctx->c, value, msg, sizeof(msg));
	else
		r = kl_conf_set_key(ctx->c, section, name, value, msg, sizeof(msg));
	if (r == 0)
		return 1;
	if (r == -ENOENT)
		snprintf(msg, sizeof(msg), "unknown key");
bad:
	if (!ctx->errline) {
		ctx->errline = ctx->line;
		snprintf(ctx->msg, sizeof(ctx->msg), "[%s] %s: %s", section, name, msg);
	}
	return 0;
}

int kl_conf_load_ini(struct kl_conf *c, const char *text, const char *filename, char *err,
		     size_t errlen)
{
	struct ini_ctx ctx = {.c = c, .p = text};
	int r;

	r = ini_parse_stream(ini_read, &ctx, on_ini, &ctx);
	for (size_t i = 0; i < ctx.nseen; i++)
		free(ctx.seen[i].id);
	free(ctx.seen);
	if (r == 0 && !ctx.longline)
		return 0;
	if (r < 0)
		snprintf(err, errlen, "%s: out of memory", filename);
	else if (r == 0)
		snprintf(err, errlen, "%s:%d: line too long", filename, ctx.longline);
	else if (r != ctx.errline)
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
			 filename, r);
	else
		snprintf(err, errlen, "%s:%d: %s", filename, r, ctx.msg);
	return -EINVAL;
}
