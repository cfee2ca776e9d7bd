"""What a `limo` job shows on the console: a live display on a terminal, plain lines elsewhere, Ray's output in files.

The job logs every line through one callback (`CurateContext.log`, `run_all(log=...)`, eval's `progress`);
`JobConsole` is that callback. It sorts the lines it is given: a progress line (`[curate] strong_filter:
512/774 requests, ...`, `eval: 100/300 items`, a stage's `N problems in`, a filter's `round 1/2`) only updates
the display; every other line (a finished stage, a step, a warning) is printed and stays. On a terminal the
display is one live area at the bottom (the step, and within curation the stage with done/total, tokens/s and
ETA), drawn by `rich`; off a terminal (CI, `limo submit` logs, a pipe) it is a plain progress line at most every
`plain_every_s` seconds. Every line, progress included, also goes time-stamped to `<run>/logs/limo.log`.

`job_console` sets up one command's output around that: Ray's workers do not stream to this process
(`log_to_driver=False`), what this process itself would print (Ray's, Ray Data's, vLLM's and DeepSpeed's
loggers, C++ warnings) goes to `<run>/logs/driver.log`, and this node's Ray session logs (every worker's
stdout/stderr, vLLM's engine logs among them, the raylet, GCS, dashboard) are linked into `<run>/logs/ray/`
while the job runs and copied there when it ends. `verbose=True` streams all of it to the console as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from limo_ray.engine.ray_session import RaySession

LOGS_DIR = "logs"
CONSOLE_LOG = "limo.log"  # every line the job logged, progress included, time-stamped
DRIVER_LOG = "driver.log"  # what this process (and the local Ray processes it started) wrote to stdout/stderr
RAY_LOGS = "ray"  # one folder per Ray session: Ray's own log files for the workers, raylet, GCS, dashboard
GRAFANA_DASHBOARD = Path("cluster") / "grafana" / "limo-ray.json"
PLAIN_EVERY_S = 30.0

# The progress lines the stages log (curate/sampling.py, curate/stage.py, curate/filters.py, curate/chains.py,
# evaluate/runner.py). A line that matches none of these is printed: a changed format shows up, never vanishes.
_REQUESTS = re.compile(
    r"^\[curate\] (?P<stage>\w+): (?P<done>\d+)/(?P<total>\d+) requests, (?P<tokens>\d+) tokens, "
    r"(?P<rate>\d+) tok/s"
)
_EVAL_ITEMS = re.compile(r"^eval: (?P<done>\d+)/(?P<total>\d+) items")
_STAGE_IN = re.compile(r"^\[curate\] (?P<stage>\w+): (?P<problems>\d+) problems in$")
_STAGE_PHASE = re.compile(r"^\[curate\] (?P<stage>\w+): (?P<phase>round \d+/\d+|.+ x up to \d+ chains$)")
_ENGINES_PLACED = re.compile(r"^\[curate\] (?P<stage>\w+): .+ engine\(s\) on node\(s\) ")
_STAGE_DONE = re.compile(r"^\[curate\] (?P<stage>\w+): (complete, skipped|\d+ in -> )")
# `run_all` opens each step with a `[run] ...` line; `[run] train (curated): complete ...` reports a result.
_RUN_RESULT = re.compile(r"^\[run\] [\w ]+(\([\w ]+\))?: (complete|stopped)")
_RUN_STEP = re.compile(r"^\[run\] (?P<text>.+?)(?: -> \S+)?$")


@dataclass(frozen=True)
class Progress:
    """A progress line's numbers: `scope` is the curation stage, or `eval`."""

    scope: str
    done: int
    total: int
    unit: str
    rate: int | None = None  # generated tokens/s, as the stage measured it


@dataclass(frozen=True)
class Line:
    """One logged line, sorted: `kind` says what the console does with it."""

    text: str
    # "progress", "stage" (a stage begins), "phase" (a round, a chain model), "info": the display only;
    # "step" (a job step begins) and "note": printed
    kind: str
    progress: Progress | None = None
    stage: str | None = None
    phase: str | None = None


