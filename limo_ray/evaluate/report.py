"""The evaluation report: `eval/report.json`, `eval/report.md` and `eval/pass_at_1.png`, ours beside the paper's.

Numbers are percentages (as the paper prints them). Each benchmark gets pass@1 averaged over its samples with a
95% CI, maj@k and unbiased pass@k for k = the samples drawn; with several checkpoints, each later one is compared
with the first on the same items (paired bootstrap). The paper's columns come from the benchmark registry, the
one place its numbers live.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from limo_ray.evaluate import statistics
from limo_ray.runfolder import write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from limo_ray.benchmarks import BenchmarkRegistry
    from limo_ray.evaluate.runner import ItemPlan

# The paper's columns shown beside ours, in this order (LIMO v1 table).
PAPER_COLUMNS = ("LIMO", "Qwen2.5-32B-Inst", "o1-preview", "QwQ-32B-Preview")
REPORT_JSON, REPORT_MD, REPORT_PNG = "report.json", "report.md", "pass_at_1.png"


@dataclass
class Report:
    """The report's data (as written to report.json) and where its files are."""

    data: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    def score(self, checkpoint: str, benchmark: str) -> dict[str, Any]:
        return self.data["checkpoints"][checkpoint][benchmark]

    @property
    def checkpoints(self) -> list[str]:
        return list(self.data["checkpoints"])


