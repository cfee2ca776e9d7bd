"""Adaptive vs fixed sampling in the weak/strong cascade: generated tokens, live, on the toy pool.

Both modes run the real curation stages (ingest -> strong_filter) with the real vLLM CPU engine:
  fixed    - the same cascade drawing the full k (weak) and n (strong) samples for every problem reaching the
             stage, in one round each (`curate.weak.rounds=[k]`, `curate.strong.rounds=[n]`);
  adaptive - the preset's rounds, a problem leaving the stage as soon as its decision is certain.
The ratio is of the tokens each run generated in the two filter stages (from the stages' manifests).

Sampled outputs differ between two live runs, so the two runs' decisions cannot be compared problem by problem.
"decisions identical" is established by replaying both stopping rules over one recorded stream: the fixed
run's full streams (k weak and n strong outcomes per problem) are replayed round by round with the adaptive
schedule and with the fixed one (`limo_ray.curate.cascade.replay`), and every decision is compared (the unit
test tests/curate/test_cascade.py does the same on synthetic streams).

The same streams also give the floor: replayed one sample per round, the cascade's rules stop exactly when no
outcome still to come could change a decision, so no stopping rule with the same decisions draws fewer tokens
on them (each attempt counted with the tokens it really generated). The script prints that floor before its
last line: with n=8 and a 1..3 band a problem leaves the strong filter only after 4 successes or once its count
is settled, which bounds what any early stop can save on a given pool.

    .venv/bin/python bench/adaptive_filter.py                      # tiny preset, the toy pool (full world)
    .venv/bin/python bench/adaptive_filter.py --limit 1000         # a seeded sample of the pool
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any


def kept_by_level(ledger: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """level -> (strong-filter kept, problems that survived decontamination)."""
    seen: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    for row in ledger:
        if row.get("decontaminate") != "kept":
            continue
        level = str(row["difficulty"])
        seen[level] += 1
        kept[level] += row.get("strong_filter") == "kept"
    return {level: (kept[level], seen[level]) for level in sorted(seen)}


def stage_tokens(run_dir: Path) -> dict[str, int]:
    out = {}
    for stage in ("weak_filter", "strong_filter"):
        manifest = json.loads((run_dir / "curate" / stage / "manifest.json").read_text())
        out[stage] = int(manifest["extra"]["tokens"])
    return out


def replay_agreement(ledger: list[dict[str, Any]], config: Any, fixed_config: Any) -> tuple[int, int, int]:
    """Replay the fixed run's recorded streams under both schedules: (compared, disagreements, adaptive draws)."""
    from limo_ray.curate.cascade import BandRule, WeakRule, replay

    weak, strong = config.curate.weak, config.curate.strong
    rules = {
        "weak_filter": (WeakRule(weak.attempts), weak.rounds, fixed_config.curate.weak.rounds),
        "strong_filter": (
            BandRule(strong.samples, strong.keep_min, strong.keep_max),
            strong.rounds,
            fixed_config.curate.strong.rounds,
        ),
    }
    compared = disagreements = adaptive_draws = 0
    for row in ledger:
        for stage, (rule, adaptive_rounds, fixed_rounds) in rules.items():
            facts = row.get(f"{stage}_facts")
            if not facts or row.get(f"{stage}_reason") == "engine_error":
                continue
            stream = [bool(v) for v in facts["outcomes"]]
            adaptive = replay(rule, adaptive_rounds, stream)
            fixed = replay(rule, fixed_rounds, stream)
            compared += 1
            adaptive_draws += adaptive.drawn
            # Both replays, and the decision the fixed run recorded, must agree.
            if not (adaptive.status.verdict == fixed.status.verdict == row[stage]):
                disagreements += 1
    return compared, disagreements, adaptive_draws


