"""Progress of a toy world build: a bar on a terminal, plain lines elsewhere.

A build takes minutes, so it shows where it stands. A bar redraws itself with carriage returns, which a log
file, CI or `limo submit`'s job log keeps as one ever-growing line; off a terminal the same progress is a plain
line at most every `PLAIN_EVERY_S` seconds, as the job console prints it. This module only reports: it is not
one of the modules whose code decides a world's content (`cache.CONTENT_MODULES`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO


class BuildProgress(Protocol):
    """What the build calls: tqdm's own methods, so a tqdm bar is one."""

    def update(self, n: int = 1) -> Any: ...
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...
    def close(self) -> Any: ...


class NoProgress:
    """Nothing shown (a build asked to be quiet)."""

    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...
    def close(self) -> None: ...


class PlainProgress:
    """`desc: done/total steps (pct), postfix` as a new line at most every `every_s` seconds, and at the end."""

    def __init__(
        self,
        total: int,
        desc: str,
        stream: TextIO,
        every_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.desc, self.stream, self.every_s, self.clock = total, desc, stream, every_s, clock
        self.done = 0
        self.postfix = ""
        self.began = clock()
        self._last: float | None = None
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._last is None or self.clock() - self._last >= self.every_s:
            self._line()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._line()

    def _line(self) -> None:
        self._last = self.clock()
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        elapsed = self._last - self.began
        tail = f", {self.postfix}" if self.postfix else ""
        self.stream.write(f"{self.desc}: {self.done}/{self.total} steps{share}, {elapsed:.0f} s{tail}\n")
        self.stream.flush()


def build_progress(total: int, enabled: bool, desc: str, stream: TextIO | None = None) -> BuildProgress:
    """A tqdm bar when `stream` (default stderr) is a terminal, plain lines when it is not, nothing if not
    `enabled`."""
    if not enabled:
        return NoProgress()
    stream = stream or sys.stderr
    if stream.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, file=stream)
    from limo_ray.console.display import PLAIN_EVERY_S

    return PlainProgress(total, desc, stream, PLAIN_EVERY_S)
