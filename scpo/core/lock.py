"""A run directory is used by one run at a time: a second `recipes/iterate.sh` or stage on it refuses while the
first is alive. The lock is flock(2) on `<run dir>/.scpo.lock`: the kernel releases it when its process dies, so a
killed run never leaves a lock that blocks. `recipes/iterate.sh` holds it for the whole loop and tells its stages
(SCPO_RUN_LOCK), which then do not lock again; a stage run by hand locks its run directory (the folder above its
iter_dir, or, without one, the run folder that a file it writes is in) for as long as it runs. Slurm jobs of one
submission run in the order the plan gives and do not lock.
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
RANK_ENV = "LOCAL_RANK"  # set by torchrun / accelerate in each process of a distributed launch: the ranks of one
# stage would refuse each other (measured: a two-process `scpo grpo` under torchrun, rank 1 refused by rank 0)


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, what: str, why: str = "") -> Iterator[None]:
    """Holds `<run_dir>/.scpo.lock` exclusively while the block runs; a named error if another process holds it
    (`why` opens it: the setting that put the stage in that run folder)."""
    if os.environ.get(HELD_ENV) or os.environ.get(RANK_ENV) is not None:
        yield  # held by whoever started us, or one rank of a distributed launch (its launcher locks, if scpo's)
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
                f"{why}{folder} is in use by {holder}; wait for it to finish or stop it (a killed run leaves no lock "
                "behind)"
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


def run_folder_of(path: str | os.PathLike) -> Path | None:
    """The run folder a path is in: its nearest folder (itself included) holding a `.scpo.lock`, or None. A folder
    never locked has no lock file, and no run can hold it."""
    path = Path(path).absolute()
    for folder in (path, *path.parents):
        if (folder / LOCK_NAME).is_file():
            return folder
    return None
