"""Evaluate checkpoints behind an OpenAI-compatible endpoint: `run_eval`, scores with CIs (`statistics`), reports.

A client of a URL only: nothing here imports `limo_ray.serve`; `limo eval --checkpoint X` composes the two.
"""

from limo_ray.evaluate.client import ChatClient, Completion, RequestFailed, RetryPolicy
from limo_ray.evaluate.judge import EndpointJudge, Judge, judge_messages, parse_judgement
from limo_ray.evaluate.report import Report, build_report, render_markdown, write_report
from limo_ray.evaluate.runner import EVAL_DIR, EvalRequest, ItemPlan, plan_items, run_eval, run_eval_async, unanswered
from limo_ray.evaluate.samples import SAMPLES_FILE, SampleStore, sample_key

__all__ = [
    "EVAL_DIR",
    "SAMPLES_FILE",
    "ChatClient",
    "Completion",
    "EndpointJudge",
    "EvalRequest",
    "ItemPlan",
    "Judge",
    "Report",
    "RequestFailed",
    "RetryPolicy",
    "SampleStore",
    "build_report",
    "judge_messages",
    "parse_judgement",
    "plan_items",
    "render_markdown",
    "run_eval",
    "run_eval_async",
    "sample_key",
    "unanswered",
    "write_report",
]
