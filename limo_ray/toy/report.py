"""`limo toy report`: measure the toy world's calibration with the real vLLM engine inside a Ray Data pipeline.

The world is only useful if LIMO's decisions mean something in it, so this measures exactly what curation and
evaluation rely on, on the `toy` benchmark, graded by the project grader:
  - the weak model's solve rate within k attempts falls with difficulty (>= 80% at level 1, <= 20% at level 5);
  - the strong model solves more than the weak one at levels 3-5, and enough level-4/5 problems get 1-3
    successes of 8 strong samples (>= 10% at full size, >= 30% at test size) that a LIMO band filter keeps
    hard problems;
  - the student base scores below the strong model (greedy), so SFT has room to improve it.

The per-level table is a pure function of (model, problem, level, verdicts) rows (`level_table`), testable
without engines; `measure` is the thin layer that runs each model through `limo_ray.engine.generate`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from limo_ray.config import LIMO_SYSTEM_PROMPT, ClusterConfig
from limo_ray.toy.cache import ToyWorld
from limo_ray.toy.problems import LEVELS

# The share of level-4/5 benchmark problems that must land in the strong filter's band (see calibration_checks).
BAND_SHARE_FLOOR: dict[str, float] = {"full": 0.10, "test": 0.30}


@dataclass(frozen=True)
class Run:
    """One measurement: a model of the world sampled `n` times per benchmark problem."""

    label: str  # the column it feeds: weak, strong, strong_greedy, student
    model: str  # weak / strong / strong_b / student
    n: int
    temperature: float
    top_p: float = 1.0


def default_runs(
    size: str = "full",
    weak_attempts: int = 4,
    strong_samples: int = 8,
    temperature: float = 0.7,
    top_p: float = 0.95,
) -> tuple[Run, ...]:
    """The tiny preset's filter settings (weak k=4, strong n=8, T=0.7), plus greedy strong and student at full
    size; the test size's bounds need only the two filter models (each run costs an engine start)."""
    runs = (
        Run("weak", "weak", weak_attempts, temperature, top_p),
        Run("strong", "strong", strong_samples, temperature, top_p),
    )
    if size == "test":
        return runs
    return (*runs, Run("strong_greedy", "strong", 1, 0.0), Run("student", "student", 1, 0.0))


@dataclass(frozen=True)
class LevelRow:
    level: int
    problems: int
    weak_any: float | None  # problems with at least one of the weak model's samples right
    weak_mean: float | None  # mean per-sample success of the weak model
    strong_mean: float | None
    strong_any: float | None
    strong_band: float | None  # problems with band_min..band_max of the strong samples right
    strong_greedy: float | None
    student_greedy: float | None


