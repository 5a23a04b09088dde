/*
 * ec_file.c - atomic file replacement and advisory locks (see ec_file.h).
 *
 * Why C: Lua's io library has no fsync, no rename that reports the
 * directory's durability, and no flock; a state file that must be valid
 * JSON after a SIGKILL at any instant needs all three.
 */
#define _GNU_SOURCE /* O_CLOEXEC, flock, nanosleep under -std=c11 */
#include "ec_file.h"

#include "ec_signal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Pushes nil and "what path: strerror(errno)"; returns 2. */
static int fail(lua_State *L, const char *what, const char *path, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
    return 2;
}

/* Writes all of buf to fd, past short writes and EINTR. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fsync of the directory that holds path, so that the rename itself
 * survives a crash of the machine (not only of the process). */
static int sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir)
            return -1;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int ec_file_lua_write_atomic(lua_State *L)
{
    size_t plen, len;
    const char *path = luaL_checklstring(L, 1, &plen);
    const char *text = luaL_checklstring(L, 2, &len);
    if (plen == 0 || plen > 4000 || strlen(path) != plen)
        return luaL_error(L, "envclone.core.write_file_atomic: bad path");
    static unsigned long counter;
    char tmp[4096 + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%lu", path, (long)getpid(), ++counter);
    /* the mode of a state file: it names objects, not secrets, but it is
     * nobody else's to read or change */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail(L, "cannot create", tmp, errno);
    if (write_all(fd, text, len) != 0 || fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        unlink(tmp);
        return fail(L, "cannot write", tmp, saved);
    }
    if (close(fd) != 0) {
        int saved = errno;
        unlink(tmp);
        return fail(L, "cannot write", tmp, saved);
    }
    if (rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        return fail(L, "cannot rename onto", path, saved);
    }
    if (sync_dir(path) != 0)
        return fail(L, "cannot sync the directory of", path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

typedef struct {
    int fd; /* -1 once unlocked */
} ec_lock;

static void sleep_seconds(double s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL); /* EINTR: back to the loop, which looks at the flag */
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* core.lock_file(path, seconds): an exclusive flock on path (created
 * 0600 when missing), waited for `seconds` at most (0: one try), polled
 * every 50 ms so that a caught signal ends the wait too. */
int ec_file_lua_lock(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Number wait = luaL_optnumber(L, 2, 0);
    if (!(wait >= 0) || wait > 86400)
        return luaL_error(L, "envclone.core.lock_file: seconds must be in [0, 86400]");
    ec_lock *lk = (ec_lock *)lua_newuserdata(L, sizeof *lk);
    lk->fd = -1;
    luaL_getmetatable(L, EC_LOCK_MT);
    lua_setmetatable(L, -2);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int saved = errno;
        fail(L, "cannot open the lock file", path, saved);
        lua_pushliteral(L, "error");
        return 3;
    }
    lk->fd = fd;
    double deadline = now_seconds() + (double)wait;
    long signals = ec_signal_pending();
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 1;
        int saved = errno;
        if (saved != EWOULDBLOCK && saved != EINTR) {
            close(fd);
            lk->fd = -1;
            fail(L, "cannot lock", path, saved);
            lua_pushliteral(L, "error");
            return 3;
        }
        double left = deadline - now_seconds();
        if (left <= 0 || ec_signal_pending() != signals) {
            close(fd);
            lk->fd = -1;
            lua_pushnil(L);
            if (ec_signal_pending() != signals)
                lua_pushfstring(L, "interrupted while waiting for the lock on %s", path);
            else
                lua_pushfstring(L, "%s is locked by another process", path);
            lua_pushliteral(L, "busy");
            return 3;
        }
        sleep_seconds(left < 0.05 ? left : 0.05);
    }
}

/* lock:unlock(): closing the descriptor releases the flock. */
static int l_unlock(lua_State *L)
{
    ec_lock *lk = (ec_lock *)luaL_checkudata(L, 1, EC_LOCK_MT);
    if (lk->fd >= 0) {
        close(lk->fd);
        lk->fd = -1;
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    ec_lock *lk = (ec_lock *)luaL_checkudata(L, 1, EC_LOCK_MT);
    lua_pushstring(L, lk->fd >= 0 ? "envclone.lock (held)" : "envclone.lock (released)");
    return 1;
}

static const luaL_Reg lock_methods[] = {
    { "unlock", l_unlock },
    { NULL, NULL }
};

void ec_file_init(lua_State *L)
{
    if (luaL_newmetatable(L, EC_LOCK_MT)) {
        lua_pushcfunction(L, l_unlock);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_unlock);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        ec_newlib(L, lock_methods);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, "envclone.lock");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}
