"""The console of one `limo` command on a run folder: Ray's and the driver's output into the run's logs, the
header (dashboard, Grafana, logs), and what `limo submit` prints beside a job.

`job_console` sets up one command's output around its `JobConsole` (`console/display.py`): Ray's workers do not
stream to this process (`log_to_driver=False`), what this process itself would print (Ray's, Ray Data's, vLLM's
and DeepSpeed's loggers, C++ warnings) goes to `<run>/logs/driver.log`, and this node's Ray session logs (every
worker's stdout/stderr, vLLM's engine logs among them, the raylet, GCS, dashboard) are linked into
`<run>/logs/ray/` while the job runs and copied there when it ends. `verbose=True` streams all of it to the
console as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from limo_ray.console.display import JobConsole

if TYPE_CHECKING:
    from limo_ray.engine.ray_session import RaySession

LOGS_DIR = "logs"
CONSOLE_LOG = "limo.log"  # every line the job logged, progress included, time-stamped
DRIVER_LOG = "driver.log"  # what this process (and the local Ray processes it started) wrote to stdout/stderr
RAY_LOGS = "ray"  # one folder per Ray session: Ray's own log files for the workers, raylet, GCS, dashboard
GRAFANA_DASHBOARD = Path("cluster") / "grafana" / "limo-ray.json"


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
    root = repo_root if repo_root is not None else Path(__file__).resolve().parents[2]
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


def serve_lines(session: RaySession, verbose: bool) -> list[str]:
    """What `limo serve` says before the app starts: the dashboard, Grafana, and where the replicas' logs are."""
    output = "streamed here" if verbose else "--verbose streams them here"
    where = _short(session.logs_dir) + "/" if session.logs_dir is not None else "on the cluster's nodes (the dashboard)"
    return [
        _dashboard_line(session),
        grafana_line(),
        f"Logs: {where} (Serve's access lines in serve/, vLLM's engine logs in the workers' files; {output})",
    ]


def _dashboard_line(session: RaySession) -> str:
    where = "a local Ray started by this command" if session.started else f"the cluster at {session.address}"
    metrics = f"; metrics: http://{session.metrics_address}/metrics" if session.metrics_address else ""
    return f"Ray dashboard: {session.dashboard_url or 'off'} ({where}){metrics}"


def _header(session: RaySession, logs: Path, verbose: bool) -> list[str]:
    output = "streamed here" if verbose else "--verbose streams it here"
    return [
        _dashboard_line(session),
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
