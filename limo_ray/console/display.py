"""What the console does with each line a job logs: draw it as progress, print it, and record it.

The job logs every line through one callback (`CurateContext.log`, `run_all(log=...)`, training's and eval's
`progress`); `JobConsole` is that callback. It sorts the lines it is given: a progress line (`[curate]
strong_filter: 512/774 requests, ...`, `[train] step 5/21, ...`, `eval: 100/300 items`, a stage's `N problems in`, a
filter's `round 1/2`) only updates the display; every other line (a finished stage, a step, a warning) is printed
and stays. On a terminal the display is one live area at the bottom (the step, and within curation the stage with
done/total, tokens/s and ETA; training's steps; eval's items), drawn by `rich`; off a terminal (CI, `limo submit`
logs, a pipe) it is a plain progress line at most every `plain_every_s` seconds. Every line, progress included, also
goes time-stamped to `<run>/logs/limo.log`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

PLAIN_EVERY_S = 30.0

# The progress lines the stages log (curate/sampling.py, curate/stage.py, curate/filters.py, curate/chains.py,
# train/metrics.py, evaluate/runner.py). A line that matches none of these is printed: a changed format shows up,
# never vanishes.
_REQUESTS = re.compile(
    r"^\[curate\] (?P<stage>\w+): (?P<done>\d+)/(?P<total>\d+) requests, (?P<tokens>\d+) tokens, "
    r"(?P<rate>\d+) tok/s"
)
_EVAL_ITEMS = re.compile(r"^eval: (?P<done>\d+)/(?P<total>\d+) items")
# train/metrics.py's progress_line: one per optimizer step, read from metrics.jsonl while the workers train.
_TRAIN_STEP = re.compile(r"^\[train\] step (?P<done>\d+)/(?P<total>\d+)(?:, loss \S+)?(?:, (?P<rate>\d+) tokens/s)?$")
_STAGE_IN = re.compile(r"^\[curate\] (?P<stage>\w+): (?P<count>\d+) (problems|source\(s\)) in$")
_STAGE_PHASE = re.compile(r"^\[curate\] (?P<stage>\w+): (?P<phase>round \d+/\d+|.+ x up to \d+ chains$)")
_ENGINES_PLACED = re.compile(r"^\[curate\] (?P<stage>\w+): .+ engine\(s\) on node\(s\) ")
_STAGE_DONE = re.compile(r"^\[curate\] (?P<stage>\w+): (complete, skipped|\d+ in -> )")
# `run_all` opens each step with a `[run] ...` line; `[run] train (curated): complete ...` reports a result.
_RUN_RESULT = re.compile(r"^\[run\] [\w ]+(\([\w ]+\))?: (complete|stopped)")
_RUN_STEP = re.compile(r"^\[run\] (?P<text>.+?)(?: -> \S+)?$")


@dataclass(frozen=True)
class Progress:
    """A progress line's numbers: `scope` is the curation stage, `train` or `eval`."""

    scope: str
    done: int
    total: int
    unit: str
    rate: int | None = None  # tokens/s, as the stage measured it (generated; trained on, for `train`)


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
    if m := _TRAIN_STEP.match(text):
        rate = int(m["rate"]) if m["rate"] else None
        return Line(text, "progress", Progress("train", int(m["done"]), int(m["total"]), "steps", rate))
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
        if p.scope in ("eval", "train") and not self.progress.tasks[self.detail].description:
            self._restart_detail(f"  {p.scope}", total=p.total)
        rate = f"{p.rate:,} tok/s" if p.rate is not None else ""
        self.progress.update(self.detail, total=p.total, completed=p.done, unit=p.unit, rate=rate, visible=True)

    def close(self) -> None:
        self.progress.stop()
