/* The fault VFS (faultvfs.h). */
#include "faultvfs.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

struct fault fault;

struct ffile {
	sqlite3_file base;
	sqlite3_file *real; /* allocated right after this struct */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static sqlite3_io_methods fault_io;

/* Does this call of @p p fail? */
static bool hit(enum fault_point p)
{
	if (!fault.armed || fault.point != p)
		return false;
	if (fault.fired && fault.persistent)
		return fault.fired++, true;
	if (fault.fired || --fault.countdown > 0)
		return false;
	fault.fired++;
	return true;
}

static sqlite3_file *real_of(sqlite3_file *f)
{
	return ((struct ffile *)f)->real;
}

static int f_close(sqlite3_file *f)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods ? r->pMethods->xClose(r) : SQLITE_OK;
}

static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	/* Reads fail inside statements (a cold cache), writes mostly at commit. */
	return hit(P_READ) ? fault.rc : real_of(f)->pMethods->xRead(real_of(f), buf, n, off);
}

static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	sqlite3_file *r = real_of(f);

	if (hit(P_WRITE))
		return fault.rc;
	if (hit(P_SHORT_WRITE)) {
		/* Half the bytes reach the file: a torn page, as a full disk leaves it. */
		r->pMethods->xWrite(r, buf, n / 2, off);
		return fault.rc;
	}
	return r->pMethods->xWrite(r, buf, n, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return hit(P_TRUNCATE) ? fault.rc : real_of(f)->pMethods->xTruncate(real_of(f), size);
}

static int f_sync(sqlite3_file *f, int flags)
{
	return hit(P_SYNC) ? fault.rc : real_of(f)->pMethods->xSync(real_of(f), flags);
}

static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return real_of(f)->pMethods->xFileSize(real_of(f), size);
}

static int f_lock(sqlite3_file *f, int lock)
{
	return hit(P_LOCK) ? fault.rc : real_of(f)->pMethods->xLock(real_of(f), lock);
}

static int f_unlock(sqlite3_file *f, int lock)
{
	return real_of(f)->pMethods->xUnlock(real_of(f), lock);
}

static int f_reserved(sqlite3_file *f, int *out)
{
	return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}

static int f_fcntl(sqlite3_file *f, int op, void *arg)
{
	return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}

static int f_sector(sqlite3_file *f)
{
	return real_of(f)->pMethods->xSectorSize(real_of(f));
}

static int f_devchar(sqlite3_file *f)
{
	return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}

static int f_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	return real_of(f)->pMethods->xShmMap(real_of(f), pg, pgsz, extend, pp);
}

static int f_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	/* Only taking a lock can be refused; releasing one always works. */
	if ((flags & SQLITE_SHM_LOCK) && hit(P_SHM_LOCK))
		return fault.rc;
	return real_of(f)->pMethods->xShmLock(real_of(f), off, n, flags);
}

static void f_shm_barrier(sqlite3_file *f)
{
	real_of(f)->pMethods->xShmBarrier(real_of(f));
}

static int f_shm_unmap(sqlite3_file *f, int del)
{
	return real_of(f)->pMethods->xShmUnmap(real_of(f), del);
}

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
	struct ffile *ff = (struct ffile *)f;
	int rc;

	(void)vfs;
	ff->real = (sqlite3_file *)(ff + 1);
	rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
	/* SQLite calls xClose only when pMethods is set: so set it exactly
	 * when the real file needs closing. */
	f->pMethods = ff->real->pMethods ? &fault_io : NULL;
	return rc;
}

/* The default VFS, wrapped, as the new default: kl_store_open uses it. */
void fault_vfs_register(void)
{
	if (real_vfs)
		return;
	real_vfs = sqlite3_vfs_find(NULL);
	assert_non_null(real_vfs);
	/* The real one's other methods (paths, randomness, time) work as they are. */
	fault_vfs = *real_vfs;
	fault_vfs.zName = "klined-fault";
	fault_vfs.szOsFile = (int)sizeof(struct ffile) + real_vfs->szOsFile;
	fault_vfs.pNext = NULL;
	fault_vfs.xOpen = f_open;
	fault_io = (sqlite3_io_methods){
	    .iVersion = 2, /* shared memory (WAL), no mmap */
	    .xClose = f_close,
	    .xRead = f_read,
	    .xWrite = f_write,
	    .xTruncate = f_truncate,
	    .xSync = f_sync,
	    .xFileSize = f_size,
	    .xLock = f_lock,
	    .xUnlock = f_unlock,
	    .xCheckReservedLock = f_reserved,
	    .xFileControl = f_fcntl,
	    .xSectorSize = f_sector,
	    .xDeviceCharacteristics = f_devchar,
	    .xShmMap = f_shm_map,
	    .xShmLock = f_shm_lock,
	    .xShmBarrier = f_shm_barrier,
	    .xShmUnmap = f_shm_unmap,
	};
	assert_int_equal(sqlite3_vfs_register(&fault_vfs, 1), SQLITE_OK);
}

void fault_arm(enum fault_point p, int n, int rc, bool persistent)
{
	fault.point = p;
	fault.countdown = n;
	fault.rc = rc;
	fault.persistent = persistent;
	fault.fired = 0;
	fault.armed = true;
}
