"""`limo status RUN_DIR`: where a run stands, read from its files alone (manifests, metrics, samples, the lock).

It never starts or asks Ray, so it works on a run still going (partial files: a stage's generation parts, the
training metrics so far, eval's samples file) and on a run folder on shared storage while the job runs on a
cluster. Whether the run is alive comes from the run folder's lock: on this machine the kernel's lock table says
whether the process named there still holds it; on another machine, the time of the last write is the hint.

This module reads; `status/render.py` writes the text `limo status` prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from limo_ray.errors import LimoError
from limo_ray.runfolder import CONFIG_FILE, LOCK_FILE, MANIFEST_FILE, Manifest
from limo_ray.status.holder import Holder, last_write, read_holder

StepKind = Literal["curate", "train", "eval"]
State = Literal["done", "running", "stopped", "in progress", "pending"]


@dataclass(frozen=True)
class RunStep:
    """One step of `limo run`: its name in summary.json and the folder it writes."""

    name: str
    folder: str
    kind: StepKind


# `limo run`'s steps in order (run.py: curate, train, the random control's curate and train, eval).
RUN_STEPS = (
    RunStep("curate", "curate", "curate"),
    RunStep("train", "train", "train"),
    RunStep("baseline_curate", "baseline/curate", "curate"),
    RunStep("baseline_train", "baseline/train", "train"),
    RunStep("eval", "eval", "eval"),
)
SUMMARY_FILE = "summary.md"


@dataclass(frozen=True)
class StageRow:
    name: str
    state: State
    manifest: Manifest | None = None
    detail: str = ""


@dataclass(frozen=True)
class TrainProgress:
    step: int
    total: int | None
    epoch: float | None
    loss: float | None
    lr: float | None
    tokens_per_s: float | None
    written: float  # when the last row was written (file time)


@dataclass(frozen=True)
class EvalProgress:
    answered: dict[str, int]  # checkpoint -> graded samples
    correct: dict[str, int]
    expected: int | None  # samples per checkpoint for the config's benchmarks, when their files can be read
    report: bool


@dataclass
class StepStatus:
    step: RunStep
    state: State
    detail: str = ""
    stages: list[StageRow] = field(default_factory=list)
    train: TrainProgress | None = None
    eval: EvalProgress | None = None


@dataclass
class RunStatus:
    run_dir: Path
    config_name: str | None
    holder: Holder | None
    last_write: float | None
    steps: list[StepStatus]
    finished: bool
    notes: list[str] = field(default_factory=list)

    @property
    def alive(self) -> bool | None:
        """True/False: a `limo` process holds the folder or not; None: held on another machine."""
        return False if self.holder is None else self.holder.alive


def read_status(run_dir: str | os.PathLike[str]) -> RunStatus:
    """The run folder's state, read from its files only."""
    folder = Path(run_dir)
    if not (folder / CONFIG_FILE).is_file():
        raise LimoError(f"{folder} is not a limo run folder (no {CONFIG_FILE}): give the --run-dir of a run")
    notes: list[str] = []
    config = _read_config(folder, notes)
    holder = read_holder(folder / LOCK_FILE)
    steps: list[StepStatus] = []
    for step in RUN_STEPS:
        if step.kind == "curate":
            steps.append(_curate_step(step, folder, _stage_names(config, step, notes)))
        elif step.kind == "train":
            steps.append(_train_step(step, folder, config))
        else:
            steps.append(_eval_step(step, folder, config))
    finished = (folder / SUMMARY_FILE).is_file() and all(s.state == "done" for s in steps)
    status = RunStatus(
        run_dir=folder,
        config_name=config.name if config is not None else None,
        holder=holder,
        last_write=last_write(folder),
        steps=steps,
        finished=finished,
        notes=notes,
    )
    _mark_current(steps, status.alive)
    return status


def _read_config(folder: Path, notes: list[str]) -> Any:
    from limo_ray.runfolder import read_resolved_config

    try:
        return read_resolved_config(folder)
    except LimoError as exc:  # written by another version: the files still say most of it
        notes.append(f"config.yaml could not be read with this version ({exc}); stage counts may be incomplete")
        return None


def _stage_names(config: Any, step: RunStep, notes: list[str]) -> list[str]:
    """The stages the step runs, in order (the folders on disk add any other)."""
    from limo_ray.curate.pipeline import STAGE_NAMES, random_control_stages

    if step.name == "curate":
        return list(STAGE_NAMES)
    if config is None:
        return []
    try:
        return [stage.name for stage in random_control_stages(config, 1)]
    except LimoError as exc:
        notes.append(f"{step.folder}: its stage list could not be built from config.yaml ({exc})")
        return []


# --------------------------------------------------------------------------------------------------- steps


def _curate_step(step: RunStep, run_dir: Path, expected: Sequence[str]) -> StepStatus:
    curate_dir = run_dir / step.folder
    names = list(expected) + sorted(
        p.parent.name for p in curate_dir.glob(f"*/{MANIFEST_FILE}") if p.parent.name not in expected
    )
    rows: list[StageRow] = []
    for name in names:
        manifest = Manifest.read(curate_dir / name)
        if manifest is not None and manifest.complete:
            rows.append(StageRow(name, "done", manifest))
        elif (curate_dir / name).is_dir():
            rows.append(StageRow(name, "in progress", None, _stage_progress(curate_dir / name)))
        else:
            rows.append(StageRow(name, "pending"))
    done = sum(r.state == "done" for r in rows)
    if names and done == len(names):
        last = rows[-1].manifest
        samples = f", {last.rows_out} samples" if last is not None else ""
        return StepStatus(step, "done", f"{done}/{len(names)} stages{samples}", rows)
    if not curate_dir.is_dir():
        return StepStatus(step, "pending", "", rows)
    current = next((r for r in rows if r.state != "done"), None)
    where = f"; {current.name} {'in progress' if current.state == 'in progress' else 'next'}" if current else ""
    return StepStatus(step, "in progress", f"{done}/{len(names)} stages done{where}", rows)


