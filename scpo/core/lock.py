"""A run directory is used by one run at a time: a second `recipes/iterate.sh` or stage on it refuses while the
first is alive. The lock is flock(2) on `<run dir>/.scpo.lock`: the kernel releases it when its process dies, so a
killed run never leaves a lock that blocks. `recipes/iterate.sh` holds it for the whole loop and tells its stages
(SCPO_RUN_LOCK), which then do not lock again; a stage run by hand locks its run directory (the folder above its
iter_dir) for as long as it runs. Slurm jobs of one submission run in the order the plan gives and do not lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from scpo.core.errors import ScpoError

LOCK_NAME = ".scpo.lock"
HELD_ENV = "SCPO_RUN_LOCK"  # set by whoever holds the lock (iterate.sh, a stage, a Slurm job): children skip it


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, what: str) -> Iterator[None]:
    """Holds `<run_dir>/.scpo.lock` exclusively while the block runs; a named error if another process holds it."""
    if os.environ.get(HELD_ENV):
        yield
        return
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:
        f = open(path, "a+")
    except OSError as e:  # a read-only run folder (a shared finished run): nothing there can be changed by us
        if e.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise
        print(f"[lock] warning: {path} cannot be created ({e.strerror}); running unlocked", file=sys.stderr)
        yield
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ScpoError(
                f"{folder} is in use by {holder}; wait for it to finish or stop it (a killed run leaves no lock behind)"
            ) from None
        except OSError as e:  # a file system without flock (some network mounts): run unlocked, say so
            if e.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            print(
                f"[lock] warning: {folder} cannot be locked ({e.strerror}); make sure no other run uses it",
                file=sys.stderr,
            )
            yield
            return
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} ({what})\n")
        f.flush()
        os.environ[HELD_ENV] = str(folder)
        try:
            yield
        finally:
            os.environ.pop(HELD_ENV, None)
            fcntl.flock(f, fcntl.LOCK_UN)
