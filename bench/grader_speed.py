"""Grader speed: the project grader vs plain math-verify, on gold solutions and on model-like answers.

Two workloads, each graded by both sides, one core (CPU affinity pinned to one CPU), in the calling thread:
  gold        - every MATH500 gold `solution` against its `answer` (issue 2's workload). The gold solution
                boxes the gold answer as written, so the exact-text shortcut decides nearly all of them: it
                measures the shortcut, not the grader on what models write.
  model-like  - real gold answers of every math-graded benchmark whose data is present (up to
                `--per-benchmark` items of each, seeded), each turned into a response the way models write
                them (seeded, so the workload is the same on every run): the answer in another form (fraction
                vs decimal, `\\frac` vs `a/b`, `\\dfrac`, thousands separators, an equivalent expression that
                only sympy can match, such as `2^{10}`, `3 \\cdot 14` or a factored polynomial), sometimes with
                a unit or `x =`, boxed or given in an answer phrase, after `</think>`, or after an abandoned
                draft; a third of them wrong (another number, a changed digit).
(a) `limo_ray.grading.grade(response, gold)`; (b) plain math-verify on the full text, as its README shows it:
`verify(parse(f"${gold}$"), parse(response))`. One warm-up round of each side on each workload, then at least 5
interleaved cycles (project gold, math-verify gold, project model-like, math-verify model-like, ...); the
project grader's parse cache is cleared before each of its rounds so no round profits from the one before.
Prints each side's median verdicts/s (min..max), how often each side agrees with the label a workload item was
built with, and the share of the project's verdicts that needed sympy; last, the ratios, model-like first.

    .venv/bin/python bench/grader_speed.py --data-root ../shared/data --pairs 5
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import sympy
from math_verify import parse, verify

from limo_ray.benchmarks.registry import BenchmarkRegistry
from limo_ray.grading import grade
from limo_ray.grading.compare import as_number, normalize, quick_compare
from limo_ray.grading.symbolic import _parse as cached_parse
from limo_ray.records import Problem

DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
GOLD_BENCHMARK = "math500"
PREAMBLE_CHARS = 1500  # reasoning text before the answer: enough that parsing the whole response costs something
UNITS = ("\\text{ cm}", "\\text{ meters}", "\\text{ units}", "\\text{ dollars}", "^\\circ")
_PREAMBLE_END = re.compile(r"\\boxed|\\fbox|####")
_ANSWER_WORD = re.compile("answer", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Case:
    response: str
    gold: str
    correct: bool  # the label the item was built with
    benchmark: str


def gold_cases(problems: Sequence[Problem]) -> list[Case]:
    return [Case(p.solution or "", p.answer, True, GOLD_BENCHMARK) for p in problems]


# --- the model-like workload ---------------------------------------------------------------------------------


def model_like_cases(by_benchmark: dict[str, list[Problem]], per_benchmark: int, seed: int) -> list[Case]:
    """Up to `per_benchmark` items of each benchmark, each a response built from its gold; a third wrong."""
    chosen = [
        (name, problem)
        for name, problems in sorted(by_benchmark.items())
        for problem in random.Random(f"{seed}:{name}").sample(problems, min(per_benchmark, len(problems)))
    ]
    wrong = set(random.Random(seed).sample(range(len(chosen)), round(len(chosen) / 3)))
    cases = []
    for i, (name, problem) in enumerate(chosen):
        rng = random.Random(f"{seed}:{name}:{problem.id}")
        final = wrong_answer(problem.answer, rng) if i in wrong else problem.answer
        draft = problem.answer if i in wrong else wrong_answer(problem.answer, rng)
        response = envelope(preamble(problem), model_form(final, rng), model_form(draft, rng), rng)
        cases.append(Case(response, problem.answer, i not in wrong, name))
    return cases


def preamble(problem: Problem) -> str:
    """Reasoning text that does not give the answer yet: the gold solution's paragraphs before its first box
    (or `####`), else the problem restated. "answer" becomes "result" in it: an answer phrase there would win
    over a final answer given in a lower-priority style, and the item's label must follow its final answer."""
    text = problem.solution or f"We are asked the following.\n\n{problem.problem}\n\nLet us work through it."
    if m := _PREAMBLE_END.search(text):
        text = text[: max(text.rfind("\n\n", 0, m.start()), 0)] or text[: m.start()]
    if len(text) > PREAMBLE_CHARS:
        text = text[: text.rfind("\n", 0, PREAMBLE_CHARS) + 1 or PREAMBLE_CHARS]
    if text.count("$") % 2:  # the cut fell inside inline math: drop the unclosed part
        text = text[: text.rfind("$")]
    return _ANSWER_WORD.sub("result", text).strip()


