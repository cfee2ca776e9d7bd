"""The data card `curate/README.md`: what went in, what came out, why, and the config that did it.

Counts come from the stages' manifests and the ledger (the same numbers a user can recompute); plots are PNGs
beside the card: the stage funnel, weak and strong solve-rate histograms, chain length and quality.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from limo_ray.curate.context import CurateContext
from limo_ray.curate.stage import read_decisions
from limo_ray.records import Sample
from limo_ray.runfolder import CONFIG_FILE, Manifest, read_resolved_config, write_text_atomic

CARD_FILE = "README.md"


# Every stage a curation pipeline may run, in order, but export; the card shows those that completed (the
# random-selection control of `limo run` has random_sample where the curated run has the filters and balance).
def funnel_stages() -> tuple[str, ...]:
    from limo_ray.curate.pipeline import STAGE_NAMES  # the pipeline builds its stages from this module's users

    return (*STAGE_NAMES[:3], "random_sample", *STAGE_NAMES[3:-1])


def funnel(ctx: CurateContext) -> list[dict[str, Any]]:
    rows = []
    for stage in funnel_stages():
        manifest = Manifest.read(ctx.stage_dir(stage))
        if manifest is not None and manifest.complete:
            rows.append(
                {
                    "stage": stage,
                    "in": manifest.rows_in,
                    "out": manifest.rows_out,
                    "rejected": manifest.rows_rejected,
                    "dropped": manifest.extra.get("dropped", 0),
                    "tokens": manifest.extra.get("tokens", 0),
                    "seconds": manifest.seconds,
                }
            )
    return rows


def _solve_rates(ctx: CurateContext, stage: str) -> list[float]:
    path = ctx.stage_dir(stage) / "decisions.parquet"
    if not path.is_file():
        return []
    return [
        d["facts"]["successes"] / d["facts"]["attempts"] for d in read_decisions(path) if d["facts"].get("attempts")
    ]


def write_card(ctx: CurateContext, samples: Sequence[Sample]) -> Path:
    """The data card; its config section is the run folder's resolved config, when there is one."""
    folder = ctx.curate_dir
    config = read_resolved_config(ctx.run_dir) if (ctx.run_dir / CONFIG_FILE).is_file() else None
    stages = funnel(ctx)
    plots = _plots(ctx, stages, samples)
    cells = Counter(
        (s.provenance.get("domain") or "unknown", s.provenance.get("difficulty") or "unknown") for s in samples
    )
    domains = sorted({d for d, _ in cells})
    levels = sorted({lv for _, lv in cells})
    balance = Manifest.read(ctx.stage_dir("balance"))
    short = balance.extra.get("short_cells", []) if balance else []
    lines = [
        f"# Data card: {config.name if config else ctx.run_dir.name}",
        "",
        f"{len(samples)} samples (`dataset.jsonl`, `dataset.parquet`): one problem each with its best correct "
        "reasoning chain, in the LIMO format (`id, system, problem, response, answer, provenance`).",
        "",
        "## Funnel",
        "",
        "| stage | in | kept | dropped | rejected | tokens | seconds |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {r['stage']} | {r['in']} | {r['out']} | {r['dropped']} | {r['rejected']} | {r['tokens']} | "
            f"{r['seconds']:.1f} |"
            for r in stages
        ],
        "",
        f"![funnel]({plots['funnel']})",
        "",
        "## Domain x difficulty (exported samples)",
        "",
        "| domain | " + " | ".join(levels) + " | total |",
        "|---|" + "---|" * (len(levels) + 1),
        *[
            f"| {d} | "
            + " | ".join(str(cells[(d, lv)]) for lv in levels)
            + f" | {sum(cells[(d, lv)] for lv in levels)} |"
            for d in domains
        ],
        "",
        "Balance cells short of their quota: " + (", ".join(short) if short else "none") + ".",
        "",
        "## Difficulty filters and chains",
        "",
        f"![solve rates]({plots['solve_rates']})",
        "",
        f"![chains]({plots['chains']})",
        "",
    ]
    if config is not None:
        lines += ["## Config", "", "```yaml", config.to_yaml().rstrip(), "```", ""]
    return write_text_atomic(folder / CARD_FILE, "\n".join(lines))


def _plots(ctx: CurateContext, stages: list[dict[str, Any]], samples: Sequence[Sample]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = ctx.curate_dir
    names = {"funnel": "funnel.png", "solve_rates": "solve_rates.png", "chains": "chains.png"}

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar([r["stage"] for r in stages], [r["out"] for r in stages], color="#4c72b0")
    ax.set_ylabel("problems kept")
    ax.set_title("Curation funnel")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(folder / names["funnel"], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, stage in zip(axes, ("weak_filter", "strong_filter"), strict=True):
        ax.hist(_solve_rates(ctx, stage), bins=10, range=(0, 1), color="#dd8452")
        ax.set_title(f"{stage}: solve rate per problem")
        ax.set_xlabel("successes / attempts")
    fig.tight_layout()
    fig.savefig(folder / names["solve_rates"], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].hist([s.provenance["chain"]["words"] for s in samples] or [0], bins=20, color="#55a868")
    axes[0].set_title("chosen chain length (words)")
    axes[1].hist([s.provenance["chain"]["score"] for s in samples] or [0], bins=20, range=(0, 1), color="#8172b3")
    axes[1].set_title("chosen chain quality score")
    fig.tight_layout()
    fig.savefig(folder / names["chains"], dpi=100)
    plt.close(fig)
    return names
