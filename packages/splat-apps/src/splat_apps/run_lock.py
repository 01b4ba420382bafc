"""One training process per run directory: `run_dir/lock` holds a POSIX record lock (`fcntl.lockf`) while a run
trains, and names its holder (pid, host, start time) for whoever is refused.

The kernel releases the lock when its process exits in any way (`kill -9`, a crash, a lost node with NFS lock
recovery), so a lock left by a dead process never blocks: the next run takes it and rewrites the holder. The file
itself stays; its presence means nothing, only the lock on it does.
"""

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = "lock"


class RunDirectoryInUse(ValueError):
    """Another live process trains in this run directory."""


def _holder(handle) -> str:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        holder = {}
    if not isinstance(holder, dict) or "pid" not in holder:
        return "another process (holder unknown)"
    return f"pid {holder['pid']} on {holder.get('host', '?')} since {holder.get('started', '?')}"


@contextmanager
def run_directory_lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold `run_dir/lock` for the duration of the block; a `RunDirectoryInUse` (one line, naming the holder) when
    a live process holds it. Yields the lock file's path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    with open(path, "a+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EACCES or EAGAIN: held by a live process
            raise RunDirectoryInUse(
                f"{run_dir} is in use: {_holder(handle)} trains there (lock {path}); wait for it to finish, "
                "stop it, or use another --run-dir"
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder) + "\n")
        handle.flush()
        try:
            yield path
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)