def classify(text: str) -> Line:
    """What a logged line is: progress and phase lines update the display, the others are printed."""
    if m := _REQUESTS.match(text):
        done, total = int(m["done"]), int(m["total"])
        return Line(text, "progress", Progress(m["stage"], done, total, "requests", int(m["rate"])), m["stage"])
    if m := _EVAL_ITEMS.match(text):
        return Line(text, "progress", Progress("eval", int(m["done"]), int(m["total"]), "items"))
    if m := _STAGE_IN.match(text):
        return Line(text, "stage", stage=m["stage"])
    if m := _ENGINES_PLACED.match(text):  # which nodes: in the record, not worth a console line per round
        return Line(text, "info", stage=m["stage"])
    if m := _STAGE_PHASE.match(text):
        return Line(text, "phase", stage=m["stage"], phase=m["phase"].split(":")[0])
    if m := _STAGE_DONE.match(text):
        return Line(text, "note", stage=m["stage"])
    if _RUN_RESULT.match(text):
        return Line(text, "note")
    if m := _RUN_STEP.match(text):
        return Line(text, "step", phase=m["text"])
    return Line(text, "note")


class JobConsole:
    """The `log` callback of a job: draws progress, prints what must stay, records everything.

    `live` is a `rich` display (a terminal); otherwise progress is a plain line at most every `plain_every_s`
    seconds. `steps` is how many `[run]` steps the job has (None: a single command, no step counter).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool,
        record: TextIO | None = None,
        steps: int | None = None,
        plain_every_s: float = PLAIN_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.record = record
        self.steps = steps
        self.plain_every_s = plain_every_s
        self.clock = clock
        self.step = 0
        self.stage: str | None = None
        self.stage_number = 0
        self._last_plain: float | None = None
        self._display = _LiveDisplay(stream, steps) if live else None

    def __call__(self, text: str) -> None:
        for single in str(text).splitlines() or [""]:
            self._take(classify(single))

    def _take(self, line: Line) -> None:
        if self.record is not None:
            self.record.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line.text}\n")
            self.record.flush()
        if line.kind == "step":
            self._finish_step()
            self.step += 1
            self.stage, self.stage_number = None, 0
            self._print(self._step_label(line.text))
            if self._display is not None:
                self._display.step(self.step, line.phase or line.text)
            return
        if line.stage is not None and line.stage != self.stage:
            self.stage, self.stage_number = line.stage, self.stage_number + 1
            if self._display is not None:
                self._display.stage(self.stage_number, line.stage)
        if line.kind == "note":
            self._print(line.text)
            return
        if self._display is not None:
            self._display.update(line)
            return
        now = self.clock()
        if self._last_plain is None or now - self._last_plain >= self.plain_every_s:
            self._last_plain = now
            self._print(line.text)

    def _step_label(self, text: str) -> str:
        if self.steps is None:
            return text
        return text.replace("[run]", f"[run {self.step}/{self.steps}]", 1)

    def _finish_step(self) -> None:
        if self.step and self._display is not None:
            self._display.finish_step()

    def _print(self, text: str) -> None:
        if self._display is not None:
            self._display.print(text)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """A line that always stays (headers, the summary), recorded like the others."""
        self._take(Line(text, "note"))

    def close(self) -> None:
        if self._display is not None:
            self._display.close()


class _LiveDisplay:
    """Two rich progress rows: the job's step, and the current stage's done/total, tokens/s and ETA."""

    def __init__(self, stream: TextIO, steps: int | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        class EtaColumn(TimeRemainingColumn):
            def render(self, task: Any) -> Any:
                from rich.text import Text

                if not (task.fields.get("eta") and task.total):
                    return Text("")
                return Text.assemble("ETA ", super().render(task))

        # Our own stdout/stderr go to the driver log while the display is up: rich must not grab them.
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TextColumn("{task.fields[rate]}"),
            EtaColumn(),
            TimeElapsedColumn(),
            console=Console(file=stream, highlight=False),
            redirect_stdout=False,
            redirect_stderr=False,
            transient=True,
        )
        self.job = self.progress.add_task("starting", total=steps, unit="steps" if steps else "", rate="", eta=False)
        self.detail = self.progress.add_task("", total=None, unit="", rate="", eta=True, visible=False)
        self.steps = steps
        self.progress.start()

    def print(self, text: str) -> None:
        from rich.text import Text

        self.progress.console.print(Text(text), soft_wrap=True)

    def step(self, number: int, text: str) -> None:
        label = f"step {number}/{self.steps}: {text}" if self.steps else text
        self.progress.update(self.job, description=label, completed=number - 1)
        self._restart_detail("", visible=False)

    def finish_step(self) -> None:
        self.progress.advance(self.job)

    def stage(self, number: int, name: str) -> None:
        self._restart_detail(f"  stage {number}: {name}")

    def _restart_detail(self, description: str, total: int | None = None, visible: bool = True) -> None:
        # Fields go through `update`: `reset` would replace them all (the ETA column's switch among them).
        self.progress.reset(self.detail, total=total, description=description, visible=visible)
        self.progress.update(self.detail, unit="", rate="")

    def update(self, line: Line) -> None:
        if line.kind == "phase" and line.stage and line.phase:
            task = self.progress.tasks[self.detail]
            base = task.description.split(" · ")[0]
            self._restart_detail(f"{base} · {line.phase}")
            return
        if line.progress is None:
            return
        p = line.progress
        if p.scope == "eval" and not self.progress.tasks[self.detail].description:
            self._restart_detail("  eval", total=p.total)
        rate = f"{p.rate:,} tok/s" if p.rate is not None else ""
        self.progress.update(self.detail, total=p.total, completed=p.done, unit=p.unit, rate=rate, visible=True)

    def close(self) -> None:
        self.progress.stop()


def summary_sections(markdown: str, titles: tuple[str, ...] = ("Accuracy", "Steps")) -> str:
    """The console's summary: the sections of summary.md whose `## ` titles start with one of `titles`."""
    kept: list[str] = []
    keep = False
    for line in markdown.splitlines():
        if line.startswith("## "):
            keep = line[3:].startswith(titles)
        if keep:
            kept.append(line)
    return "\n".join(kept).strip()


