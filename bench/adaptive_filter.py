"""Adaptive vs fixed sampling in the weak/strong cascade: generated tokens and wall time, live, on the toy pool.

Both modes run the real curation stages (ingest -> strong_filter) with the real vLLM CPU engine:
  fixed    - the same cascade drawing the full k (weak) and n (strong) samples for every problem reaching the
             stage, in one round each (`curate.weak.rounds=[k]`, `curate.strong.rounds=[n]`);
  adaptive - the preset's rounds, a problem leaving the stage as soon as its decision is certain.
The runs alternate (adaptive, fixed, adaptive, fixed, ...): one warm-up pair (unless `--no-warm-up`), then
`--pairs` pairs, each run in a fresh run folder. Each mode's generated tokens (in the two filter stages, from the
stages' manifests) and wall seconds (the whole run, engine starts included) are printed per pair, then as median
(min..max) over the pairs. The engines are seeded, so the same requests give the same token counts run after run
(a spread of zero shows it); wall time varies, which is why both are reported. The ratio printed last is the
median of the pairs' token ratios; the wall-time ratio is printed before it.

Sampled outputs differ between the two modes (they send different batches), so their decisions cannot be compared
problem by problem. "decisions identical" is established by replaying both stopping rules over one recorded
stream: each fixed run's full streams (k weak and n strong outcomes per problem) are replayed round by round with
the adaptive schedule and with the fixed one (`limo_ray.curate.cascade.replay`), and every decision is compared
(the unit test tests/curate/test_cascade.py does the same on synthetic streams); it is True when no pair's
replay disagrees.

The same streams also give the floor: replayed one sample per round, the cascade's rules stop exactly when no
outcome still to come could change a decision, so no stopping rule with the same decisions draws fewer tokens
on them (each attempt counted with the tokens it really generated). The script prints that floor before its
last lines: with n=8 and a 1..3 band a problem leaves the strong filter only after 4 successes or once its count
is settled, which bounds what any early stop can save on a given pool.

    .venv/bin/python bench/adaptive_filter.py --set toy.size=test --limit 300 --pairs 5   # a few minutes a pair
    .venv/bin/python bench/adaptive_filter.py --pairs 5            # tiny preset, the whole full-size toy pool
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from collections import Counter
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


def kept_cell(counts: tuple[int, int] | None) -> str:
    return f"{counts[0]}/{counts[1]} = {counts[0] / max(counts[1], 1):.2f}" if counts else "-"


def live_run(config: Any, run_dir: Path, adaptive: Any | None) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """One live run, ingest -> strong_filter: its wall seconds and generated tokens (all, and per filter stage),
    and its ledger. For a fixed run (`adaptive`: the adaptive mode's config), also the replay of its recorded
    streams under both schedules and the token floor on them."""
    from limo_ray.curate.context import CurateContext
    from limo_ray.curate.ledger import read_ledger
    from limo_ray.curate.pipeline import curation_stages, run_curation

    ctx = CurateContext(run_dir=run_dir, cluster=config.cluster, log=lambda _: None)
    began = time.perf_counter()
    run_curation(ctx, curation_stages(config, "strong_filter"))
    seconds = time.perf_counter() - began
    tokens = stage_tokens(run_dir)
    result: dict[str, float] = {"seconds": seconds, "tokens": sum(tokens.values()), **tokens}
    ledger = read_ledger(ctx.curate_dir)
    if adaptive is not None:
        compared, disagreements, adaptive_draws = replay_agreement(ledger, adaptive, config)
        spent, floor = token_floor(run_dir, ledger, config)
        fixed_draws = sum(
            len(row[f"{s}_facts"]["outcomes"])
            for row in ledger
            for s in ("weak_filter", "strong_filter")
            if row.get(f"{s}_facts")
        )
        result.update(
            compared=compared,
            disagreements=disagreements,
            adaptive_draws=adaptive_draws,
            fixed_draws=fixed_draws,
            spent=spent,
            floor=floor,
        )
    return result, ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--limit", type=int, help="a seeded sample of this many pool problems [the whole pool]")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved (adaptive, fixed) pairs after warm-up")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false", help="skip the warm-up pair")
    parser.add_argument("--keep", type=Path, help="keep the run folders here [a temporary folder, removed]")
    args = parser.parse_args()

    from harness import interleaved_rounds, spread

    from limo_ray.config import load_config
    from limo_ray.engine import init_ray
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
        f"{'sample of ' + str(args.limit) if args.limit else 'whole'}; {args.pairs} interleaved pairs"
        f"{' after a warm-up pair' if args.warm_up else ''}; run folders under {root}"
    )
    init_ray(base.cluster)  # started once, before any timed run
    runs = iter(range(10_000))
    levels: dict[str, dict[str, tuple[int, int]]] = {}

    def live_round(mode: str) -> dict[str, float]:
        run_dir = root / f"{mode}-{next(runs)}"
        result, ledger = live_run(modes[mode], run_dir, modes["adaptive"] if mode == "fixed" else None)
        levels[mode] = kept_by_level(ledger)
        if args.keep is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        return result

    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    sides = {mode: (lambda m=mode: live_round(m)) for mode in modes}
    for i, cycle in enumerate(interleaved_rounds(sides, args.pairs, warm_up=args.warm_up)):
        for mode, result in cycle.items():
            results[mode].append(result)
        a, f = cycle["adaptive"], cycle["fixed"]
        print(
            f"pair {i + 1}: "
            + "   ".join(
                f"{mode} {r['tokens']:.0f} tokens (weak {r['weak_filter']:.0f}, strong {r['strong_filter']:.0f}), "
                f"{r['seconds']:.0f}s"
                for mode, r in cycle.items()
            )
            + f"   token ratio {a['tokens'] / f['tokens']:.3f}, time ratio {a['seconds'] / f['seconds']:.3f}",
            flush=True,
        )
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    for mode, rounds in results.items():
        print(
            f"{mode}: generated tokens {spread([r['tokens'] for r in rounds])} (weak "
            f"{spread([r['weak_filter'] for r in rounds])}, strong {spread([r['strong_filter'] for r in rounds])}); "
            f"seconds {spread([r['seconds'] for r in rounds], 1)}"
        )
    print("kept fraction by level in the last pair (strong filter kept / after decontamination):")
    for level in sorted(set(levels["adaptive"]) | set(levels["fixed"])):
        cells = {mode: kept_cell(levels[mode].get(level)) for mode in modes}
        print(f"  level {level}: adaptive {cells['adaptive']:>16}   fixed {cells['fixed']:>16}")
    fixed = results["fixed"]
    disagreements = [int(r["disagreements"]) for r in fixed]
    last = fixed[-1]
    print(
        f"replay of the fixed run's {last['compared']:.0f} recorded streams: {disagreements} disagreements (each "
        f"pair); the adaptive schedule would draw {last['adaptive_draws']:.0f} of its {last['fixed_draws']:.0f} "
        "samples"
    )
    print(
        f"floor: on the fixed run's streams, the fewest tokens any stopping rule with the same decisions could "
        f"generate are {last['floor']:.0f} of {last['spent']:.0f}: ratio {last['floor'] / max(1, last['spent']):.3f}"
    )
    token_ratios = [a["tokens"] / max(1, f["tokens"]) for a, f in zip(results["adaptive"], fixed, strict=True)]
    time_ratios = [a["seconds"] / f["seconds"] for a, f in zip(results["adaptive"], fixed, strict=True)]
    print(f"adaptive/fixed wall-time ratio: {spread(time_ratios, 3)}")
    print(f"adaptive/fixed generated-token ratio, each pair: {spread(token_ratios, 3)}")
    print(
        f"adaptive/fixed generated-token ratio: {statistics.median(token_ratios):.3f}, "
        f"decisions identical: {not any(disagreements)}"
    )


if __name__ == "__main__":
    main()
