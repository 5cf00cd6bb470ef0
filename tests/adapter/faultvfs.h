/*
 * A VFS wrapping the default one that fails the Nth call of one of its
 * methods, SQLite's own way (test_vfs.c, test_devsym.c): for the adapter
 * tests of daemon/store/.
 */
#ifndef KL_TEST_FAULTVFS_H
#define KL_TEST_FAULTVFS_H

#include <stdbool.h>

enum fault_point { P_READ, P_WRITE, P_SHORT_WRITE, P_SYNC, P_LOCK, P_TRUNCATE, P_SHM_LOCK };

struct fault {
	bool armed;
	enum fault_point point;
	int countdown; /* calls of point until the first failure */
	int rc;
	bool persistent; /* once failed, every later call fails too */
	int fired;	 /* failures injected */
};

extern struct fault fault;

/* Once per process: the wrapper becomes the default VFS, so kl_store_open uses it. */
void fault_vfs_register(void);

/* Fail the @p n th call of @p p with @p rc (and every later one if @p persistent). */
void fault_arm(enum fault_point p, int n, int rc, bool persistent);

#endif