def token_floor(run_dir: Path, ledger: list[dict[str, Any]], config: Any) -> tuple[int, int]:
    """(tokens the fixed run generated, the fewest any rule with the same decisions would) over its streams."""
    from limo_ray.curate.cascade import BandRule, WeakRule, replay
    from limo_ray.curate.generations import stored_attempts

    weak, strong = config.curate.weak, config.curate.strong
    rules = {
        "weak_filter": WeakRule(weak.attempts),
        "strong_filter": BandRule(strong.samples, strong.keep_min, strong.keep_max),
    }
    total = floor = 0
    for stage, rule in rules.items():
        tokens = {
            (a["problem_id"], a["attempt_index"]): a["num_tokens"]
            for a in stored_attempts(run_dir / "curate" / stage / "generations")
        }
        for row in ledger:
            facts = row.get(f"{stage}_facts")
            if not facts or row.get(f"{stage}_reason") == "engine_error":
                continue
            stream = [bool(v) for v in facts["outcomes"]]
            drawn = replay(rule, [1] * len(stream), stream).drawn
            spent = [tokens[(row["problem_id"], i)] for i in range(len(stream))]
            total += sum(spent)
            floor += sum(spent[:drawn])
    return total, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--limit", type=int, help="a seeded sample of this many pool problems [the whole pool]")
    parser.add_argument("--keep", type=Path, help="keep the two run folders here [a temporary folder, removed]")
    args = parser.parse_args()

    from limo_ray.config import load_config
    from limo_ray.curate.context import CurateContext
    from limo_ray.curate.ledger import read_ledger
    from limo_ray.curate.pipeline import curation_stages, run_curation
    from limo_ray.toy.references import resolve_references

    base = resolve_references(load_config(args.config, args.overrides))
    root = args.keep or Path(tempfile.mkdtemp(prefix="limo-adaptive-"))
    root.mkdir(parents=True, exist_ok=True)
    overrides = list(args.overrides)
    if args.limit:
        rows = []
        for source in base.curate.pool.sources:
            rows += Path(source).read_text().splitlines()
        sample = random.Random(0).sample(rows, min(args.limit, len(rows)))
        pool = root / "pool.jsonl"
        pool.write_text("\n".join(sample) + "\n")
        overrides.append(f"curate.pool.sources=[{json.dumps(str(pool))}]")
    weak, strong = base.curate.weak, base.curate.strong
    modes = {
        "adaptive": resolve_references(load_config(args.config, overrides)),
        "fixed": resolve_references(
            load_config(
                args.config,
                [*overrides, f"curate.weak.rounds=[{weak.attempts}]", f"curate.strong.rounds=[{strong.samples}]"],
            )
        ),
    }
    print(
        f"workload: {args.config} preset, weak k={weak.attempts} rounds {weak.rounds}, strong n={strong.samples} "
        f"band {strong.keep_min}..{strong.keep_max} rounds {strong.rounds}; pool "
        f"{'sample of ' + str(args.limit) if args.limit else 'whole'}; run folders under {root}"
    )
    tokens: dict[str, dict[str, int]] = {}
    ledgers: dict[str, list[dict[str, Any]]] = {}
    for mode, config in modes.items():
        ctx = CurateContext(run_dir=root / mode, cluster=config.cluster, log=lambda _: None)
        began = time.perf_counter()
        run_curation(ctx, curation_stages(config, "strong_filter"))
        tokens[mode] = stage_tokens(ctx.run_dir)
        ledgers[mode] = read_ledger(ctx.curate_dir)
        print(
            f"{mode}: {time.perf_counter() - began:.0f}s, generated tokens weak {tokens[mode]['weak_filter']}, "
            f"strong {tokens[mode]['strong_filter']}"
        )
    levels: dict[str, dict[str, str]] = defaultdict(dict)
    for mode, ledger in ledgers.items():
        for level, (kept, seen) in kept_by_level(ledger).items():
            levels[level][mode] = f"{kept}/{seen} = {kept / max(seen, 1):.2f}"
    print("kept fraction by level (strong filter kept / after decontamination):")
    for level, cells in sorted(levels.items()):
        print(f"  level {level}: adaptive {cells.get('adaptive', '-'):>16}   fixed {cells.get('fixed', '-'):>16}")
    compared, disagreements, adaptive_draws = replay_agreement(ledgers["fixed"], modes["adaptive"], modes["fixed"])
    fixed_draws = sum(
        len(row[f"{s}_facts"]["outcomes"])
        for row in ledgers["fixed"]
        for s in ("weak_filter", "strong_filter")
        if row.get(f"{s}_facts")
    )
    print(
        f"replay of the fixed run's {compared} recorded streams: {disagreements} disagreements; the adaptive "
        f"schedule would draw {adaptive_draws} of its {fixed_draws} samples"
    )
    spent, floor = token_floor(root / "fixed", ledgers["fixed"], modes["fixed"])
    print(
        f"floor: on the fixed run's streams, the fewest tokens any stopping rule with the same decisions could "
        f"generate are {floor} of {spent}: ratio {floor / max(1, spent):.3f}"
    )
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    ratio = sum(tokens["adaptive"].values()) / max(1, sum(tokens["fixed"].values()))
    print(f"adaptive/fixed generated-token ratio: {ratio:.3f}, decisions identical: {disagreements == 0}")


if __name__ == "__main__":
    main()
