"""Who holds a run folder and whether that process is alive, read from its lock file without taking the lock,
and when anything under the folder was last written (the hint for a run held on another machine)."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

# What `limo_ray.runfolder.run_lock` writes into the lock file.
_LOCK_TEXT = re.compile(r"^pid (?P<pid>\d+) on (?P<host>\S+) since (?P<since>.+)$")


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) the run folder, from its lock file."""

    pid: int
    host: str
    since: str
    alive: bool | None  # None: held on another machine, which this one cannot check


def read_holder(lock: Path) -> Holder | None:
    if not lock.is_file():
        return None
    m = _LOCK_TEXT.match(lock.read_text(encoding="utf-8", errors="replace").strip())
    if m is None:
        return None
    pid, host = int(m["pid"]), m["host"]
    alive = _holds_lock(lock, pid) if host == socket.gethostname() else None
    return Holder(pid, host, m["since"], alive)


def _holds_lock(lock: Path, pid: int) -> bool:
    """Whether `pid` holds the `flock` on `lock`: the kernel's lock table, read without taking the lock."""
    try:
        table = Path("/proc/locks").read_text()
    except OSError:  # not Linux: a live pid is the best sign there is
        return _pid_alive(pid)
    inode = lock.stat().st_ino
    for row in table.splitlines():
        parts = row.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF"
        held = len(parts) >= 6 and parts[1] == "FLOCK" and parts[4] == str(pid)
        if held and parts[5].rsplit(":", 1)[-1] == str(inode):
            return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def last_write(folder: Path) -> float | None:
    """The newest modification time under the run folder (links not followed)."""
    newest = None
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                mtime = os.lstat(os.path.join(root, name)).st_mtime
            except OSError:  # removed while we walked (an atomic rename)
                continue
            newest = mtime if newest is None else max(newest, mtime)
    return newest
