"""The arms of each study, as lists of LIMO-format samples: pure functions of a finished curation (no Ray).

An arm is what one student is trained on: `Sample` rows like those of `curate/dataset.jsonl`. Every random
choice takes the repeat's seed and a purpose (so the random arm and the weak-only arm are drawn independently),
and candidates are sorted by id before they are shuffled, so an arm depends on its inputs and seed alone.

- quality: problems of the curated pool (those the chains stage reached) with a correct chain at every level
  L1..L5 by the project's scorer; one arm per level, the same problems in each, the level's best chain each.
- difficulty: bins of the decontaminated pool, by the strong filter's solve rate where it measured a problem
  and by the source's level label otherwise; one arm per bin, all of one size.
- size: nested subsets of the curated set (each a prefix of one seeded order).
- selection: curated vs random vs weak-filter-only vs strong-band-only, all of one size; every draw is from the
  pool after dedup and decontamination.
- backbone: the curated set, once per student.

Arms that need chains the curation never drew (difficulty, selection) are built in two steps: `*_candidates`
says which problems need chains, the study generates them (`generate.py`), and `*_arms` picks from the scored
chains with the same chain-selection rule as `select` (`best_chains`).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from limo_ray.ablate.source import Curation, filter_facts, kept_by, source_level, strong_solve_rate
from limo_ray.config import DifficultyBin
from limo_ray.curate.baseline import OVERSAMPLE
from limo_ray.curate.export import chain_sample
from limo_ray.curate.select import best_chains
from limo_ray.errors import LimoError
from limo_ray.records import Sample

LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
SELECTION_ARMS: tuple[str, ...] = ("curated", "random", "weak_only", "strong_only")
# Candidates per wanted sample in a difficulty bin: hard bins hold problems no chain model solves.
DIFFICULTY_OVERSAMPLE = 3.0

Chain = Mapping[str, Any]


@dataclass(frozen=True)
class Arm:
    """One arm of one repeat: the samples a student (a model name under `models:`) is fine-tuned on."""

    name: str
    seed: int
    samples: tuple[Sample, ...]
    student: str

    @property
    def label(self) -> str:
        """The arm's run name (its folder, its served name): `L3-s0`, `n50-s2`."""
        return f"{self.name}-s{self.seed}"

    @property
    def problem_ids(self) -> list[str]:
        return [s.id for s in self.samples]


def seeded_order(ids: Iterable[str], seed: int, purpose: str) -> list[str]:
    """`ids` (deduplicated) in a random order that depends only on the set, the seed and the purpose."""
    ordered = sorted(set(ids))
    random.Random(f"limo-ray-ablate:{purpose}:{seed}").shuffle(ordered)
    return ordered


def reference_arm(study: str, names: Sequence[str]) -> str:
    """The arm every other is compared with: the recipe's choice (the highest quality level, the hardest bin, the
    largest set, the curated selection, the config's first student)."""
    if study == "selection":
        return "curated"
    if study == "backbone":
        return names[0]
    return names[-1]  # quality: lowest level first; difficulty: easiest bin first; size: smallest first


@dataclass(frozen=True)
class ArmSource:
    """What the chain-built arms of a study are made from: the finished curation, the system prompt every sample
    carries, the chain models in `select`'s order of preference, and the student trained on each arm."""

    curation: Curation
    system: str
    chain_models: tuple[str, ...]
    student: str

    def best_chains(self, scored: Sequence[Chain]) -> dict[str, Chain]:
        """Per problem, the chain `select` would pick among `scored`."""
        return best_chains(scored, self.chain_models)

    def arm(self, name: str, seed: int, ids: Sequence[str], chains: Mapping[str, Chain]) -> Arm:
        """The arm of LIMO-format samples of `ids`, each with its chain from `chains` (a scored chain row)."""
        ledger = {str(row["problem_id"]): row for row in self.curation.ledger}
        samples = []
        for pid in ids:
            row = ledger.get(pid, {})
            weak, strong = filter_facts(row, "weak_filter"), filter_facts(row, "strong_filter")
            problem, chain = self.curation.problems[pid], chains[pid]
            samples.append(chain_sample(problem, chain, chain["response"], self.system, weak, strong))
        return Arm(name, seed, tuple(samples), self.student)


def take_with_chains(order: Sequence[str], chains: Mapping[str, Chain], size: int) -> list[str]:
    """The first `size` problems of `order` that have a chain (problems no chain model solved sit out)."""
    return [pid for pid in order if pid in chains][:size]


