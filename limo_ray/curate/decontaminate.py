"""decontaminate: drop pool problems that overlap an evaluation set, and say which item each overlaps.

Overlap is n-grams (8 and 13 by default) of the words, numbers and math symbols of a text, against every
registered benchmark whose data is present. An n-gram found in many texts (benchmark items and pool problems) is
boilerplate ("where m and n are relatively prime positive integers, find"), not a copied problem, and is
ignored (`max_ngram_items`); pool problems are counted only for n-grams some benchmark item has, so memory
stays bounded by the benchmarks' size. One shared phrase is not a copy: a problem overlaps an item when the
n-grams they share are at least `min_overlap` of the smaller one's n-grams (the overlap coefficient), so a
verbatim copy (1.0), a copy inside a longer text, or a lightly edited copy is caught, and a problem that only
shares a turn of phrase with a benchmark item is not. A problem shorter than n words overlaps only if its
whole text is a benchmark item's. Every removal goes to `curate/decontamination.jsonl` with the benchmark
item and a shared n-gram.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from limo_ray.benchmarks import BenchmarkRegistry
from limo_ray.config import BenchmarksConfig, DecontaminateConfig
from limo_ray.curate.context import CurateContext
from limo_ray.curate.stage import Decision, Stage, StageResult
from limo_ray.errors import LimoError
from limo_ray.records import Problem
from limo_ray.runfolder import write_jsonl_atomic

REPORT_FILE = "decontamination.jsonl"

# Spacing and sizing commands change nothing; `$` and braces are grouping, not content.
_LATEX_NOISE = re.compile(r"\\(?:left|right|[,;:! ]|quad|qquad|displaystyle|mathrm|text|mbox)|[${}]")
_LATEX_ALIASES = {"\\dfrac": "\\frac", "\\tfrac": "\\frac", "\\cdots": "\\dots", "\\ldots": "\\dots"}
# A token: a LaTeX command, a run of letters/digits, one CJK character, or one math symbol (sentence
# punctuation and quotes are not content: "What is 6 times 7?" copies "what is 6 times 7").
_TOKEN = re.compile(r"\\[a-z]+|[\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af]|[^\W_]+|[^\w\s.,;:?!~'\"`]")


def ngram_tokens(text: str) -> list[str]:
    """Words, numbers *and* math symbols: a copied problem shares its formulas, not just its phrasing."""
    text = _LATEX_NOISE.sub(" ", unicodedata.normalize("NFKC", text).lower())
    return [_LATEX_ALIASES.get(t, t) for t in _TOKEN.findall(text)]


@dataclass(frozen=True)
class Overlap:
    benchmark: str
    item_id: str
    n: int
    ngram: str
    shared: int
    coefficient: float


class BenchmarkIndex:
    """N-grams of benchmark items -> the items that contain them."""

    def __init__(self, ngram_sizes: Sequence[int], max_ngram_items: int, min_overlap: float = 0.5) -> None:
        self.ngram_sizes = sorted(set(ngram_sizes))
        self.max_ngram_items = max_ngram_items
        self.min_overlap = min_overlap
        self._sizes: dict[tuple[int, str, str], int] = {}
        self._items: dict[tuple[int, str], set[tuple[str, str]]] = defaultdict(set)
        self._pool_counts: dict[tuple[int, str], int] = defaultdict(int)

    def add(self, benchmark: str, item_id: str, text: str) -> None:
        words = ngram_tokens(text)
        for n in self.ngram_sizes:
            grams = set(_ngrams(words, n))
            self._sizes[(n, benchmark, item_id)] = len(grams)
            for gram in grams:
                self._items[(n, gram)].add((benchmark, item_id))

    def count_pool_text(self, text: str) -> None:
        """Count a pool problem's n-grams that benchmark items share: frequent ones are boilerplate."""
        words = ngram_tokens(text)
        for n in self.ngram_sizes:
            for gram in set(_ngrams(words, n)):
                if (n, gram) in self._items:
                    self._pool_counts[(n, gram)] += 1

    def overlaps(self, text: str) -> list[Overlap]:
        """Benchmark items `text` overlaps (see the module docstring), one entry per item, smallest n first."""
        words = ngram_tokens(text)
        found: dict[tuple[str, str], Overlap] = {}
        for n in self.ngram_sizes:
            grams = set(_ngrams(words, n))
            shared: dict[tuple[str, str], list[str]] = defaultdict(list)
            for gram in grams:
                items = self._items.get((n, gram))
                if not items or len(items) + self._pool_counts.get((n, gram), 0) > self.max_ngram_items:
                    continue
                for item in items:
                    shared[item].append(gram)
            for (benchmark, item_id), common in sorted(shared.items()):
                smaller = min(len(grams), self._sizes[(n, benchmark, item_id)])
                coefficient = len(common) / max(smaller, 1)
                if coefficient >= self.min_overlap and (benchmark, item_id) not in found:
                    found[(benchmark, item_id)] = Overlap(
                        benchmark, item_id, n, min(common), len(common), round(coefficient, 3)
                    )
        return list(found.values())