def grafana_line(repo_root: Path | None = None) -> str:
    """Where the Grafana dashboard JSON is and what it shows (its row titles, read from the file itself)."""
    root = repo_root if repo_root is not None else Path(__file__).resolve().parents[1]
    path = root / GRAFANA_DASHBOARD
    if not path.is_file():
        return (
            f"Grafana: {GRAFANA_DASHBOARD} in the limo-ray repository (import it; Prometheus scrapes the metrics port)"
        )
    panels = json.loads(path.read_text(encoding="utf-8")).get("panels", [])
    rows = [p["title"].split(" (")[0] for p in panels if p.get("type") == "row" and p.get("title")]
    shown = f" (rows: {', '.join(rows)})" if rows else ""
    return f"Grafana: {_short(path)}{shown}; import it, Prometheus scraping the metrics port"


def _short(path: Path) -> str:
    """`path` relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class _DriverOutput:
    """fds 1 and 2 of this process -> the driver log; returns a stream on the original stdout for the console.

    At the file-descriptor level, so output no Python logger config reaches (C++ warnings, Ray Data's progress,
    libraries that print) lands in the log too. Restored on exit, before any error is printed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved: tuple[int, int] | None = None

    def __enter__(self) -> TextIO:
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        return os.fdopen(os.dup(self._saved[0]), "w", buffering=1, encoding="utf-8")

    def __exit__(self, *exc: object) -> None:
        assert self._saved is not None
        with contextlib.suppress(ValueError):  # a stream already closed
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        os.close(self._saved[0])
        os.close(self._saved[1])