# ----------------------------------------------------------------------------------------------- quality


def chains_by_level(scored: Sequence[Chain], models: Sequence[str]) -> dict[str, dict[int, Chain]]:
    """{problem: {level: the level's best chain}}, each pick by `select`'s rule among that level's chains."""
    grouped: dict[int, list[Chain]] = {}
    for row in scored:
        grouped.setdefault(int(row["level"]), []).append(row)
    out: dict[str, dict[int, Chain]] = {}
    for level, rows in grouped.items():
        for pid, chain in best_chains(rows, models).items():
            out.setdefault(pid, {})[level] = chain
    return out


def quality_arms(
    source: ArmSource, scored: Sequence[Chain], *, count: int, seed: int, levels: Sequence[int] = LEVELS
) -> list[Arm]:
    """One arm per level of `levels` over the same `count` problems (fewer if fewer have a chain at each)."""
    by_level = chains_by_level(scored, source.chain_models)
    problems = source.curation.problems
    complete = [pid for pid, have in by_level.items() if pid in problems and set(levels) <= set(have)]
    if not complete:
        seen = Counter(int(row["level"]) for row in scored)
        per_level = ", ".join(f"L{level} {seen.get(level, 0)}" for level in LEVELS)
        raise LimoError(
            f"quality: no problem has a correct chain at every level {', '.join(f'L{v}' for v in levels)} "
            f"({len(by_level)} problems, {len(scored)} correct chains scored: {per_level}): draw more chains per "
            "problem (--set ablate.quality.chains_per_model=N), or, for levels the chain models never write, set "
            "ablate.quality.levels to the ones they do"
        )
    chosen = seeded_order(complete, seed, "quality")[:count]
    return [source.arm(f"L{level}", seed, chosen, {pid: by_level[pid][level] for pid in chosen}) for level in levels]


# ----------------------------------------------------------------------------------------------- difficulty


def difficulty_bin(row: Mapping[str, Any], bins: Sequence[DifficultyBin]) -> str | None:
    """The first bin a problem fits: by the strong filter's solve rate where it measured one, else by level."""
    rate = strong_solve_rate(row)
    if rate is not None:
        for b in bins:
            low, high = b.solve_rate
            if low <= rate < high or rate == high == 1.0:
                return b.name
        return None
    level = source_level(row.get("difficulty"))
    return next((b.name for b in bins if level is not None and level in b.levels), None)


def difficulty_members(curation: Curation, bins: Sequence[DifficultyBin]) -> dict[str, list[str]]:
    """Every problem of the decontaminated pool in its bin (disjoint: a problem is in one bin or none)."""
    members: dict[str, list[str]] = {b.name: [] for b in bins}
    pool = set(kept_by(curation.ledger, "decontaminate"))
    for row in curation.ledger:
        if row["problem_id"] in pool and (name := difficulty_bin(row, bins)) is not None:
            members[name].append(str(row["problem_id"]))
    return members


def difficulty_candidates(
    curation: Curation, bins: Sequence[DifficultyBin], *, per_arm: int, seed: int
) -> dict[str, list[str]]:
    """Per bin, the problems (in the repeat's order) whose chains the study needs: enough that `per_arm` of them
    have a correct chain, as far as the bin allows."""
    wanted = math.ceil(per_arm * DIFFICULTY_OVERSAMPLE)
    members = difficulty_members(curation, bins)
    empty = [name for name, ids in members.items() if not ids]
    if empty:
        raise LimoError(
            f"difficulty: no problem of the decontaminated pool falls in bin(s) {', '.join(empty)}: "
            "change ablate.difficulty.bins"
        )
    return {name: seeded_order(ids, seed, f"difficulty:{name}")[:wanted] for name, ids in members.items()}


def difficulty_arms(
    source: ArmSource, candidates: Mapping[str, Sequence[str]], scored: Sequence[Chain], *, per_arm: int, seed: int
) -> list[Arm]:
    """One arm per bin, each of the same size: `per_arm`, or what the scarcest bin has chains for."""
    best = source.best_chains(scored)
    size = min([per_arm, *(len(take_with_chains(ids, best, per_arm)) for ids in candidates.values())])
    if size == 0:
        bare = [name for name, ids in candidates.items() if not take_with_chains(ids, best, 1)]
        raise LimoError(f"difficulty: no correct chain for any candidate of bin(s) {', '.join(bare)}")
    return [source.arm(name, seed, take_with_chains(order, best, size), best) for name, order in candidates.items()]