def _ngrams(words: list[str], n: int) -> list[str]:
    if len(words) < n:
        # A short text can only be copied whole: index it as one "n-gram" of its own length.
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


@dataclass(frozen=True)
class Decontaminate(Stage):
    name = "decontaminate"
    decontaminate: DecontaminateConfig
    benchmarks: BenchmarksConfig  # where the benchmark files are

    def inputs(self) -> list[str]:
        """The benchmark files it would read, present or not (a missing one is reported when the stage runs)."""
        paths = []
        for bench in self._registry().select(self.decontaminate.benchmarks):
            try:
                paths.append(bench.resolve_path(self.benchmarks.data_root))
            except LimoError:  # a relative path and no data root: reported as skipped by `run`
                continue
        return paths

    def _registry(self) -> BenchmarkRegistry:
        return BenchmarkRegistry.from_config(self.benchmarks)

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        settings = self.decontaminate
        data_root = self.benchmarks.data_root
        registry = self._registry()
        present, missing = registry.available(settings.benchmarks, data_root)
        if missing and settings.benchmarks != "all":
            raise LimoError("decontamination benchmarks not found: " + "; ".join(missing))
        if missing:  # one line with the fix; each benchmark and why is in the manifest (skipped_benchmarks)
            checked = ", ".join(b.name for b in present) or "none"
            ctx.log(
                f"[curate] decontaminate: {len(missing)} registered benchmarks have no data (set "
                f"benchmarks.data_root; which and why: {self.name}/manifest.json); checked: {checked}"
            )
        index = BenchmarkIndex(settings.ngram_sizes, settings.max_ngram_items, settings.min_overlap)
        items = 0
        for bench in present:
            for item in registry.load(bench.name, data_root).result.problems:
                index.add(bench.name, item.id, item.problem)
                items += 1
        for p in problems:
            index.count_pool_text(p.problem)
        kept, decisions, report = [], [], []
        for p in problems:
            hits = index.overlaps(p.problem)
            if not hits:
                kept.append(p)
                decisions.append(Decision(p.id, "kept", "clean"))
                continue
            overlaps = [
                {
                    "benchmark": h.benchmark,
                    "item_id": h.item_id,
                    "n": h.n,
                    "ngram": h.ngram,
                    "shared_ngrams": h.shared,
                    "overlap": h.coefficient,
                }
                for h in hits
            ]
            decisions.append(Decision(p.id, "dropped", "contaminated", {"overlaps": overlaps}))
            report.append({"problem_id": p.id, "problem": p.problem, "source": p.source, "overlaps": overlaps})
        write_jsonl_atomic(ctx.curate_dir / REPORT_FILE, report)
        return StageResult(
            kept,
            decisions,
            facts={"benchmarks": [b.name for b in present], "benchmark_items": items, "skipped_benchmarks": missing},
        )
