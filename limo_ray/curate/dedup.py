"""dedup: exact duplicates (same normalised text) and near-duplicates (MinHash LSH), one representative each.

Near-duplicates are found by MinHash over character shingles of the normalised text (robust to rewording a
few words, to whitespace and punctuation changes), via `datasketch`'s LSH index. A candidate pair counts as a
duplicate only if its estimated Jaccard similarity reaches the threshold *and* both problems contain the same
numbers: "What is 23 + 45?" and "What is 23 + 46?" share most shingles but are different problems. List
enumerators at the start of a line ("1.", "(2)") are not part of the problem's numbers, so renumbering a list
does not make a new problem. The first problem in pool order is kept and records what it absorbed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from limo_ray.config import DedupConfig
from limo_ray.curate.context import CurateContext
from limo_ray.curate.stage import Decision, Stage, StageResult
from limo_ray.records import Problem

_NON_WORD = re.compile(r"[^0-9a-z]+")
_LATEX_COMMAND = re.compile(r"\\[a-zA-Z]+")
_ENUMERATOR = re.compile(r"(?m)^\s*\(?\d+[.)]\s")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def dedup_key(text: str) -> str:
    """Lower-case words and numbers only: what stays when formatting, LaTeX spacing and punctuation go."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _LATEX_COMMAND.sub(" ", text)
    return _NON_WORD.sub(" ", text).strip()


def problem_numbers(text: str) -> Counter[str]:
    return Counter(_NUMBER.findall(_ENUMERATOR.sub(" ", unicodedata.normalize("NFKC", text))))


def shingles(key: str, size: int) -> set[bytes]:
    if len(key) <= size:
        return {key.encode()}
    return {key[i : i + size].encode() for i in range(len(key) - size + 1)}


@dataclass(frozen=True)
class Dedup(Stage):
    name = "dedup"
    dedup: DedupConfig
    seed: int  # seeds the MinHash permutations

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        settings = self.dedup
        duplicate_of: dict[str, tuple[str, str]] = {}
        representatives: list[Problem] = []
        if settings.exact:
            first_by_key: dict[str, str] = {}
            for p in problems:
                key = dedup_key(p.problem)
                if key in first_by_key:
                    duplicate_of[p.id] = (first_by_key[key], "exact_duplicate")
                else:
                    first_by_key[key] = p.id
                    representatives.append(p)
        else:
            representatives = list(problems)
        if settings.near:
            duplicate_of.update(
                near_duplicates(
                    representatives,
                    settings.minhash_threshold,
                    settings.num_perm,
                    settings.shingle_size,
                    self.seed,
                )
            )
        absorbed: dict[str, list[str]] = {}
        for pid, (rep, _) in duplicate_of.items():
            absorbed.setdefault(_root(rep, duplicate_of), []).append(pid)
        kept, decisions = [], []
        for p in problems:
            if p.id in duplicate_of:
                rep, reason = duplicate_of[p.id]
                decisions.append(Decision(p.id, "dropped", reason, {"duplicate_of": _root(rep, duplicate_of)}))
            else:
                kept.append(p)
                decisions.append(Decision(p.id, "kept", "unique", {"absorbed": sorted(absorbed.get(p.id, []))}))
        exact = sum(1 for _, r in duplicate_of.values() if r == "exact_duplicate")
        return StageResult(
            kept, decisions, facts={"exact_duplicates": exact, "near_duplicates": len(duplicate_of) - exact}
        )


def _root(pid: str, duplicate_of: dict[str, tuple[str, str]]) -> str:
    while pid in duplicate_of:
        pid = duplicate_of[pid][0]
    return pid


def near_duplicates(
    problems: Sequence[Problem], threshold: float, num_perm: int, shingle_size: int, seed: int = 0
) -> dict[str, tuple[str, str]]:
    """{duplicate id: (representative id, "near_duplicate")}, earliest problem in order as representative."""
    from datasketch import MinHash, MinHashLSH

    keys = [dedup_key(p.problem) for p in problems]
    signatures = MinHash.bulk([list(shingles(k, shingle_size)) for k in keys], num_perm=num_perm, seed=seed + 1)
    numbers = [problem_numbers(p.problem) for p in problems]
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    index_of: dict[str, int] = {}
    found: dict[str, tuple[str, str]] = {}
    for i, p in enumerate(problems):
        match = None
        for candidate in sorted(lsh.query(signatures[i]), key=index_of.__getitem__):
            j = index_of[candidate]
            if numbers[i] == numbers[j] and signatures[i].jaccard(signatures[j]) >= threshold:
                match = candidate
                break
        if match is None:
            lsh.insert(p.id, signatures[i])
            index_of[p.id] = i
        else:
            found[p.id] = (match, "near_duplicate")
    return found