def envelope(reasoning: str, answer: str, draft: str, rng: random.Random) -> str:
    """Where a model puts its final answer; `draft` is an answer it gives and then abandons."""
    styles: list[Callable[[], str]] = [
        lambda: f"{reasoning}\n\nTherefore, the answer is $\\boxed{{{answer}}}$.",
        lambda: f"{reasoning}\n\n\\[\n\\boxed{{{answer}}}\n\\]",
        lambda: f"{reasoning}\n\nThe final answer is ${answer}$.",
        lambda: f"{reasoning}\n\n**Answer:** {answer}",
        lambda: f"<think>\n{reasoning}\n</think>\n\nThe answer is $\\boxed{{{answer}}}$.",
        lambda: (
            f"{reasoning}\n\nSo we get $\\boxed{{{draft}}}$. Wait, let me double-check the last step.\n\n"
            f"Redoing it carefully gives $\\boxed{{{answer}}}$."
        ),
    ]
    return rng.choice(styles)()


def model_form(answer: str, rng: random.Random) -> str:
    """`answer` as a model might write it: another equal form, sometimes with a unit or `x =` around it."""
    value = as_number(normalize(answer))
    forms = number_forms(value) if value is not None else expression_forms(answer)
    text = rng.choice([answer, *forms])
    decoration = rng.random()
    if value is not None and decoration < 0.15:
        return f"{text}{rng.choice(UNITS)}"
    if decoration > 0.9 and "=" not in text and "," not in text:
        return f"x = {text}"
    return text


def number_forms(value: Fraction) -> list[str]:
    if value.denominator == 1:
        n = value.numerator
        forms = [str(n), f"{n}.0", f"\\frac{{{2 * n}}}{{2}}"]
        if abs(n) >= 1000:
            forms.append(f"{n:,}")
        forms += sympy_integer_forms(n)
        return forms
    sign, p, q = ("-" if value < 0 else ""), abs(value.numerator), value.denominator
    forms = [f"{sign}\\frac{{{p}}}{{{q}}}", f"{sign}{p}/{q}", f"{sign}\\dfrac{{{p}}}{{{q}}}"]
    forms.append(f"{sign}\\frac{{{2 * p}}}{{{2 * q}}}")
    if all(f in (2, 5) for f in sympy.factorint(q)):
        forms.append(str(float(value)))
    return forms


def sympy_integer_forms(n: int) -> list[str]:
    """Equal forms that no exact-number rule matches: a power, a product."""
    forms, sign = [], "-" if n < 0 else ""
    if abs(n) > 3:
        powers = sympy.perfect_power(abs(n))
        if powers:
            base, exponent = powers
            forms.append(f"{sign}{base}^{{{exponent}}}")
        factor = min(sympy.factorint(abs(n)))
        if factor != abs(n):
            forms.append(f"{sign}{factor} \\cdot {abs(n) // factor}")
    return forms


def expression_forms(answer: str) -> list[str]:
    """Spacing and `\\dfrac` variants, and sympy's own rewritings (expanded, factored, terms reordered,
    a positive surd under one root) where they differ from the gold's text."""
    forms = [answer.replace(",", ", ").replace("\\frac", "\\dfrac")]
    forms.append(answer.replace("(", "\\left(").replace(")", "\\right)") if "\\left" not in answer else answer)
    try:
        parsed = parse(f"${answer}$")
    except Exception:  # an unparseable gold just has no sympy forms
        parsed = []
    expr = parsed[0] if parsed else None
    if not isinstance(expr, sympy.Expr) or isinstance(expr, sympy.Symbol):
        return forms
    rewrites = [
        lambda: sympy.latex(sympy.expand(expr)),
        lambda: sympy.latex(sympy.factor(expr)),
        lambda: sympy.latex(expr, order="rev-lex"),
    ]
    if expr.is_number and expr.is_positive and (expr**2).is_Rational:
        rewrites.append(lambda: f"\\sqrt{{{sympy.latex(expr**2)}}}")
    seen = {normalize(answer)}
    for rewrite in rewrites:
        text = rewrite()
        if normalize(text) not in seen and len(text) < 3 * len(answer) + 20:
            seen.add(normalize(text))
            forms.append(text)
    return forms


def wrong_answer(gold: str, rng: random.Random) -> str:
    """A wrong answer a model could give: another number near the gold's, else the gold with one digit changed
    (or `+ 1` added where it has no digit)."""
    value = as_number(normalize(gold))
    if value is not None:
        if value.denominator == 1:
            wrong = value + rng.choice([1, -1, 2, 10]) if value == 0 or rng.random() < 0.7 else 2 * value
        else:
            wrong = 1 / value if rng.random() < 0.5 and abs(value) != 1 else value + Fraction(1, value.denominator)
        return latex_number(wrong)
    digits = [i for i, ch in enumerate(gold) if ch.isdigit()]
    if not digits:
        return f"{gold} + 1"
    i = rng.choice(digits)
    return gold[:i] + rng.choice([d for d in "0123456789" if d != gold[i]]) + gold[i + 1 :]


