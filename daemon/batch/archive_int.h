/*
 * Inside the archive (archive.c: the files' state machines; archive_queue.c:
 * what is asked). Nothing else includes this.
 */
#pragma once

#include "archive.h"
#include "archplan.h"
#include "load.h"
#include "metrics.h"
#include "rest.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * Files under way: enough to keep the link busy behind the 100 ms each
 * answer waits (a daily file is ~65 kB, 5 ms of a 100 Mbit/s link), and no
 * more days of klines than about four months, which bounds the memory
 * (zips and parsed rows waiting for the store) to some tens of MB.
 */
#define MAX_FILES	32
#define MAX_DAYS	124
#define MAX_ATTEMPTS	4 /* per request, for transport errors and 5xx */
#define MAX_UNREACHABLE 3 /* transport failures in a row that switch the archive off */
#define MAX_BAD_SUM	2 /* downloads of a file whose sha256 does not match */
#define PLAN_CHUNK	64
#define PROGRESS_MS	5000 /* between progress lines */

struct asym {
	const char *symbol; /* borrowed */
	int64_t sid;
	char (*tried)[11]; /* periods asked in this process (invariant 4) */
	size_t ntried, cap;
	size_t open;	     /* files waiting or under way */
	int64_t loaded_from; /* the oldest file loaded since the last day refresh, or -1 */
};

struct afile {
	struct afile *next;
	struct kl_archive *a;
	size_t sym;
	struct kl_arch_file f;
	int64_t keep_from, hole_to; /* the part of the file the hole wants */
	char name[48];		    /* SYMBOL-1m-PERIOD.zip */
	char path[160];		    /* /data/spot/.../NAME */
	char sha[65];
	unsigned bad_sums;
	unsigned pending;	     /* of the CHECKSUM and the zip, the answers still to come */
	unsigned days;		     /* of klines the file holds: its share of MAX_DAYS */
	long sum_status, zip_status; /* 0: a transport failure (then why says which) */
	bool sum_ok;		     /* the CHECKSUM was a sha256sum line for this file */
	void *zip;		     /* the zip's bytes (owned), once it came with 200 */
	size_t zlen;
	char why[96];
};

struct kl_archive {
	uv_loop_t *loop;
	const struct kl_conf *conf;
	struct kl_rest *http;
	const char *url; /* borrowed from conf */
	struct asym *syms;
	size_t nsyms, capsyms;
	struct afile *head, *tail; /* waiting, in order */
	size_t waiting, active;
	unsigned active_days; /* of the active files */
	unsigned unreachable; /* transport failures in a row */
	struct kl_archive_stats stats;
	kl_archive_cb cb;
	void *ud;
	int64_t now_ms;		/* the exchange's time of the last kl_archive_add */
	uint64_t started, said; /* uv_now() of the run's start and its last progress line */
	uint64_t run_files;	/* files of the run under way, and done of them */
	uint64_t run_done;
	struct kl_load *load; /* parses and stores the files off the loop */
	unsigned refreshing;  /* symbols whose days the loader refreshes */
	int failed;	      /* a store failure: the run ends with it */
	bool running, off;
};

/**
 * Queue @p n files of symbol @p sym for the part [@p from, @p to) of a hole,
 * at the front when @p front (a month's days replacing it). @return how many
 * were queued, or -ENOMEM.
 */
int kl__archive_queue(struct kl_archive *a, size_t sym, const struct kl_arch_file *files, size_t n,
		      int64_t from, int64_t to, bool front);
