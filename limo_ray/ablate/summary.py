"""A study's summary: `summary.md`, `summary.json` and `accuracy.png` in `ablate/<study>/`, the paper's finding
beside ours.

Per arm and benchmark: each repeat's pass@1 with its 95% CI, the mean and standard deviation across repeats,
the repeats pooled (every sample of every repeat, items resampled: a 95% CI over the benchmark's items), and a
paired bootstrap against the study's reference arm that pools the repeats (repeat r of the arm against repeat
r of the reference, item by item). The base student(s) are listed for scale. Scores are read from the eval
folder's cached answers, so the summary can always be rewritten from the files alone.
"""

from __future__ import annotations

import statistics as stats
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from limo_ray.ablate.arms import Arm, reference_arm
from limo_ray.config import RunConfig
from limo_ray.evaluate import statistics
from limo_ray.runfolder import write_json_atomic, write_text_atomic

SUMMARY_MD, SUMMARY_JSON, ACCURACY_PNG = "summary.md", "summary.json", "accuracy.png"
# What the LIMO paper found for each study, in its words' sense (its numbers live in the benchmark registry).
PAPER_FINDINGS = {
    "quality": (
        "LIMO (impact of reasoning-chain quality): 500 problems, each with chains at levels L1-L5; the model "
        "trained on L5 chains scores highest on AIME24 and MATH500, and accuracy falls with each lower level."
    ),
    "difficulty": (
        "LIMO (impact of question difficulty): Simple-500, Complex-500 and Advanced-500 sets; the harder the "
        "problems, the higher the fine-tuned model scores: Advanced-500 best on AIME24 and MATH500."
    ),
    "size": (
        "LIMO (data efficiency): accuracy climbs steeply over the first few hundred curated samples and flattens "
        "past about 800: more samples give diminishing returns."
    ),
    "selection": (
        "LIMO (main results): 817 curated samples beat fine-tuning on 100x more, less selected data "
        "(NuminaMath-100k, OpenThoughts-114k): which problems and chains are chosen matters more than how many."
    ),
    "backbone": (
        "LIMO (impact of pre-trained knowledge): the same 817 samples lift Qwen2.5-32B-Instruct far more than "
        "Qwen1.5-32B-Chat, whose pre-training holds less mathematics: the backbone's knowledge comes first."
    ),
}


def item_outcomes(
    config: RunConfig, folder: Path, checkpoints: Mapping[str, str]
) -> dict[str, dict[str, list[list[bool]]]]:
    """{served name: {benchmark: per item, its samples' verdicts}} from `folder/eval`'s cached answers."""
    from limo_ray.benchmarks import BenchmarkRegistry
    from limo_ray.evaluate import EVAL_DIR, SAMPLES_FILE, SampleStore, plan_items
    from limo_ray.run import checkpoint_identity

    ids = {name: checkpoint_identity(name, path) for name, path in checkpoints.items()}
    registry = BenchmarkRegistry.from_config(config.benchmarks)
    plans = plan_items(config, registry, config.eval.benchmarks, list(ids), config.benchmarks.data_root, ids)
    out: dict[str, dict[str, list[list[bool]]]] = {}
    with SampleStore(folder / EVAL_DIR / SAMPLES_FILE) as store:
        for plan in plans:
            rows = [store.get(key) for key in plan.keys]
            if any(row is None or row.get("correct") is None for row in rows):
                continue  # not evaluated (yet): left out of the summary rather than counted wrong
            verdicts = [bool(row["correct"]) for row in rows if row is not None]
            out.setdefault(plan.checkpoint, {}).setdefault(plan.benchmark, []).append(verdicts)
    return out


def _pct(value: float) -> float:
    return round(100 * value, 2)


def _estimate(correct: Sequence[Sequence[bool]], seed: int) -> dict[str, Any]:
    e = statistics.pass_at_1(correct, seed=seed)
    return {"pass@1": _pct(e.value), "ci95": [_pct(e.low), _pct(e.high)], "n": len(correct)}