@dataclass
class CalibrationReport:
    levels: list[LevelRow]
    benchmark: dict[str, float]  # label -> mean per-sample success over the whole benchmark
    band: tuple[int, int]
    runs: list[dict[str, Any]] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "levels": [asdict(row) for row in self.levels],
            "benchmark": self.benchmark,
            "band": list(self.band),
            "runs": self.runs,
            "checks": [{"check": name, "passed": ok, "measured": detail} for name, ok, detail in self.checks],
        }

    def format(self) -> str:
        lo, hi = self.band
        head = (
            f"{'level':>5} {'n':>4} {'weak any':>9} {'weak mean':>9} {'strong mean':>11} {'strong any':>10} "
            f"{f'band {lo}-{hi}':>9} {'strong T=0':>10} {'student T=0':>11}"
        )
        lines = [head]
        for row in self.levels:
            cells = [row.weak_any, row.weak_mean, row.strong_mean, row.strong_any, row.strong_band]
            cells += [row.strong_greedy, row.student_greedy]
            widths = [9, 9, 11, 10, 9, 10, 11]
            shown = " ".join(f"{'-' if v is None else f'{v:.2f}':>{w}}" for v, w in zip(cells, widths, strict=True))
            lines.append(f"{row.level:>5} {row.problems:>4} {shown}")
        lines.append("benchmark: " + ", ".join(f"{k} {v:.3f}" for k, v in self.benchmark.items()))
        for name, ok, detail in self.checks:
            lines.append(f"[{'ok' if ok else 'FAIL'}] {name}: {detail}")
        return "\n".join(lines)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def level_table(
    rows: Iterable[Mapping[str, Any]], band: tuple[int, int] = (1, 3), levels: Sequence[int] = LEVELS
) -> list[LevelRow]:
    """Per-level calibration from rows {"label", "problem_id", "level", "correct": [bool, ...]}.

    `label` is a run's label (weak, strong, strong_greedy, student); labels not present give None cells.
    """
    by: dict[tuple[str, int], list[list[bool]]] = defaultdict(list)
    problems: dict[int, set[str]] = defaultdict(set)
    for row in rows:
        level = int(row["level"])
        verdicts = [bool(v) for v in row["correct"]]
        if not verdicts:
            continue
        by[(str(row["label"]), level)].append(verdicts)
        problems[level].add(str(row["problem_id"]))
    lo, hi = band
    out = []
    for level in levels:
        weak, strong = by.get(("weak", level), []), by.get(("strong", level), [])
        out.append(
            LevelRow(
                level=level,
                problems=len(problems[level]),
                weak_any=_mean([float(any(v)) for v in weak]),
                weak_mean=_mean([sum(v) / len(v) for v in weak]),
                strong_mean=_mean([sum(v) / len(v) for v in strong]),
                strong_any=_mean([float(any(v)) for v in strong]),
                strong_band=_mean([float(lo <= sum(v) <= hi) for v in strong]),
                strong_greedy=_mean([float(v[0]) for v in by.get(("strong_greedy", level), [])]),
                student_greedy=_mean([float(v[0]) for v in by.get(("student", level), [])]),
            )
        )
    return out


