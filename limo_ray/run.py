"""`limo run`: the whole LIMO job in one run folder — curate, train, evaluate — and the control that tests it.

    <run>/curate/...                 the curated dataset (weak/strong cascade, balance, chains, select)
    <run>/train/...                  the student fine-tuned on it (ZeRO-3 on Ray Train)
    <run>/baseline/curate/...        a random selection of the same size from the same pool, same chain models
    <run>/baseline/train/...         the student fine-tuned on that
    <run>/eval/...                   base, curated-SFT and random-SFT students on the eval benchmarks
    <run>/summary.md, summary.json, loss.png

Every step is skipped when its outputs are complete (each stage keeps a manifest), so a re-run after a crash
finishes the job and a re-run of a finished job only rewrites the summary. Serving and evaluating checkpoints
is `evaluate_checkpoints`, shared with `limo eval --checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limo_ray.config import RunConfig
from limo_ray.curate.export import DATASET_JSONL
from limo_ray.curate.stage import Stage
from limo_ray.errors import LimoError
from limo_ray.runfolder import write_json_atomic, write_resolved_config, write_text_atomic

BASELINE_DIR = "baseline"
SUMMARY_MD, SUMMARY_JSON, LOSS_PNG = "summary.md", "summary.json", "loss.png"
# Served names in the eval report: the comparison reads as "curated vs base" and "random vs base".
BASE, CURATED, RANDOM = "student-base", "student-curated", "student-random"


def checkpoint_identity(name: str, path: str) -> str:
    """What the eval cache keys a served checkpoint's answers by: its name and what its weights are.

    A local folder is identified by its weight and config files' names, sizes and modification times (a
    retrained checkpoint under the same name is evaluated again; hashing 64 GB of weights per eval would cost
    minutes for nothing); a hub name by itself.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return f"{name}|{path}"
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix in (".safetensors", ".bin", ".json"))
    listing = [(str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return f"{name}|{hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]}"


def answers_missing(
    config: RunConfig, checkpoints: Mapping[str, str], run_dir: Path, benchmarks: list[str] | None = None
) -> bool:
    """Whether evaluating `checkpoints` has anything to serve: some answer is not in the run folder's cache."""
    from limo_ray.evaluate import unanswered

    ids = {name: checkpoint_identity(name, path) for name, path in checkpoints.items()}
    return bool(ids) and unanswered(config, run_dir, ids, benchmarks) > 0


def evaluate_checkpoints(
    config: RunConfig,
    checkpoints: Mapping[str, str],
    run_dir: Path,
    benchmarks: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Any:
    """Serve `checkpoints` ({served name: folder or hub name}) with Ray Serve, evaluate them, stop the server.

    Checkpoints are served in groups that fit the cluster at once (`serving_groups`); answers of earlier groups
    are cached in the run folder, so the last group's report covers every checkpoint. A group whose answers are
    all cached already is not served at all: the report is built from the cache.
    """
    from limo_ray.evaluate import EvalRequest, run_eval, unanswered
    from limo_ray.serve import run_server
    from limo_ray.serve.app import serving_groups

    if not checkpoints:
        raise LimoError("nothing to evaluate: give --checkpoint or --endpoint, or list serve.models in the config")
    say = progress or (lambda _line: None)
    ids = {name: checkpoint_identity(name, path) for name, path in checkpoints.items()}
    judge_url = config.eval.judge_url
    judge = config.eval.judge_model if judge_url is None else None
    key = os.environ.get(config.serve.api_key_env) if config.serve.api_key_env else None
    report = None
    for group in serving_groups(config, checkpoints):
        if not unanswered(config, run_dir, {name: ids[name] for name in group}, benchmarks):
            say(f"eval: every answer of {', '.join(group)} is cached: nothing to serve")
            cached = EvalRequest(None, benchmarks, list(group), report_order=list(checkpoints), checkpoint_ids=ids)
            report = run_eval(config, cached, run_dir, progress)
            continue
        served = dict(group)
        if judge is not None:
            served[judge] = config.models[judge].path
        handle = run_server(config, served)
        try:
            request = EvalRequest(
                handle.url,
                benchmarks,
                list(group),
                key,
                judge_url=handle.url if judge else judge_url,
                judge_model=config.eval.judge_model,
                judge_api_key=key,
                report_order=list(checkpoints),
                checkpoint_ids=ids,
            )
            report = run_eval(config, request, run_dir, progress)
        finally:
            handle.shutdown()
    return report


@dataclass
class RunSummary:
    run_dir: Path
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> {seconds, skipped, ...}
    files: dict[str, str] = field(default_factory=dict)

    def record(self, step: str, began: float, **facts: Any) -> None:
        self.steps[step] = {"seconds": round(time.perf_counter() - began, 1), **facts}


def run_all(config: RunConfig, run_dir: Path, log: Callable[[str], None] = print) -> RunSummary:
    """curate -> train -> baseline curate -> baseline train -> eval (three students) -> summary.

    `config` is resolved (no `toy:` references left): the CLI's entry step did that."""
    from limo_ray.curate.pipeline import curation_stages, random_control_stages

    run_dir = Path(run_dir).resolve()
    write_resolved_config(config, run_dir)
    summary = RunSummary(run_dir)
    student = config.models[config.train.model].path

    log(f"[run] curate -> {run_dir / 'curate'}")
    curated, size = _curate_and_train(config, run_dir, curation_stages(config), student, "curated", summary, log, "")

    baseline_dir = run_dir / BASELINE_DIR
    log(f"[run] control: a random selection of {size} problems, same chain models -> {baseline_dir / 'curate'}")
    write_resolved_config(config, baseline_dir)
    control = random_control_stages(config, size)
    random_run, _ = _curate_and_train(config, baseline_dir, control, student, "random", summary, log, "baseline_")

    began = time.perf_counter()
    checkpoints = {BASE: student, CURATED: str(curated.checkpoint), RANDOM: str(random_run.checkpoint)}
    log(f"[run] evaluate {', '.join(checkpoints)} on {', '.join(config.eval.benchmarks)}")
    report = evaluate_checkpoints(config, checkpoints, run_dir, progress=log)
    summary.record("eval", began)

    summary.files = {
        "dataset": str(run_dir / "curate" / DATASET_JSONL),
        "data_card": str(run_dir / "curate" / "README.md"),
        "ledger": str(run_dir / "curate" / "ledger.parquet"),
        "checkpoint": str(curated.checkpoint),
        "random_checkpoint": str(random_run.checkpoint),
        "train_metrics": str(curated.metrics_path),
        "eval_report": str(report.files.get("md", run_dir / "eval" / "report.md")),
    }
    write_summary(summary, config, report.data, [curated.metrics_path, random_run.metrics_path])
    return summary


def _curate_and_train(
    config: RunConfig,
    run_dir: Path,
    stages: Sequence[Stage],
    student: str,
    what: str,
    summary: RunSummary,
    log: Callable[[str], None],
    step_prefix: str,
) -> tuple[Any, int]:
    """Curate into `run_dir/curate` with `stages`, then fine-tune the student on the dataset (both resumable).

    Returns the training result and the dataset's size."""
    from limo_ray.curate.context import CurateContext
    from limo_ray.curate.pipeline import run_curation
    from limo_ray.train import run_training

    began = time.perf_counter()
    outcomes = run_curation(CurateContext(run_dir=run_dir, cluster=config.cluster, log=log), stages)
    dataset = run_dir / "curate" / DATASET_JSONL
    size = sum(1 for line in dataset.read_text(encoding="utf-8").splitlines() if line.strip())
    if size == 0:
        raise LimoError(f"curation produced an empty dataset ({dataset}): see {run_dir / 'curate' / 'README.md'}")
    summary.record(f"{step_prefix}curate", began, skipped=all(o.skipped for o in outcomes), samples=size)

    began = time.perf_counter()
    log(f"[run] train the student on {size} {what} samples -> {run_dir / 'train'}")
    # A storage_path the config sets (s3://, NFS) is shared by both trainings: each keeps its checkpoints in its
    # own subfolder there, as each keeps its own under the run folder by default.
    shared = config.train.storage_path
    storage = f"{shared.rstrip('/')}/{step_prefix.rstrip('_')}" if shared and step_prefix else None
    result = run_training(config, run_dir, dataset, student, storage_path=storage, progress=log)
    log(f"[run] train ({what}): {result.status()}")
    _require_complete(result, what)
    summary.record(
        f"{step_prefix}train", began, skipped=result.skipped, final_loss=result.final_loss, steps=result.steps
    )
    return result, size


def _require_complete(result: Any, what: str) -> None:
    if not result.complete:
        raise LimoError(
            f"training on the {what} dataset stopped at step {result.steps}/{result.total_steps}: "
            "re-run `limo run` to resume it"
        )


def step_details(facts: Mapping[str, Any]) -> str:
    """A step's facts in words for summary.md: `skipped (complete)`, `final loss 0.0928`, `steps 21`."""
    words = []
    for key, value in facts.items():
        if key == "seconds":
            continue
        if key == "skipped":
            words.append("skipped (complete)" if value else "ran")
        elif isinstance(value, float):
            words.append(f"{key.replace('_', ' ')} {value:.4g}")
        elif value is not None:
            words.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(words)


def write_summary(summary: RunSummary, config: RunConfig, report: Mapping[str, Any], metrics_paths: list[Path]) -> None:
    """summary.md / summary.json / loss.png beside the run's stage folders."""
    from limo_ray.curate.card import funnel
    from limo_ray.curate.context import CurateContext

    run_dir = summary.run_dir
    stages = funnel(CurateContext(run_dir=run_dir))
    loss_png = plot_losses({"curated": metrics_paths[0], "random": metrics_paths[1]}, run_dir / LOSS_PNG)
    summary.files["loss_plot"] = str(loss_png)
    summary.files["summary"] = str(run_dir / SUMMARY_MD)
    scores = report.get("checkpoints", {})
    comparisons = report.get("comparisons", [])
    lines = [
        f"# limo run: {config.name}",
        "",
        "## Accuracy (pass@1 %, 95% CI)",
        "",
        "| student | " + " | ".join(config.eval.benchmarks) + " |",
        "|---|" + "---|" * len(config.eval.benchmarks),
    ]
    for name in (BASE, CURATED, RANDOM):
        cells = []
        for bench in config.eval.benchmarks:
            s = scores.get(name, {}).get(bench)
            cells.append(f"{s['pass@1']} [{s['ci95'][0]}, {s['ci95'][1]}]" if s else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if comparisons:
        lines += ["", "Paired bootstrap against the base student:", ""]
        for c in comparisons:
            lines.append(
                f"- {c['benchmark']}: {c['b']} vs {c['a']}: {c['delta']:+} points "
                f"[{c['ci95'][0]}, {c['ci95'][1]}], p = {c['p_value']} ({c['items']} items)"
            )
    lines += [
        "",
        "## Curation funnel",
        "",
        "| stage | in | kept | dropped | tokens | seconds |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['stage']} | {r['in']} | {r['out']} | {r['dropped']} | {r['tokens']} | {r['seconds']:.1f} |"
            for r in stages
        ],
        "",
        f"![training loss]({LOSS_PNG})",
        "",
        "## Steps",
        "",
        "| step | seconds | details |",
        "|---|---|---|",
        *[f"| {step} | {facts['seconds']} | {step_details(facts)} |" for step, facts in summary.steps.items()],
        "",
        "## Files",
        "",
        *[f"- {k}: `{v}`" for k, v in summary.files.items()],
        "",
    ]
    write_text_atomic(run_dir / SUMMARY_MD, "\n".join(lines))
    write_json_atomic(
        run_dir / SUMMARY_JSON,
        {"steps": summary.steps, "files": summary.files, "scores": scores, "comparisons": comparisons},
    )


def plot_losses(metrics: Mapping[str, Path], target: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, path in metrics.items():
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        points = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
        if points:
            ax.plot(*zip(*points, strict=True), label=f"{label} SFT")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
