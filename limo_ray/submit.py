"""`limo submit STAGE`: run a stage as a Ray job on a cluster, through the job API (JobSubmissionClient).

The entrypoint is the stage's script in `jobs/` with the same options `limo STAGE` takes; the runtime env
comes from `cluster.runtime_env` plus the working dir. With `--follow` the job's logs are streamed and the
exit status is the job's: 0 when it SUCCEEDED, 1 when it FAILED or was STOPPED. The job API's token auth is
Ray's own (RAY_AUTH_MODE=token and the token file or RAY_AUTH_TOKEN); nothing secret goes in the runtime env.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limo_ray.config import RunConfig
from limo_ray.errors import LimoError

JOB_SCRIPTS = {"curate": "jobs/curate.py", "train": "jobs/train.py", "eval": "jobs/eval.py", "run": "jobs/pipeline.py"}
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


@dataclass(frozen=True)
class Submission:
    submission_id: str
    entrypoint: str
    runtime_env: dict[str, Any]


def build_submission(
    config: RunConfig, stage: str, stage_args: Sequence[str], working_dir: Path, submission_id: str | None = None
) -> Submission:
    if stage not in JOB_SCRIPTS:
        raise LimoError(f"limo submit: unknown stage {stage!r} (stages: {', '.join(JOB_SCRIPTS)})")
    script = working_dir / JOB_SCRIPTS[stage]
    if not script.is_file():
        raise LimoError(f"limo submit: {script} not found: --working-dir must be the limo-ray checkout")
    entrypoint = shlex.join(["python", JOB_SCRIPTS[stage], *stage_args])
    runtime_env = {**config.cluster.runtime_env, "working_dir": str(working_dir)}
    sid = submission_id or f"limo-{stage}-{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Submission(sid, entrypoint, runtime_env)


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