def arm_scores(
    names: Sequence[str],
    arms: Sequence[Arm],
    outcomes: Mapping[str, Mapping[str, list[list[bool]]]],
    benchmarks: Sequence[str],
    reference: str,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per arm name and benchmark: runs, mean and sd over repeats, pooled estimate, paired test vs the reference."""
    by_name: dict[str, list[Arm]] = {}
    for arm in arms:
        by_name.setdefault(arm.name, []).append(arm)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        runs = by_name[name]
        entry: dict[str, Any] = {
            "student": runs[0].student,
            "samples": {str(a.seed): len(a.samples) for a in runs},
            "benchmarks": {},
        }
        for bench in benchmarks:
            results = {a.seed: outcomes.get(a.label, {}).get(bench) for a in runs}
            done = {s: r for s, r in results.items() if r}
            if not done:
                continue
            per_run = {str(s): _estimate(r, seed) for s, r in done.items()}
            values = [run["pass@1"] for run in per_run.values()]
            pooled = _pool(list(done.values()))
            scores: dict[str, Any] = {
                "runs": per_run,
                "mean": round(stats.fmean(values), 2),
                "sd": round(stats.stdev(values), 2) if len(values) > 1 else None,
                "pooled": _estimate(pooled, seed) if pooled else None,
            }
            if name != reference:
                scores["vs_reference"] = _paired(done, by_name.get(reference, []), outcomes, bench, seed)
            entry["benchmarks"][bench] = scores
        out[name] = entry
    return out


def _pool(repeats: Sequence[list[list[bool]]]) -> list[list[bool]]:
    """Per item, the verdicts of every repeat together (repeats cover the same items, in plan order)."""
    if len({len(r) for r in repeats}) != 1:
        return []
    return [[verdict for item in items for verdict in item] for items in zip(*repeats, strict=True)]


def _paired(
    done: Mapping[int, list[list[bool]]],
    reference_runs: Sequence[Arm],
    outcomes: Mapping[str, Mapping[str, list[list[bool]]]],
    bench: str,
    seed: int,
) -> dict[str, Any] | None:
    """Arm minus reference in points, repeat r against repeat r, the repeats' items pooled."""
    ours: list[float] = []
    theirs: list[float] = []
    for ref in reference_runs:
        a, b = done.get(ref.seed), outcomes.get(ref.label, {}).get(bench)
        if a and b and len(a) == len(b):
            ours += [sum(v) / len(v) for v in a]
            theirs += [sum(v) / len(v) for v in b]
    if not ours:
        return None
    test = statistics.paired_bootstrap(ours, theirs, seed=seed)
    return {
        "delta": _pct(test.delta),
        "ci95": [_pct(test.low), _pct(test.high)],
        "p_value": round(test.p_value, 4),
        "items": test.items,
    }


def write_study_summary(
    config: RunConfig,
    study: str,
    folder: Path,
    arms: Sequence[Arm],
    datasets: Mapping[str, Path],
    checkpoints: Mapping[str, str],
) -> Path:
    """summary.md, summary.json and accuracy.png in the study's folder; returns summary.md."""
    names = list(dict.fromkeys(arm.name for arm in arms))
    reference = reference_arm(study, names)
    benchmarks = list(config.eval.benchmarks)
    outcomes = item_outcomes(config, folder, checkpoints)
    scores = arm_scores(names, arms, outcomes, benchmarks, reference, seed=config.seed)
    arm_labels = {arm.label for arm in arms}
    bases = {
        name: {b: _estimate(outcomes[name][b], config.seed) for b in benchmarks if outcomes.get(name, {}).get(b)}
        for name in checkpoints
        if name not in arm_labels
    }
    seeds = sorted({arm.seed for arm in arms})
    plot = plot_study(study, names, scores, benchmarks, folder / ACCURACY_PNG)
    files = {
        "datasets": str(folder / "arms"),
        "runs": str(folder / "runs"),
        "eval_report": str(folder / "eval" / "report.md"),
        "plot": str(plot),
        "summary": str(folder / SUMMARY_MD),
    }
    data = {
        "study": study,
        "config": config.name,
        "seeds": seeds,
        "reference": reference,
        "paper_finding": PAPER_FINDINGS[study],
        "arms": scores,
        "bases": bases,
        "datasets": {label: str(path) for label, path in datasets.items()},
        "files": files,
    }
    write_json_atomic(folder / SUMMARY_JSON, data)
    write_text_atomic(folder / SUMMARY_MD, render_markdown(data, names, benchmarks))
    return folder / SUMMARY_MD


def _cell(score: Mapping[str, Any] | None) -> str:
    return "-" if not score else f"{score['pass@1']} [{score['ci95'][0]}, {score['ci95'][1]}]"


def render_markdown(data: Mapping[str, Any], names: Sequence[str], benchmarks: Sequence[str]) -> str:
    reference = data["reference"]
    seeds = ", ".join(map(str, data["seeds"]))
    lines = [
        f"# limo ablate {data['study']}: {data['config']}",
        "",
        f"**The paper.** {data['paper_finding']}",
        "",
        f"**Ours.** {len(names)} arms x {len(data['seeds'])} repeat(s) (seeds {seeds}); reference arm `{reference}`. "
        "pass@1 in %: each repeat with its 95% CI, the mean and sd across repeats, the repeats pooled (95% CI over "
        "items), and a paired bootstrap against the reference, repeats pooled.",
    ]
    for bench in benchmarks:
        lines += [
            "",
            f"## {bench}",
            "",
            f"| arm | student | samples | repeats: pass@1 [95% CI] | mean ± sd | pooled [95% CI] | vs {reference}: "
            "Δ points [95% CI], p |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in names:
            arm = data["arms"][name]
            score = arm["benchmarks"].get(bench)
            samples = "/".join(str(n) for n in dict.fromkeys(arm["samples"].values()))
            if not score:
                lines.append(f"| {name} | {arm['student']} | {samples} | not evaluated | | | |")
                continue
            runs = "; ".join(f"s{s}: {_cell(r)}" for s, r in score["runs"].items())
            spread = f"{score['mean']} ± {score['sd']}" if score["sd"] is not None else f"{score['mean']}"
            versus = "reference" if name == reference else _versus(score.get("vs_reference"))
            lines.append(
                f"| {name} | {arm['student']} | {samples} | {runs} | {spread} | {_cell(score['pooled'])} | {versus} |"
            )
        for base, by_bench in data["bases"].items():
            lines.append(f"| {base} (no SFT) | | | {_cell(by_bench.get(bench))} | | | |")
    lines += ["", f"![accuracy by arm]({ACCURACY_PNG})", "", "## Files", ""]
    lines += [f"- {key}: `{value}`" for key, value in data["files"].items()]
    return "\n".join(lines) + "\n"


def _versus(test: Mapping[str, Any] | None) -> str:
    if not test:
        return "-"
    return f"{test['delta']:+} [{test['ci95'][0]}, {test['ci95'][1]}], p = {test['p_value']}"


def plot_study(
    study: str, names: Sequence[str], scores: Mapping[str, Mapping[str, Any]], benchmarks: Sequence[str], target: Path
) -> Path:
    """Accuracy against the study's axis (level, bin, size, arm): pooled pass@1 with its 95% CI, repeats as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(names) + 2), 3.8))
    positions = range(len(names))
    for bench in benchmarks:
        points = [(i, scores[n]["benchmarks"].get(bench)) for i, n in enumerate(names)]
        pooled = [(i, s["pooled"]) for i, s in points if s and s["pooled"]]
        if pooled:
            xs = [i for i, _ in pooled]
            ys = [p["pass@1"] for _, p in pooled]
            errors = [
                [y - p["ci95"][0] for y, (_, p) in zip(ys, pooled, strict=True)],
                [p["ci95"][1] - y for y, (_, p) in zip(ys, pooled, strict=True)],
            ]
            line = ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=4, label=bench)
            for i, s in points:
                if s:
                    runs = [r["pass@1"] for r in s["runs"].values()]
                    ax.scatter([i] * len(runs), runs, s=12, alpha=0.5, color=line[0].get_color())
    ax.set_xticks(list(positions), list(names))
    ax.set_xlabel(
        {"quality": "chain quality level", "difficulty": "difficulty bin", "size": "samples"}.get(study, "arm")
    )
    ax.set_ylabel("pass@1 (%)")
    ax.set_title(f"limo ablate {study}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
