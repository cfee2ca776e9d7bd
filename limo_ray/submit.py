"""`limo submit STAGE`: run a stage as a Ray job on a cluster, through the job API (JobSubmissionClient).

The entrypoint is the stage's script in `jobs/` with the same arguments `limo STAGE` takes (`ablate` first takes
its study: `limo submit ablate size ...` runs `python jobs/ablate.py size ...`); the runtime env comes from
`cluster.runtime_env` plus the working dir and Serve's ingress setting (`cluster.serve_ingress`). With
`--follow` the job's logs are streamed and the exit status is the job's: 0 when it SUCCEEDED, 1 when it FAILED
or was STOPPED. The job API's token auth is Ray's own (RAY_AUTH_MODE=token and the token file or RAY_AUTH_TOKEN);
nothing secret goes in the runtime env.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limo_ray.config import RunConfig
from limo_ray.engine.ray_session import job_runtime_env
from limo_ray.errors import LimoError

JOB_SCRIPTS = {
    "curate": "jobs/curate.py",
    "train": "jobs/train.py",
    "eval": "jobs/eval.py",
    "run": "jobs/pipeline.py",
    "ablate": "jobs/ablate.py",
}
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


@dataclass(frozen=True)
class Submission:
    submission_id: str
    entrypoint: str
    runtime_env: dict[str, Any]


def build_submission(
    config: RunConfig,
    stage: str,
    stage_args: Sequence[str],
    working_dir: Path,
    submission_id: str | None = None,
    extra_args: Sequence[str] = (),
) -> Submission:
    """`stage_args`: the options `limo submit` shares with the stage (--config, --set, --run-dir); `extra_args`:
    the rest of its command line, as given (`ablate`'s study first)."""
    if stage not in JOB_SCRIPTS:
        raise LimoError(f"limo submit: unknown stage {stage!r} (stages: {', '.join(JOB_SCRIPTS)})")
    study = ablate_study(extra_args) if stage == "ablate" else None
    script = working_dir / JOB_SCRIPTS[stage]
    if not script.is_file():
        raise LimoError(f"limo submit: {script} not found: --working-dir must be the limo-ray checkout")
    # The study goes first, as one types `limo ablate STUDY --config ...`.
    lead, rest = ([study], extra_args[1:]) if study else ([], extra_args)
    entrypoint = shlex.join(["python", JOB_SCRIPTS[stage], *lead, *stage_args, *rest])
    runtime_env = {**job_runtime_env(config.cluster, local=False), "working_dir": str(working_dir)}
    what = f"{stage}-{study}" if study else stage
    sid = submission_id or f"limo-{what}-{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Submission(sid, entrypoint, runtime_env)


def ablate_study(extra_args: Sequence[str]) -> str:
    """The study of `limo submit ablate STUDY ...`: right after the stage, checked before anything is submitted
    (a misspelt study would only fail on the cluster)."""
    from limo_ray.ablate import STUDIES
    from limo_ray.ablate.study import check_study

    if not extra_args or extra_args[0].startswith("-"):
        raise LimoError(f"limo submit ablate STUDY: name the study right after `ablate` ({', '.join(STUDIES)})")
    return check_study(extra_args[0])


def submit(address: str, submission: Submission) -> str:
    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise LimoError(f"cannot reach the Ray job API at {address}: {' '.join(str(exc).split())[:300]}") from exc
    return client.submit_job(
        entrypoint=submission.entrypoint, runtime_env=submission.runtime_env, submission_id=submission.submission_id
    )


def follow(address: str, submission_id: str, echo: Callable[[str], None], poll_s: float = 1.0) -> str:
    """Stream the job's logs until it ends; returns its final status."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    shown = 0
    while True:
        status = str(client.get_job_status(submission_id).value)
        logs = client.get_job_logs(submission_id)
        if len(logs) > shown:
            echo(logs[shown:].rstrip("\n"))
            shown = len(logs)
        if status in TERMINAL:
            return status
        time.sleep(poll_s)
