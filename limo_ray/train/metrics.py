"""`train/metrics.jsonl`: one line per optimizer step (`step, epoch, loss, lr, tokens_per_s`, + extras).

Rank 0 may run on another node than the driver, so it does not write the run folder itself: it sends each row to
a `MetricsSink` actor pinned to the driver's node, which appends to the file. On resume the rows after the
restored step are cut first (they belong to steps that are about to run again): nothing duplicated, and a line
torn by a crash is dropped the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from limo_ray.runfolder import write_text_atomic

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """The file side: append rows, cut back to a step; plain Python, testable without Ray."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
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