@contextlib.contextmanager
def job_console(
    run_dir: Path,
    start_ray: Callable[[bool], RaySession] | None = None,
    *,
    verbose: bool = False,
    steps: int | None = None,
    stream: TextIO | None = None,
) -> Iterator[JobConsole]:
    """The console of one command on `run_dir`: set up as the module docstring says, torn down on any exit.

    `start_ray(stream_worker_logs)` starts (or joins) Ray and returns its `RaySession`
    (`limo_ray.engine.ray_session.start_job_ray`); None for a command that needs no Ray. `stream` is where a
    verbose console writes (default stdout); otherwise the console writes to the process's own stdout.
    """
    logs = Path(run_dir) / LOGS_DIR
    logs.mkdir(parents=True, exist_ok=True)
    out = stream if stream is not None else sys.stdout
    with contextlib.ExitStack() as stack:
        record = stack.enter_context(open(logs / CONSOLE_LOG, "a", encoding="utf-8"))
        if not verbose:
            out = stack.enter_context(_DriverOutput(logs / DRIVER_LOG))
            stack.callback(out.close)
        live = not verbose and out.isatty() and os.environ.get("TERM") != "dumb"
        console = JobConsole(out, live=live, record=record, steps=steps)
        stack.callback(console.close)
        if start_ray is not None:
            session = start_ray(verbose)
            if session.logs_dir is not None:
                link = _link_ray_logs(session.logs_dir, logs / RAY_LOGS)
                stack.callback(_copy_ray_logs, session.logs_dir, link)
            for line in _header(session, logs, verbose):
                console.note(line)
        yield console


def submit_lines(address: str, run_dir: Path | None) -> list[str]:
    """What `limo submit` says beside the job id: where to watch it."""
    folder = str(run_dir) if run_dir is not None else "RUN_DIR"
    return [
        f"Ray dashboard: {address} (the cluster's: the job's logs, actors, placement groups, metrics)",
        grafana_line(),
        f"where it stands: `limo status {folder}` on the shared run folder (reads files only, no Ray)",
    ]


def _header(session: RaySession, logs: Path, verbose: bool) -> list[str]:
    where = "a local Ray started by this command" if session.started else f"the cluster at {session.address}"
    metrics = f"; metrics: http://{session.metrics_address}/metrics" if session.metrics_address else ""
    output = "streamed here" if verbose else "--verbose streams it here"
    return [
        f"Ray dashboard: {session.dashboard_url or 'off'} ({where}){metrics}",
        grafana_line(),
        f"Logs: {_short(logs)}/ (Ray and vLLM output; {output}); where it stands: `limo status {_short(logs.parent)}`",
    ]


def _link_ray_logs(source: Path, parent: Path) -> Path:
    """A link to this Ray session's logs under `<run>/logs/ray/<session>`, live while the job runs.

    A link left by a killed run is swapped for a copy first, while its session's files are still there."""
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.iterdir():
        if stale.is_symlink():
            _copy_ray_logs(stale.resolve(), stale)
    link = parent / source.parent.name
    if link.is_symlink():
        link.unlink()
    if not link.exists():
        link.symlink_to(source, target_is_directory=True)
    return link


def _copy_ray_logs(source: Path, link: Path) -> None:
    """Swap the link for a copy, so the run folder keeps the logs when /tmp is cleaned or the folder moves."""
    if not link.is_symlink():
        return
    if not source.is_dir():  # /tmp was cleaned since: nothing left to keep
        link.unlink()
        return
    partial = link.with_name(f".{link.name}.copying")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        shutil.copytree(source, partial, symlinks=True, ignore=shutil.ignore_patterns("*.sock", "sockets"))
    except shutil.Error:  # a file Ray rotated or removed meanwhile: the rest is copied
        pass
    except OSError:  # no room (a full disk): the link stays, no half copy is left
        shutil.rmtree(partial, ignore_errors=True)
        return
    link.unlink()
    partial.rename(link)