def benchmark_means(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    per_label: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["correct"]:
            per_label[str(row["label"])].append(sum(map(bool, row["correct"])) / len(row["correct"]))
    return {label: sum(v) / len(v) for label, v in per_label.items()}


def calibration_checks(
    levels: Sequence[LevelRow], benchmark: Mapping[str, float], size: str
) -> list[tuple[str, bool, str]]:
    """The bounds of issue 3: strict at full size, the weaker ones that hold at test size."""
    at = {row.level: row for row in levels}
    first, last = at[min(at)], at[max(at)]
    checks: list[tuple[str, bool, str]] = []

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append((name, bool(ok), detail))

    top = [lv for lv in (3, 4, 5) if lv in at]
    weak_top = [at[lv].weak_mean or 0.0 for lv in top]
    strong_top = [at[lv].strong_mean or 0.0 for lv in top]
    hard = [at[lv] for lv in (4, 5) if lv in at]
    band_share = sum((r.strong_band or 0.0) * r.problems for r in hard) / max(1, sum(r.problems for r in hard))
    # Test size: 0.55 measured (world test-0297087ac124dc5d, 2 CPUs). Over its 40 level-4/5 problems the share's
    # standard error is about 0.08, so 0.30 sits three of them below: noise passes, a strong model that lost the
    # hard levels (or a band that slid off 1-3 of 8) fails.
    band_floor = BAND_SHARE_FLOOR[size]
    add(
        f"band filter keeps >= {band_floor:.0%} of levels 4-5",
        band_share >= band_floor,
        f"{band_share:.2f} of level-4/5 problems have 1-3 of the strong samples right",
    )
    student, strong = benchmark.get("student"), benchmark.get("strong_greedy")
    if size == "full":
        add("weak solves >= 80% of level 1 within its attempts", (first.weak_any or 0) >= 0.80, f"{first.weak_any}")
        add("weak solves <= 20% of level 5 within its attempts", (last.weak_any or 1) <= 0.20, f"{last.weak_any}")
        weak_any = [at[lv].weak_any or 0.0 for lv in sorted(at)]
        add(
            "weak solve rate falls with difficulty",
            weak_any[0] > weak_any[-1] and all(a >= b - 0.10 for a, b in pairwise(weak_any)),
            " > ".join(f"{v:.2f}" for v in weak_any),
        )
        add(
            "strong beats weak at each of levels 3-5",
            all(s > w for s, w in zip(strong_top, weak_top, strict=True)),
            ", ".join(f"L{lv} {s:.2f} vs {w:.2f}" for lv, s, w in zip(top, strong_top, weak_top, strict=True)),
        )
    else:
        add(
            "weak solves level 1 more often than level 5",
            (first.weak_any or 0) > (last.weak_any or 0),
            f"{first.weak_any} vs {last.weak_any}",
        )
        add(
            "strong beats weak over levels 3-5",
            sum(strong_top) > sum(weak_top),
            f"{sum(strong_top) / len(top):.2f} vs {sum(weak_top) / len(top):.2f}",
        )
    if student is not None and strong is not None:
        add("student base scores below strong (greedy)", student < strong, f"{student:.3f} vs {strong:.3f}")
    return checks


# ----------------------------------------------------------------------------------------------- engines


def benchmark_rows(world: ToyWorld) -> list[dict[str, Any]]:
    from limo_ray.records import load_problems

    result = load_problems([str(world.benchmark)])
    if result.rejected:
        raise RuntimeError(f"toy benchmark {world.benchmark} has unreadable rows: {result.rejected[:2]}")
    return [
        {"problem_id": p.id, "problem": p.problem, "answer": p.answer, "level": int(p.difficulty or 0)}
        for p in result.problems
    ]


def measure(
    world: ToyWorld,
    runs: Sequence[Run] | None = None,
    max_tokens: int = 200,
    max_model_len: int = 512,
    dtype: str = "bfloat16",
    seed: int = 0,
    cluster: ClusterConfig | None = None,
    log: Any = print,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run every `Run` over the benchmark through the engine layer (vLLM in Ray Data); grade in the driver.

    Returns (verdict rows for `level_table`, per-run facts: seconds, generated tokens).
    """
    import time

    import ray

    from limo_ray.engine import EngineSpec, generate, init_ray
    from limo_ray.grading import Grader

    runs = runs if runs is not None else default_runs(world.size)
    init_ray(cluster or ClusterConfig(), num_cpus=(cluster or ClusterConfig()).cpus_per_node)
    items = benchmark_rows(world)
    grader = Grader()
    verdict_rows: list[dict[str, Any]] = []
    facts: list[dict[str, Any]] = []
    for run in runs:
        spec = EngineSpec(
            name=run.model,
            model=str(world.path(run.model)),
            max_model_len=max_model_len,
            device="cpu",
            dtype=dtype,
            system_prompt=LIMO_SYSTEM_PROMPT,
            seed=seed,
        )
        sampling = {"n": run.n, "temperature": run.temperature, "top_p": run.top_p, "max_tokens": max_tokens}
        began = time.perf_counter()
        out = generate(ray.data.from_items(items, override_num_blocks=4), spec, sampling, concurrency=1)
        done = out.take_all()
        seconds = time.perf_counter() - began
        tokens = 0
        for row in done:
            completions = list(row["completions"])
            tokens += sum(int(t) for t in row["completion_tokens"])
            verdicts = [grader.grade(text, str(row["answer"])).correct for text in completions]
            verdict_rows.append(
                {"label": run.label, "problem_id": row["problem_id"], "level": row["level"], "correct": verdicts}
            )
        facts.append({**asdict(run), "seconds": round(seconds, 1), "generated_tokens": tokens, "rows": len(done)})
        log(f"{run.label}: {len(done)} problems x {run.n} in {seconds:.0f}s ({tokens} tokens)")
    return verdict_rows, facts


def calibration_report(
    world: ToyWorld,
    runs: Sequence[Run] | None = None,
    band: tuple[int, int] = (1, 3),
    cluster: ClusterConfig | None = None,
    dtype: str = "bfloat16",
    log: Any = print,
) -> CalibrationReport:
    """Measure the world (see the module doc) and check it against the bounds for its size."""
    verdict_rows, facts = measure(world, runs, dtype=dtype, cluster=cluster, log=log)
    levels = level_table(verdict_rows, band)
    benchmark = benchmark_means(verdict_rows)
    report = CalibrationReport(levels=levels, benchmark=benchmark, band=band, runs=facts)
    report.checks = calibration_checks(levels, benchmark, world.size)
    return report