# ----------------------------------------------------------------------------------------------- size


def size_arms(curation: Curation, *, sizes: Sequence[int], seed: int, student: str) -> list[Arm]:
    """Nested subsets of the curated set: each size is a prefix of one seeded order, so each contains the last."""
    if max(sizes) > len(curation.curated):
        raise LimoError(
            f"size: the curated set has {len(curation.curated)} samples, fewer than the largest size {max(sizes)}: "
            "change ablate.size.sizes"
        )
    by_id = {s.id: s for s in curation.curated}
    order = [by_id[pid] for pid in seeded_order(by_id, seed, "size")]
    return [Arm(f"n{size}", seed, as_curated(curation, order[:size]), student) for size in sorted(sizes)]


def as_curated(curation: Curation, samples: Sequence[Sample]) -> tuple[Sample, ...]:
    """`samples`; in the curated set's own order when they are all of it, so the arm's dataset is the same file
    as `curate/dataset.jsonl` (and `limo run`'s finished training of it can be reused)."""
    if sorted(s.id for s in samples) == sorted(s.id for s in curation.curated):
        return tuple(curation.curated)
    return tuple(samples)


# ----------------------------------------------------------------------------------------------- selection


def selection_size(curation: Curation, size: int | None) -> int:
    """Samples per selection arm: the configured size, at most the curated set's."""
    curated = len(curation.curated)
    if size is not None and size > curated:
        raise LimoError(f"selection: size {size} is more than the curated set's {curated} samples")
    return size or curated


def selection_candidates(curation: Curation, *, size: int, seed: int) -> dict[str, list[str]]:
    """The random and weak-filter-only candidates (in the repeat's order) whose chains the study needs."""
    wanted = math.ceil(size * OVERSAMPLE)
    pools = {"random": kept_by(curation.ledger, "decontaminate"), "weak_only": kept_by(curation.ledger, "weak_filter")}
    return {name: seeded_order(ids, seed, f"selection:{name}")[:wanted] for name, ids in pools.items()}


def strong_probe(curation: Curation, *, size: int, seed: int) -> list[str]:
    """Problems of the decontaminated pool (in the repeat's order) to put through the strong filter alone.

    How many: enough that, at the band rate the curation saw (problems in band per decontaminated problem, a
    lower bound: the weak filter's drops were never measured), `size x OVERSAMPLE` fall in the band."""
    pool = kept_by(curation.ledger, "decontaminate")
    in_band = len(kept_by(curation.ledger, "strong_filter"))
    if not pool or not in_band:
        raise LimoError("selection: the curation kept no problem in the strong filter's band: no strong-only arm")
    count = math.ceil(size * OVERSAMPLE * len(pool) / in_band)
    return seeded_order(pool, seed, "selection:strong_only")[:count]


def strong_only_candidates(probe: Sequence[str], in_band: Iterable[str], *, size: int) -> list[str]:
    """The probed problems the strong filter kept, in the probe's order."""
    band = set(in_band)
    return [pid for pid in probe if pid in band][: math.ceil(size * OVERSAMPLE)]


def selection_arms(
    source: ArmSource, candidates: Mapping[str, Sequence[str]], scored: Sequence[Chain], *, size: int, seed: int
) -> list[Arm]:
    """curated, random, weak_only, strong_only: one size, the smallest any arm reaches (at most `size`)."""
    curation = source.curation
    best = source.best_chains(scored)
    picks = {name: take_with_chains(candidates[name], best, size) for name in SELECTION_ARMS[1:]}
    equal = min(size, len(curation.curated), *(len(ids) for ids in picks.values()))
    if equal == 0:
        bare = [name for name, ids in picks.items() if not ids]
        raise LimoError(f"selection: no correct chain for any candidate of the {', '.join(bare)} arm(s)")
    by_id = {s.id: s for s in curation.curated}
    curated = as_curated(curation, [by_id[pid] for pid in seeded_order(by_id, seed, "selection:curated")[:equal]])
    return [Arm("curated", seed, curated, source.student)] + [
        source.arm(name, seed, ids[:equal], best) for name, ids in picks.items()
    ]


# ----------------------------------------------------------------------------------------------- backbone


def backbone_arms(curation: Curation, *, students: Sequence[str], seed: int) -> list[Arm]:
    """The curated set, once per student."""
    if len(students) < 2:
        raise LimoError("backbone: list two or more students (model names under `models:`) in ablate.backbone.students")
    return [Arm(student, seed, tuple(curation.curated), student) for student in students]
