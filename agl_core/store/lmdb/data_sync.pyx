# cython: language_level=3
"""The store's data file synced by a thread that never holds the GIL (``meta_sync.py`` uses it).

A durable LMDB commit syncs twice: the data pages, then the meta page that makes them the current
snapshot. With the meta page's sync deferred (``metasync=False``), the commit ends once the meta
page is written, and a ``fdatasync`` of the data file begun after that makes the commit durable.
This thread runs those syncs, so the store writer goes on with its next group meanwhile; it never
takes the GIL (a Python thread that did took it twice per group and gave the gain back:
docs/server.md, "Many workers"), and tells the event loop of each finished sync through an eventfd.

Numbers: the writer numbers its commits 1, 2, ...; ``request(n)`` asks for a sync that covers
commit ``n`` and every one before it; ``state()`` says up to which commit the syncs done so far
cover, and the errno of the first that failed (sticky: after a failed ``fdatasync`` the kernel may
have dropped the pages it could not write, so no later sync can vouch for them).

Built by ``pip install`` (setup.py, Cython); where it is not built, commits sync their meta page
themselves, as LMDB does by default.
"""

import os

from libc.errno cimport errno
from libc.stdint cimport uint64_t
from posix.unistd cimport close, fdatasync, read, write


cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    int EFD_CLOEXEC
    int EFD_NONBLOCK


cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    ctypedef unsigned long pthread_t
    pthread_t pthread_self()
    int pthread_setname_np(pthread_t, const char*)
    int pthread_mutex_init(pthread_mutex_t*, void*)
    int pthread_mutex_destroy(pthread_mutex_t*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)
    int pthread_cond_init(pthread_cond_t*, void*)
    int pthread_cond_destroy(pthread_cond_t*)
    int pthread_cond_wait(pthread_cond_t*, pthread_mutex_t*)
    int pthread_cond_signal(pthread_cond_t*)


cdef class DataSyncer:
    """Syncs one file on request, on the thread that calls :meth:`run`.

    :param path: the file (LMDB's ``data.mdb``); opened here, so the sync does not depend on
        py-lmdb exposing its descriptor (``fdatasync`` applies to the file, whichever descriptor).
    """

    cdef int fd
    cdef readonly int notify_fd  # readable once a sync has finished (the event loop watches it)
    cdef pthread_mutex_t lock
    cdef pthread_cond_t cond
    cdef bint have_lock
    cdef bint have_cond
    cdef uint64_t requested  # the highest commit asked for
    cdef uint64_t started    # the commit the sync in progress (or the last one) covers
    cdef uint64_t synced     # the highest commit a finished sync covers
    cdef int error           # errno of the first failed sync, 0 if none
    cdef bint closing

    def __cinit__(self, path):
        self.fd = -1
        self.notify_fd = -1
        if pthread_mutex_init(&self.lock, NULL) != 0:
            raise OSError("could not create the data syncer's mutex")
        self.have_lock = True
        if pthread_cond_init(&self.cond, NULL) != 0:
            raise OSError("could not create the data syncer's condition variable")
        self.have_cond = True
        self.fd = os.open(os.fspath(path), os.O_RDWR | os.O_CLOEXEC)
        self.notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)
        if self.notify_fd < 0:
            raise OSError(errno, f"eventfd: {os.strerror(errno)}")

    def __dealloc__(self):
        self._release()
        if self.have_cond:
            pthread_cond_destroy(&self.cond)
        if self.have_lock:
            pthread_mutex_destroy(&self.lock)

    cdef void _release(self) noexcept:
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1
        if self.notify_fd >= 0:
            close(self.notify_fd)
            self.notify_fd = -1

    def run(self):
        """Sync whenever asked, until :meth:`close` (a sync asked for before that is still done).
        Holds the GIL only to enter and to return. The thread is named ``agl-data-sync`` for the
        system (``top -H``, ``/proc/<pid>/task/*/comm``): it is not one of the Python threads that
        agl-server pins to one CPU under load."""
        with nogil:
            pthread_setname_np(pthread_self(), b"agl-data-sync")
            self._serve()

    cdef void _serve(self) noexcept nogil:
        cdef uint64_t target
        cdef uint64_t one = 1
        cdef int rc
        cdef int failure
        while True:
            pthread_mutex_lock(&self.lock)
            while self.requested <= self.started and not self.closing:
                pthread_cond_wait(&self.cond, &self.lock)
            if self.requested <= self.started:  # closing, nothing left to sync
                pthread_mutex_unlock(&self.lock)
                return
            target = self.requested
            self.started = target
            pthread_mutex_unlock(&self.lock)
            rc = fdatasync(self.fd)
            failure = errno
            self._settle(target, rc, failure)
            write(self.notify_fd, &one, 8)

    cdef void _settle(self, uint64_t target, int rc, int failure) noexcept nogil:
        pthread_mutex_lock(&self.lock)
        if rc != 0:
            if self.error == 0:
                self.error = failure
        elif self.error == 0 and target > self.synced:
            self.synced = target
        pthread_mutex_unlock(&self.lock)

    def request(self, uint64_t commit):
        """Ask for a sync that covers ``commit`` (returns at once; :meth:`state` says when)."""
        with nogil:
            pthread_mutex_lock(&self.lock)
            if commit > self.requested:
                self.requested = commit
            pthread_cond_signal(&self.cond)
            pthread_mutex_unlock(&self.lock)

    def sync_now(self, uint64_t commit):
        """Sync on the calling thread, the GIL released: when nothing else waits for the writer,
        handing the sync to the thread would only add its wake-up to the commit's latency."""
        cdef int rc
        cdef int failure
        with nogil:
            rc = fdatasync(self.fd)
            failure = errno
            self._settle(commit, rc, failure)

    def state(self):
        """(the highest commit the finished syncs cover, errno of the first failed sync or 0);
        takes the pending notification, if any."""
        cdef uint64_t count
        cdef uint64_t synced
        cdef int error
        with nogil:
            read(self.notify_fd, &count, 8)  # EAGAIN when there was none: nothing to take
            pthread_mutex_lock(&self.lock)
            synced = self.synced
            error = self.error
            pthread_mutex_unlock(&self.lock)
        return synced, error

    def close(self):
        """Let :meth:`run` return once the syncs asked for are done."""
        with nogil:
            pthread_mutex_lock(&self.lock)
            self.closing = True
            pthread_cond_signal(&self.cond)
            pthread_mutex_unlock(&self.lock)

    def release(self):
        """Close the file and the eventfd (after :meth:`run` has returned)."""
        self._release()
