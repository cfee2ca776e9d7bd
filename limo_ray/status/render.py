"""The text `limo status` prints: the run's state in one line, its steps, the curation funnel, training and
eval progress while they run."""

from __future__ import annotations

import time

from limo_ray.status.read import SUMMARY_FILE, RunStatus, State, StepStatus, eval_words, train_words

# The order in which `limo status` counts the steps in each state.
_STATES: tuple[State, ...] = ("done", "running", "stopped", "in progress", "pending")


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
            lines += ["", f"training ({s.step.folder}/): {train_words(s.train)}; last step {ago} ago"]
    evaluation = status.steps[-1]
    if evaluation.eval is not None and evaluation.eval.answered and evaluation.state != "done":
        lines += ["", f"eval ({evaluation.step.folder}/): {eval_words(evaluation.eval)}"]
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