def _stage_progress(folder: Path) -> str:
    """What a stage without a complete manifest has stored so far: generation parts and its last request log."""
    stored = sum(_parquet_rows(part) for part in folder.rglob("part-*.parquet"))
    words = [f"{stored:,} samples stored"] if stored else []
    # sampling.log_requests writes requests/<label>-<time>.jsonl per round (filters) or per model (chains).
    requests = sorted(folder.rglob("requests/*.jsonl"), key=lambda p: p.stat().st_mtime)
    if requests:
        last = requests[-1]
        asked = list(_jsonl(last))
        samples = sum(len(r.get("attempt_indices", [])) for r in asked)
        label = last.stem.rsplit("-", 1)[0]
        words.append(f"last asked ({label}): {len(asked):,} problems, {samples:,} samples")
    return "; ".join(words) or "started, nothing stored yet"


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows
    except OSError:  # a part being renamed into place
        return 0


def _train_step(step: RunStep, run_dir: Path, config: Any) -> StepStatus:
    from limo_ray.train.metrics import METRICS_FILE, MetricsLog

    folder = run_dir / step.folder
    manifest = Manifest.read(folder)
    metrics = folder / METRICS_FILE
    rows = [r for r in MetricsLog(metrics).rows() if isinstance(r.get("step"), int) and "loss" in r]
    progress = None
    if rows:
        last = rows[-1]
        epoch = last.get("epoch")
        per_epoch = round(last["step"] / epoch) if epoch else None
        total = per_epoch * config.train.epochs if per_epoch and config is not None else None
        progress = TrainProgress(
            step=last["step"],
            total=total,
            epoch=epoch,
            loss=last.get("loss"),
            lr=last.get("lr"),
            tokens_per_s=last.get("tokens_per_s"),
            written=metrics.stat().st_mtime,
        )
    if manifest is not None and manifest.complete:
        loss = manifest.extra.get("final_loss")
        detail = f"{manifest.extra.get('steps')} steps" + (f", final loss {loss:.4g}" if loss is not None else "")
        return StepStatus(step, "done", detail, train=progress)
    if progress is None:
        state: State = "in progress" if folder.is_dir() else "pending"
        return StepStatus(step, state, "no step finished yet" if folder.is_dir() else "", train=None)
    return StepStatus(step, "in progress", train_words(progress), train=progress)


def train_words(p: TrainProgress) -> str:
    of = f"/{p.total}" if p.total else ""
    words = [f"step {p.step}{of}"]
    if p.epoch is not None:
        words[0] += f" (epoch {p.epoch:.2f})"
    if p.loss is not None:
        words.append(f"loss {p.loss:.4g}")
    if p.lr is not None:
        words.append(f"lr {p.lr:.3g}")
    if p.tokens_per_s is not None:
        words.append(f"{p.tokens_per_s:,.0f} tokens/s")
    return ", ".join(words)


def _eval_step(step: RunStep, run_dir: Path, config: Any) -> StepStatus:
    from limo_ray.evaluate.samples import SAMPLES_FILE

    folder = run_dir / step.folder
    latest = {row["key"]: row for row in _jsonl(folder / SAMPLES_FILE) if isinstance(row.get("key"), str)}
    answered: dict[str, int] = {}
    correct: dict[str, int] = {}
    for row in latest.values():  # a later line with the same key wins, as in the eval's own cache
        if row.get("correct") is None:
            continue
        name = str(row.get("checkpoint"))
        answered[name] = answered.get(name, 0) + 1
        correct[name] = correct.get(name, 0) + bool(row["correct"])
    report = (folder / "report.json").is_file()
    progress = EvalProgress(
        answered=answered,
        correct=correct,
        expected=_eval_expected(config),
        report=report,
    )
    if report and (run_dir / SUMMARY_FILE).is_file():
        return StepStatus(step, "done", eval_words(progress), eval=progress)
    if not folder.is_dir():
        return StepStatus(step, "pending", eval=progress)
    return StepStatus(step, "in progress", eval_words(progress) or "no answer stored yet", eval=progress)


def eval_words(p: EvalProgress) -> str:
    of = f"/{p.expected:,}" if p.expected else ""
    parts = [
        f"{name} {n:,}{of} samples ({100 * p.correct.get(name, 0) / n:.1f}% correct)"
        for name, n in p.answered.items()
        if n
    ]
    return "; ".join(parts) + ("; report written" if p.report else "")


def _eval_expected(config: Any) -> int | None:
    """Samples per checkpoint for the config's eval benchmarks: items x samples, from the benchmark files."""
    if config is None:
        return None
    from limo_ray.benchmarks import BenchmarkRegistry

    try:
        registry = BenchmarkRegistry.from_config(config.benchmarks)
        return sum(
            len(registry.load(name, config.benchmarks.data_root).result.problems)
            * registry.decoding_for(name, config.eval).samples
            for name in config.eval.benchmarks
        )
    except (LimoError, OSError):  # a benchmark file not readable from here: the counts go without a total
        return None


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a kill, or being written
                continue
            if isinstance(row, dict):
                yield row


def _mark_current(steps: list[StepStatus], alive: bool | None) -> None:
    """The first step not done is `running` while the run is alive, `stopped` when it is not."""
    for status in steps:
        if status.state == "done":
            continue
        if alive:
            status.state = "running"
        elif alive is False and status.state == "in progress":
            status.state = "stopped"
        return