def latex_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{'-' if value < 0 else ''}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


# --- the two graders -------------------------------------------------------------------------------------------


def project_round(cases: Sequence[Case]) -> dict[str, float]:
    cached_parse.cache_clear()
    start = time.perf_counter()
    verdicts = [grade(c.response, c.gold).correct for c in cases]
    return outcome(cases, verdicts, time.perf_counter() - start)


def plain_round(cases: Sequence[Case]) -> dict[str, float]:
    start = time.perf_counter()
    verdicts = [bool(verify(parse(f"${c.gold}$"), parse(c.response))) for c in cases]
    return outcome(cases, verdicts, time.perf_counter() - start)


def outcome(cases: Sequence[Case], verdicts: Sequence[bool], seconds: float) -> dict[str, float]:
    return {
        "rate": len(cases) / seconds,
        "correct": sum(verdicts),
        "agree": sum(v == c.correct for v, c in zip(verdicts, cases, strict=True)),
    }


def needs_sympy(cases: Sequence[Case]) -> int:
    """How many of the project's verdicts on `cases` go past the exact text/number rules to sympy."""
    from limo_ray.grading import extract_final_answer

    answers = [(extract_final_answer(c.response).answer, c.gold) for c in cases]
    return sum(answer is not None and quick_compare(answer, gold).equal is None for answer, gold in answers)


def load_benchmarks(data_root: Path) -> dict[str, list[Problem]]:
    registry = BenchmarkRegistry.from_files()
    present, _ = registry.available("all", str(data_root))
    math_sets = [b.name for b in present if b.grading == "math"]
    if GOLD_BENCHMARK not in math_sets:
        raise SystemExit(f"{GOLD_BENCHMARK} not found under {data_root}: pass --data-root (the benchmark data root)")
    return {name: registry.load(name, str(data_root)).result.problems for name in math_sets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT, help="benchmark data root")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved cycles after warm-up (>= 5)")
    parser.add_argument("--per-benchmark", type=int, default=100, help="model-like items per benchmark [100]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from harness import interleaved_rounds, spread

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    by_benchmark = load_benchmarks(args.data_root)
    workloads = {
        "gold": gold_cases(by_benchmark[GOLD_BENCHMARK]),
        "model-like": model_like_cases(by_benchmark, args.per_benchmark, args.seed),
    }
    for name, cases in workloads.items():
        sizes = ", ".join(f"{b} {sum(c.benchmark == b for c in cases)}" for b in sorted({c.benchmark for c in cases}))
        print(
            f"workload {name}: {len(cases)} items ({sizes}), {sum(not c.correct for c in cases)} built wrong; "
            f"{needs_sympy(cases)} need sympy in the project grader"
        )
    print(f"one core, {args.pairs} interleaved cycles after warm-up")
    sides = {
        f"{grader} {workload}": (lambda r=round_, c=cases: r(c))
        for workload, cases in workloads.items()
        for grader, round_ in (("project", project_round), ("math-verify", plain_round))
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for i, cycle in enumerate(interleaved_rounds(sides, args.pairs)):
        for name, result in cycle.items():
            results[name].append(result)
        print(f"pair {i + 1}: " + "   ".join(f"{n} {r['rate']:8.1f}/s" for n, r in cycle.items()), flush=True)
    medians = {}
    for name, rounds in results.items():
        rates = [r["rate"] for r in rounds]
        medians[name] = statistics.median(rates)
        total = len(workloads[name.split(" ", 1)[1]])
        print(
            f"{name}: {spread(rates, 1)} verdicts/s; {rounds[0]['correct']:.0f}/{total} correct, "
            f"{rounds[0]['agree']:.0f}/{total} agree with the built label"
        )
    line = {
        w: (medians[f"project {w}"], medians[f"math-verify {w}"], medians[f"project {w}"] / medians[f"math-verify {w}"])
        for w in workloads
    }
    gx, gy, gr = line["gold"]
    x, y, r = line["model-like"]
    print(f"gold solutions: grader verdicts-per-second: {gx:.0f}, plain math-verify: {gy:.1f}, ratio: {gr:.1f}")
    print(
        f"grader verdicts-per-second: {x:.0f}, plain math-verify: {y:.1f}, ratio: {r:.1f} "
        f"(model-like answers; gold solutions: ratio {gr:.1f})"
    )


if __name__ == "__main__":
    main()