def _pct(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(100 * value, 2)


def benchmark_scores(
    samples: Sequence[Sequence[Mapping[str, Any]]], seed: int = 0
) -> tuple[dict[str, Any], list[float]]:
    """Scores for one (checkpoint, benchmark): `samples[i]` are item i's sample rows. Returns (scores, item scores)."""
    correct = [[bool(row["correct"]) for row in rows] for rows in samples]
    answers = [[row.get("extracted") for row in rows] for rows in samples]
    k = min((len(rows) for rows in samples), default=0)
    estimate = statistics.pass_at_1(correct, seed=seed)
    scores = {
        "pass@1": _pct(estimate.value),
        "ci95": [_pct(estimate.low), _pct(estimate.high)],
        "ci_method": estimate.method,
        "n": len(samples),
        "samples": k,
        f"maj@{k}": _pct(statistics.maj_at_k(answers, correct, k)) if k else None,
        f"pass@{k}": _pct(statistics.mean_pass_at_k(correct, k)) if k else None,
        "answered": sum(len(rows) for rows in samples),
        "refused": sum(1 for rows in samples for row in rows if row.get("error")),
        "truncated": sum(1 for rows in samples for row in rows if row.get("finish_reason") == "length"),
    }
    return scores, [sum(c) / len(c) for c in correct] if correct else []


def build_report(
    plans: Sequence[ItemPlan],
    rows: Mapping[str, Mapping[str, Any] | None],
    registry: BenchmarkRegistry,
    benchmarks: Sequence[str],
    seed: int = 0,
) -> Report:
    """Score every (checkpoint, benchmark) in `plans` from the sample rows (by key), and compare checkpoints."""
    grouped: dict[str, dict[str, list[list[Mapping[str, Any]]]]] = {}
    for plan in plans:
        item_rows = [rows.get(key) for key in plan.keys]
        if any(row is None or row.get("correct") is None for row in item_rows):
            raise ValueError(f"{plan.checkpoint}/{plan.benchmark}/{plan.item}: not every sample is answered and graded")
        grouped.setdefault(plan.checkpoint, {}).setdefault(plan.benchmark, []).append(item_rows)  # type: ignore[arg-type]
    checkpoints: dict[str, dict[str, Any]] = {}
    item_scores: dict[str, dict[str, list[float]]] = {}
    for checkpoint, by_bench in grouped.items():
        for name in benchmarks:
            if name not in by_bench:
                continue
            scores, per_item = benchmark_scores(by_bench[name], seed=seed)
            decoding = registry.get(name).decoding
            plan_decoding = next(p.decoding for p in plans if p.benchmark == name)
            scores["decoding"] = plan_decoding.model_dump()
            scores["paper_decoding"] = decoding.model_dump()
            checkpoints.setdefault(checkpoint, {})[name] = scores
            item_scores.setdefault(checkpoint, {})[name] = per_item
    data = {
        "units": "percent",
        "checkpoints": checkpoints,
        "paper": registry.paper_table([n for n in benchmarks if registry.get(n).paper]),
        "benchmarks": {n: {"title": registry.get(n).title, "grading": registry.get(n).grading} for n in benchmarks},
        "comparisons": _comparisons(item_scores, benchmarks, seed),
    }
    return Report(data)


def _comparisons(
    item_scores: Mapping[str, Mapping[str, list[float]]], benchmarks: Sequence[str], seed: int
) -> list[dict[str, Any]]:
    """Each later checkpoint against the first, per benchmark (B - A, in points)."""
    names = list(item_scores)
    out = []
    for other in names[1:]:
        for bench in benchmarks:
            a, b = item_scores[names[0]].get(bench), item_scores[other].get(bench)
            if not a or not b or len(a) != len(b):
                continue
            test = statistics.paired_bootstrap(b, a, seed=seed)
            out.append(
                {
                    "benchmark": bench,
                    "a": names[0],
                    "b": other,
                    "delta": _pct(test.delta),
                    "ci95": [_pct(test.low), _pct(test.high)],
                    "p_value": round(test.p_value, 4),
                    "items": test.items,
                }
            )
    return out


# ----------------------------------------------------------------------------------------------- files


def write_report(report: Report, eval_dir: str | Path) -> Report:
    folder = Path(eval_dir)
    report.files = {
        "json": write_json_atomic(folder / REPORT_JSON, report.data),
        "md": write_text_atomic(folder / REPORT_MD, render_markdown(report.data)),
        "png": plot_pass_at_1(report.data, folder / REPORT_PNG),
    }
    return report


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_markdown(data: Mapping[str, Any]) -> str:
    checkpoints = list(data["checkpoints"])
    benchmarks = list(data["benchmarks"])
    paper = data["paper"]
    lines = [
        "# Evaluation report",
        "",
        "pass@1 (%) averaged over each benchmark's samples, with its 95% confidence interval (bootstrap over items, "
        "or exact binomial with one sample per item); the paper's columns are the LIMO paper's table.",
        "",
        "| benchmark | decoding | "
        + " | ".join(checkpoints)
        + " | "
        + " | ".join(f"{c} (paper)" for c in PAPER_COLUMNS)
        + " |",
        "|---|---|" + "---|" * (len(checkpoints) + len(PAPER_COLUMNS)),
    ]
    for bench in benchmarks:
        ours = []
        decoding = "-"
        for checkpoint in checkpoints:
            scores = data["checkpoints"][checkpoint].get(bench)
            if scores is None:
                ours.append("-")
                continue
            low, high = scores["ci95"]
            ours.append(f"{_cell(scores['pass@1'])} [{_cell(low)}, {_cell(high)}]")
            d = scores["decoding"]
            decoding = "greedy" if d["temperature"] == 0 else f"{d['samples']} x T={d['temperature']:g}"
        theirs = [_cell(paper.get(bench, {}).get(column)) for column in PAPER_COLUMNS]
        title = data["benchmarks"][bench]["title"] or bench
        lines.append(f"| {title} | {decoding} | " + " | ".join(ours) + " | " + " | ".join(theirs) + " |")
    lines += [
        "",
        "## Details",
        "",
        "| checkpoint | benchmark | items | samples | maj@k | pass@k | truncated | refused |",
    ]
    lines.append("|---|---|---|---|---|---|---|---|")
    for checkpoint in checkpoints:
        for bench, s in data["checkpoints"][checkpoint].items():
            k = s["samples"]
            lines.append(
                f"| {checkpoint} | {bench} | {s['n']} | {k} | {_cell(s.get(f'maj@{k}'))} | {_cell(s.get(f'pass@{k}'))} "
                f"| {s['truncated']} | {s['refused']} |"
            )
    if data["comparisons"]:
        lines += [
            "",
            "## Comparison",
            "",
            "Each checkpoint against the first on the same items: difference in pass@1 points, its 95% CI and the "
            "two-sided p-value of a paired bootstrap over items.",
            "",
            "| benchmark | A | B | B - A | 95% CI | p |",
            "|---|---|---|---|---|---|",
        ]
        for c in data["comparisons"]:
            low, high = c["ci95"]
            lines.append(
                f"| {c['benchmark']} | {c['a']} | {c['b']} | {c['delta']:+.1f} | [{low:+.1f}, {high:+.1f}] "
                f"| {c['p_value']:.3g} |"
            )
    lines += ["", f"![pass@1]({REPORT_PNG})", ""]
    return "\n".join(lines)


def plot_pass_at_1(data: Mapping[str, Any], path: str | Path) -> Path:
    """Grouped bars of pass@1 per benchmark and checkpoint with 95% CI whiskers; the paper's LIMO as a marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    checkpoints = list(data["checkpoints"])
    benchmarks = list(data["benchmarks"])
    x = np.arange(len(benchmarks))
    width = 0.8 / max(1, len(checkpoints))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(benchmarks) + 2), 4))
    for i, checkpoint in enumerate(checkpoints):
        values, low_err, high_err = [], [], []
        for bench in benchmarks:
            s = data["checkpoints"][checkpoint].get(bench)
            value = s["pass@1"] if s and s["pass@1"] is not None else 0.0
            low, high = (s["ci95"] if s else [value, value]) or [value, value]
            values.append(value)
            low_err.append(max(0.0, value - (low if low is not None else value)))
            high_err.append(max(0.0, (high if high is not None else value) - value))
        ax.bar(
            x + (i - (len(checkpoints) - 1) / 2) * width,
            values,
            width,
            yerr=[low_err, high_err],
            capsize=3,
            label=checkpoint,
        )
    paper = [data["paper"].get(b, {}).get("LIMO") for b in benchmarks]
    if any(v is not None for v in paper):
        shown = [(xi, v) for xi, v in zip(x, paper, strict=True) if v is not None]
        ax.scatter([p[0] for p in shown], [p[1] for p in shown], marker="_", s=600, color="black", label="LIMO (paper)")
    ax.set_xticks(x, [data["benchmarks"][b]["title"] or b for b in benchmarks], rotation=20, ha="right")
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title("pass@1 with 95% CI")
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    tmp.replace(target)
    return target
