"""`limo status RUN_DIR`: where a run stands, read from its files alone (manifests, metrics, samples, the lock).

It never starts or asks Ray, so it works on a run still going (partial files: a stage's generation parts, the
training metrics so far, eval's samples file) and on a run folder on shared storage while the job runs on a
cluster. Whether the run is alive comes from the run folder's lock: on this machine the kernel's lock table says
whether the process named there still holds it; on another machine, the time of the last write is the hint.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from limo_ray.errors import LimoError
from limo_ray.runfolder import CONFIG_FILE, LOCK_FILE, MANIFEST_FILE, Manifest

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
_STATES: tuple[State, ...] = ("done", "running", "stopped", "in progress", "pending")
_LOCK_TEXT = re.compile(r"^pid (?P<pid>\d+) on (?P<host>\S+) since (?P<since>.+)$")


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) the run folder, from its lock file."""

    pid: int
    host: str
    since: str
    alive: bool | None  # None: held on another machine, which this one cannot check


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
    return StepStatus(step, "in progress", _train_words(progress), train=progress)


def _train_words(p: TrainProgress) -> str:
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
        return StepStatus(step, "done", _eval_words(progress), eval=progress)
    if not folder.is_dir():
        return StepStatus(step, "pending", eval=progress)
    return StepStatus(step, "in progress", _eval_words(progress) or "no answer stored yet", eval=progress)


def _eval_words(p: EvalProgress) -> str:
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


# --------------------------------------------------------------------------------------------------- output


def format_status(status: RunStatus, now: float | None = None) -> str:
    now = time.time() if now is None else now
    name = f" (config {status.config_name})" if status.config_name else ""
    lines = [f"run {status.run_dir}{name}: {_run_state(status, now)}"]
    lines += [f"  note: {note}" for note in status.notes]
    counts = [(state, sum(s.state == state for s in status.steps)) for state in _STATES]
    shown = [f"{n} {state}" for state, n in counts if n or state in ("done", "running", "pending")]
    lines += ["", "steps: " + ", ".join(shown)]
    width = max(len(s.step.name) for s in status.steps)
    for s in status.steps:
        lines.append(f"  {s.step.name:<{width}}  {s.state:<11}  {s.detail}".rstrip())
    for i, s in enumerate(status.steps):
        # The curated run's funnel once it has begun; the control's while it runs (its result is in summary.md).
        if s.step.kind == "curate" and any(r.state != "pending" for r in s.stages) and (i == 0 or s.state != "done"):
            lines += ["", f"curation funnel ({s.step.folder}/):", *_funnel(s)]
    for s in status.steps:
        if s.train is not None and s.state != "done":
            ago = _ago(now - s.train.written)
            lines += ["", f"training ({s.step.folder}/): {_train_words(s.train)}; last step {ago} ago"]
    evaluation = status.steps[-1]
    if evaluation.eval is not None and evaluation.eval.answered and evaluation.state != "done":
        lines += ["", f"eval ({evaluation.step.folder}/): {_eval_words(evaluation.eval)}"]
    if (status.run_dir / SUMMARY_FILE).is_file():
        lines += ["", f"summary: {status.run_dir / SUMMARY_FILE}"]
    return "\n".join(lines)


def _run_state(status: RunStatus, now: float) -> str:
    wrote = f"last write {_ago(now - status.last_write)} ago" if status.last_write else "nothing written"
    holder = status.holder
    if status.finished and not (holder and holder.alive):
        return f"finished ({wrote})"
    if holder is None:
        return f"not running ({wrote}; no lock: no `limo` command has held it)"
    who = f"pid {holder.pid} on {holder.host} since {holder.since}"
    if holder.alive:
        return f"running ({who}; {wrote})"
    if holder.alive is False:
        return f"not running (last held by {who}; {wrote}); the same command resumes it"
    return f"held by {who}, another machine: cannot check from here ({wrote})"


def _funnel(step: StepStatus) -> list[str]:
    rows = step.stages
    width = max(len(r.name) for r in rows)
    out = [f"  {'stage':<{width}}  {'in':>7}  {'kept':>7}  {'dropped':>7}  {'rejected':>8}  {'seconds':>8}"]
    for r in rows:
        m = r.manifest
        if m is not None:
            dropped = m.extra.get("dropped", m.rows_in - m.rows_out - m.rows_rejected)
            out.append(
                f"  {r.name:<{width}}  {m.rows_in:>7,}  {m.rows_out:>7,}  {dropped:>7,}  {m.rows_rejected:>8,}  "
                f"{m.seconds:>8.1f}"
            )
        elif r.state != "pending":  # the stage the step is at: running, or where a stopped run stopped
            state = step.state if step.state in ("running", "stopped") else r.state
            out.append(f"  {r.name:<{width}}  {state}: {r.detail}")
    return out


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
