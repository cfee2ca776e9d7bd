"""math-verify with a bounded time per call, from any thread.

math-verify bounds its sympy work with `signal.alarm`, which only works in a process's main thread (and
raises elsewhere). The grader runs in Ray Data actors, Serve replicas and thread pools too, so: on the main
thread we let math-verify's own alarm bound the call; on any other thread the call goes to a helper process
(one per grading process, started on first use), and a call that overruns is abandoned by killing that
process, which is restarted for the next one. Either way a call returns within about `timeout_s`.
"""

from __future__ import annotations

import multiprocessing
import threading
from functools import lru_cache
from multiprocessing.connection import Connection
from typing import Any

# Answers longer than this are not handed to sympy: no real final answer is this long, and parsing
# adversarial LaTeX of that size is where the time goes.
MAX_SYMBOLIC_CHARS = 1000


class SymbolicVerifier:
    """`equal(predicted, gold) -> bool | None` (None: timed out or unparseable within the bound)."""

    def __init__(self, timeout_s: int = 5) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def equal(self, predicted: str, gold: str) -> bool | None:
        if len(predicted) > MAX_SYMBOLIC_CHARS or len(gold) > MAX_SYMBOLIC_CHARS:
            return None
        if threading.current_thread() is threading.main_thread():
            return verify_with_alarm(predicted, gold, self.timeout_s)
        return self._equal_in_helper(predicted, gold)

    def _equal_in_helper(self, predicted: str, gold: str) -> bool | None:
        with self._lock:
            conn = self._ensure_helper()
            conn.send((predicted, gold, self.timeout_s))
            # The helper bounds itself with its own alarm; the extra second covers a call stuck in C code.
            if conn.poll(self.timeout_s + 1):
                return conn.recv()
            self._stop_helper()
            return None

    def _ensure_helper(self) -> Connection:
        if self._process is None or not self._process.is_alive() or self._conn is None:
            # spawn: forking a process that runs Ray or vLLM threads is unsafe.
            ctx = multiprocessing.get_context("spawn")
            parent, child = ctx.Pipe()
            self._process = ctx.Process(target=_serve_helper, args=(child,), daemon=True, name="limo-grader-sympy")
            self._process.start()
            child.close()
            self._conn = parent
        return self._conn

    def _stop_helper(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None

    def close(self) -> None:
        with self._lock:
            self._stop_helper()

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to Ray workers by value: each process starts its own helper.
        return {"timeout_s": self.timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["timeout_s"])  # type: ignore[misc]


def verify_with_alarm(predicted: str, gold: str, timeout_s: int) -> bool | None:
    from math_verify.errors import TimeoutException

    try:
        gold_parsed = _parse(gold, timeout_s)
        predicted_parsed = _parse(predicted, timeout_s)
        if not gold_parsed or not predicted_parsed:
            return None
        from math_verify import verify

        return bool(verify(gold_parsed, predicted_parsed, timeout_seconds=timeout_s))
    except TimeoutException:
        return None


@lru_cache(maxsize=4096)
def _parse(answer: str, timeout_s: int) -> list[Any]:
    """Parse one extracted answer as math. Cached: the gold of a problem is parsed once for all its samples."""
    from math_verify import parse

    return parse(f"${answer}$", parsing_timeout=timeout_s)


def _serve_helper(conn: Connection) -> None:
    import logging

    # math-verify logs every unparseable answer at warning level; the verdict already carries the outcome.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    while True:
        try:
            predicted, gold, timeout_s = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(verify_with_alarm(predicted, gold, timeout_s))
