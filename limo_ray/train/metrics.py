"""`train/metrics.jsonl`: one line per optimizer step (`step, epoch, loss, lr, tokens_per_s`, + extras).

Rank 0 may run on another node than the driver, so it does not write the run folder itself: it sends each row to
a `MetricsSink` actor pinned to the driver's node, which appends to the file. On resume the rows after the
restored step are cut first (they belong to steps that are about to run again): nothing duplicated, and a line
torn by a crash is dropped the same way.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from limo_ray.runfolder import write_text_atomic

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """The file side: append rows, cut back to a step; plain Python, testable without Ray."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def rows(self, whole_lines_only: bool = False) -> list[dict[str, Any]]:
        """The rows; `whole_lines_only` leaves out a last line not yet ended (a row being written)."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        if whole_lines_only:
            text = text[: text.rfind("\n") + 1]
        rows = []
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a crash
        return rows

    def truncate_after(self, step: int) -> int:
        """Keep the rows of steps 1..step (atomic rewrite); returns how many were kept."""
        kept = [r for r in self.rows() if isinstance(r.get("step"), int) and r["step"] <= step]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        return len(kept)

    def append(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


class MetricsSink(MetricsLog):
    """The same, as a Ray actor (0 CPUs) on the driver's node; also keeps notes for the driver (e.g. resumed step)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._notes: dict[str, Any] = {}

    def note(self, key: str, value: Any) -> None:
        self._notes[key] = value

    def worker_node(self, rank: int, node_id: str) -> None:
        self._notes.setdefault("worker_nodes", {})[str(rank)] = node_id

    def notes(self) -> dict[str, Any]:
        return dict(self._notes)

    def ping(self) -> bool:
        return True


class MetricsFollower:
    """The rows added to a metrics file since the last look: the driver's view of a training under way.

    Each look reads the file whole (a row per optimizer step: kilobytes) and reports the rows after the part it
    shares with the last look. So a row being written waits for the next look, and after a resume cut the file
    back, the steps run again are reported again. `from_the_end`: the rows already there belong to an earlier
    run, and are not new.
    """

    def __init__(self, path: str | Path, from_the_end: bool = False) -> None:
        self.log = MetricsLog(path)
        self._seen: list[dict[str, Any]] = self.log.rows(whole_lines_only=True) if from_the_end else []

    def new_rows(self) -> list[dict[str, Any]]:
        rows = self.log.rows(whole_lines_only=True)
        shared = 0
        for before, now in zip(self._seen, rows, strict=False):
            if before != now:
                break
            shared += 1
        self._seen = rows
        return rows[shared:]


def progress_line(row: dict[str, Any], total_steps: int) -> str:
    """One step of training as the console's progress line (`console/display.py` reads this format)."""
    rate = row.get("tokens_per_s")
    loss = row.get("loss")
    parts = [f"[train] step {row.get('step')}/{total_steps}"]
    if isinstance(loss, int | float):
        parts.append(f"loss {loss:.4g}")
    if isinstance(rate, int | float):
        parts.append(f"{round(rate)} tokens/s")
    return ", ".join(parts)


@contextlib.contextmanager
def following(
    path: str | Path, total_steps: int, say: Callable[[str], None] | None, every_s: float = 2.0
) -> Iterator[None]:
    """While the body runs (a blocking `trainer.fit()`), pass each new row of `path` to `say` as a progress line."""
    if say is None:
        yield
        return
    follower, stop = MetricsFollower(path, from_the_end=True), threading.Event()

    def report() -> None:
        for row in follower.new_rows():
            say(progress_line(row, total_steps))

    def loop() -> None:
        while not stop.wait(every_s):
            report()

    thread = threading.Thread(target=loop, name="train-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        report()


def start_sink(path: str | Path) -> Any:
    """A `MetricsSink` actor on this (the driver's) node, writing to `path`."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    actor = (
        ray.remote(MetricsSink)
        .options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
        .remote(str(path))
    )
    ray.get(actor.ping.remote())
    return actor
