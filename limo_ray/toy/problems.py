"""A seeded generator of toy math problems with integer answers, in four domains at difficulty levels 1-5.

Why these problems: the toy models are 1-3M-parameter transformers trained for minutes on two CPU cores, so
difficulty must come from *how many* small steps a problem takes, not from arithmetic the model can never
learn. Every step works on numbers of at most two digits (a product or a sum may reach three); level k takes
about k steps, so a model that gets single steps right with probability p solves level k with about p^k.
A weak model with p ~ 0.75 then solves level 1 and fails level 5; a strong one with p ~ 0.9 solves level 5
sometimes, which is what a LIMO-style band filter (keep problems with 1-3 successes of 8) needs.

Each problem carries its worked solution as structured steps (`Step`), so `chains.py` can write a reference
chain at any quality level, and the answer is computed, never typed: it is right by construction.

Texts keep fixed word runs short (numbers, names and objects interrupt them), so word n-gram decontamination
between the pool and the `toy` benchmark only fires for real overlaps, not for a shared template.

Why one module of about 480 lines: the four domain generators are one calibration. Each level's step budget is
set against the other domains' (a level-3 counting problem must cost about what a level-3 equation does, or the
level stops meaning difficulty), and all four are written with the same step helpers (`_add` ... `_chain_ops`),
so they are read and changed together.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from limo_ray.errors import LimoError
from limo_ray.records.schema import Problem, normalize_text

DOMAINS: tuple[str, ...] = ("arithmetic", "equations", "modular", "counting")
LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
SOURCE_FORMAT = "toy"

NAMES = (
    "Ana", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jia", "Kim", "Leo",
    "Mia", "Noor", "Omar", "Pia", "Raj", "Sol", "Tom", "Uma", "Vic", "Wen", "Yara", "Zed",
)  # fmt: skip
OBJECTS = ("apples", "pens", "books", "cards", "coins", "marbles", "stamps", "shells", "beads", "cups", "eggs", "keys")
# Variable letters for equations: the model must not tie "solve" to one letter.
VARIABLES = ("x", "y", "n", "k")


@dataclass(frozen=True)
class Step:
    """One computation of a worked solution.

    math: the computation as written in a chain ("47 - 19 = 28");
    why: a short reason ("take away 19"), used by the explained chain levels;
    check: the inverse computation that re-derives an input from the result ("28 + 19 = 47").
    """

    math: str
    why: str
    check: str


@dataclass(frozen=True)
class ToyProblem:
    """A generated problem with its structured solution; `answer` is computed from the same numbers."""

    text: str
    answer: int
    domain: str
    level: int
    plan: str  # one short phrase: how to attack it ("isolate x", "work left to right")
    steps: tuple[Step, ...]

    def to_problem(self, source: str, index: int, solution: str | None = None, pid: str | None = None) -> Problem:
        return Problem(
            id=pid or f"{source.replace(':', '-')}-{index:05d}",
            problem=self.text,
            answer=str(self.answer),
            solution=solution,
            domain=self.domain,
            difficulty=str(self.level),
            source=source,
            source_line=index + 1,
            source_format=SOURCE_FORMAT,
        )


# ----------------------------------------------------------------------------------------------- step helpers
#
# Every step is one of five small skills, so a tiny model can learn each from tens of thousands of examples:
#   S1  a + b, a - b            single digits
#   S2  A + b, A - b            A up to 99, b a single digit, result 0..99 (units digit and a carry)
#   S3  a * b                   the times table, 2..9
#   S4  P / a = b               the times table backwards
#   S5  n = m * q + r           m and q single digits, r < m (division with remainder)
# A prototype tiny model never learned multi-digit arithmetic beyond these within a CPU training budget; the
# helpers refuse numbers outside the skills, and the generator draws again.


def _add(a: int, b: int, why: str) -> tuple[int, Step]:
    _need(min(a, b) <= 9 and a + b <= 99)
    return a + b, Step(f"{a} + {b} = {a + b}", why, f"{a + b} - {b} = {a}")


def _sub(a: int, b: int, why: str) -> tuple[int, Step]:
    _need(b <= 9 and a - b >= 0 and a <= 99)
    return a - b, Step(f"{a} - {b} = {a - b}", why, f"{a - b} + {b} = {a}")


def _mul(a: int, b: int, why: str) -> tuple[int, Step]:
    _need(1 <= a <= 9 and 1 <= b <= 9)
    return a * b, Step(f"{a} * {b} = {a * b}", why, f"{a * b} / {b} = {a}")


def _div(a: int, b: int, why: str) -> tuple[int, Step]:
    _need(1 <= b <= 9 and a % b == 0 and a // b <= 9)
    return a // b, Step(f"{a} / {b} = {a // b}", why, f"{a // b} * {b} = {a}")


def _divmod(n: int, m: int, why: str) -> tuple[int, int, Step]:
    """n = m * q + r, written with the quotient first: the model looks up the multiple, then the rest."""
    q, r = divmod(n, m)
    _need(2 <= m <= 9 and 0 <= q <= 9)
    return q, r, Step(f"{n} = {m} * {q} + {r}", why, f"{m} * {q} + {r} = {n}")


def _apply(op: str, a: int, b: int, why: str) -> tuple[int, Step]:
    return {"+": _add, "-": _sub, "*": _mul}[op](a, b, why)


class _Retry(Exception):
    """The drawn numbers leave the skills above (a result out of range): draw again."""


def _need(condition: bool) -> None:
    if not condition:
        raise _Retry


_OP_WHY = {"+": "add", "-": "subtract", "*": "multiply"}


def _d(rng: random.Random, lo: int = 1, hi: int = 9) -> int:
    return rng.randint(lo, hi)


# ----------------------------------------------------------------------------------------------- arithmetic


def _chain_ops(values: list[int], ops: list[str]) -> tuple[int, list[Step]]:
    """Left-to-right evaluation of values[0] ops[0] values[1] ..."""
    acc, steps = values[0], []
    for op, v in zip(ops, values[1:], strict=True):
        acc, step = _apply(op, acc, v, f"{_OP_WHY[op]} {v}")
        steps.append(step)
    return acc, steps


def _expr(values: Sequence[int], ops: Sequence[str]) -> str:
    parts = [str(values[0])]
    for op, v in zip(ops, values[1:], strict=True):
        parts += [op, str(v)]
    return " ".join(parts)


def _ask_expr(rng: random.Random, expr: str) -> str:
    return rng.choice(("What is {e}?", "Compute {e}.", "Evaluate {e}.", "Find the value of {e}.")).format(e=expr)


def _arithmetic(rng: random.Random, level: int) -> ToyProblem:
    name, obj = rng.choice(NAMES), rng.choice(OBJECTS)
    if level == 1:
        op = rng.choice("+-")
        a, b = (_d(rng), _d(rng)) if op == "+" else (_d(rng, 2, 18), _d(rng))
        ans, steps = _chain_ops([a, b], [op])
        if rng.random() < 0.4:
            text = (
                f"{name} has {a} {obj} and gets {b} more. How many {obj} does {name} have?"
                if op == "+"
                else f"{name} has {a} {obj} and gives away {b}. How many {obj} are left?"
            )
        else:
            text = _ask_expr(rng, _expr([a, b], [op]))
        return ToyProblem(text, ans, "arithmetic", level, "compute it directly", tuple(steps))
    if level == 2:
        ops = [rng.choice("+-"), rng.choice("+-")]
        vals = [_d(rng, 2, 30), _d(rng), _d(rng)]
        ans, steps = _chain_ops(vals, ops)
        if rng.random() < 0.35 and ops == ["+", "-"]:
            text = f"{name} has {vals[0]} {obj}, finds {vals[1]} more, then loses {vals[2]}. How many are left?"
        else:
            text = _ask_expr(rng, _expr(vals, ops))
        return ToyProblem(text, ans, "arithmetic", level, "work left to right", tuple(steps))
    if level == 3:
        ops = [rng.choice("+-") for _ in range(3)]
        vals = [_d(rng, 5, 40), _d(rng), _d(rng), _d(rng)]
        ans, steps = _chain_ops(vals, ops)
        text = _ask_expr(rng, _expr(vals, ops))
        return ToyProblem(text, ans, "arithmetic", level, "work left to right", tuple(steps))
    if level == 4:
        # A product first (precedence), then two additive steps.
        a, b, c, d = _d(rng, 2), _d(rng, 2), _d(rng), _d(rng)
        o1, o2 = rng.choice("+-"), rng.choice("+-")
        p, s1 = _mul(a, b, f"multiply {a} by {b}")
        acc, s2 = _apply(o1, p, c, f"{_OP_WHY[o1]} {c}")
        ans, s3 = _apply(o2, acc, d, f"{_OP_WHY[o2]} {d}")
        text = _ask_expr(rng, f"{a} * {b} {o1} {c} {o2} {d}")
        return ToyProblem(text, ans, "arithmetic", level, "multiply before adding", (s1, s2, s3))
    # level 5: a bracket, a product, and two more terms: four steps.
    a, b, c, d, e = _d(rng), _d(rng), _d(rng, 2), _d(rng), _d(rng)
    o1, o2, o3 = rng.choice("+-"), rng.choice("+-"), rng.choice("+-")
    inner, s1 = _apply(o1, a, b, "work out the bracket")
    p, s2 = _mul(inner, c, f"multiply by {c}")
    acc, s3 = _apply(o2, p, d, f"{_OP_WHY[o2]} {d}")
    ans, s4 = _apply(o3, acc, e, f"{_OP_WHY[o3]} {e}")
    text = _ask_expr(rng, f"({a} {o1} {b}) * {c} {o2} {d} {o3} {e}")
    return ToyProblem(text, ans, "arithmetic", level, "do the bracket first", (s1, s2, s3, s4))


# ----------------------------------------------------------------------------------------------- equations


def _solve_for(rng: random.Random, v: str, equation: str) -> str:
    return rng.choice(("Solve for {v}: {q}.", "Find {v} if {q}.", "If {q}, what is {v}?")).format(v=v, q=equation)


def _equations(rng: random.Random, level: int) -> ToyProblem:
    v, name = rng.choice(VARIABLES), rng.choice(NAMES)
    if level == 1:
        x, a = _d(rng), _d(rng)
        if rng.random() < 0.5:
            b = x + a
            ans, step = _sub(b, a, f"take {a} from both sides")
            eq, verb = f"{v} + {a} = {b}", "adds"
        else:
            b = x - a
            _need(b >= 1)
            ans, step = _add(b, a, f"add {a} to both sides")
            eq, verb = f"{v} - {a} = {b}", "subtracts"
        if rng.random() < 0.3:
            text = f"{name} thinks of a number and {verb} {a} to get {b}. What is the number?"
        else:
            text = _solve_for(rng, v, eq)
        return ToyProblem(text, ans, "equations", level, f"isolate {v}", (step,))
    if level == 2:
        a, x = _d(rng, 2), _d(rng, 2)
        b = a * x
        ans, step = _div(b, a, f"divide both sides by {a}")
        if rng.random() < 0.3:
            text = f"{name} packs {b} {rng.choice(OBJECTS)} into {a} equal bags. How many go in each bag?"
        else:
            text = _solve_for(rng, v, f"{a}{v} = {b}")
        return ToyProblem(text, ans, "equations", level, f"divide to isolate {v}", (step,))
    if level == 3:
        a, x, b = _d(rng, 2), _d(rng), _d(rng)
        c = a * x + b
        m, s1 = _sub(c, b, f"take {b} from both sides")
        ans, s2 = _div(m, a, f"divide by {a}")
        text = _solve_for(rng, v, f"{a}{v} + {b} = {c}")
        return ToyProblem(text, ans, "equations", level, f"isolate {v}", (s1, s2))
    if level == 4:
        if rng.random() < 0.5:
            # undo an outer step, then a bracket: three steps.
            a, b, e, x = _d(rng, 2), _d(rng), _d(rng), _d(rng)
            c = a * (x + b) + e
            m, s1 = _sub(c, e, f"take {e} from both sides")
            k, s2 = _div(m, a, f"divide by {a}")
            ans, s3 = _sub(k, b, f"take {b} from the bracket")
            text = _solve_for(rng, v, f"{a}({v} + {b}) + {e} = {c}")
            return ToyProblem(text, ans, "equations", level, "undo the outside first", (s1, s2, s3))
        c, a, x, b = _d(rng, 1, 7), _d(rng, 3), _d(rng), _d(rng)
        k, s1 = _sub(a, c, f"collect the {v} terms")
        _need(k >= 2)
        s1 = Step(f"{a}{v} - {c}{v} = {k}{v}", s1.why, f"{k}{v} + {c}{v} = {a}{v}")
        d = k * x + b
        m, s2 = _sub(d, b, f"take {b} from both sides")
        ans, s3 = _div(m, k, f"divide by {k}")
        eq = f"{a}{v} + {b} = {c}{v} + {d}"
        return ToyProblem(_solve_for(rng, v, eq), ans, "equations", level, f"collect the {v} terms", (s1, s2, s3))
    # level 5: a system of two equations, then a product of the solutions: four steps.
    (p, q) = rng.choice((("x", "y"), ("a", "b"), ("m", "n"), ("p", "q")))
    x, y = _d(rng, 2), _d(rng, 1)
    _need(x > y)
    s, t = x + y, x - y
    two_x, s1 = _add(s, t, "add the two equations")
    xv, s2 = _div(two_x, 2, f"halve it to get {p}")
    yv, s3 = _sub(s, xv, f"take {p} from the sum to get {q}")
    left, right = rng.choice(((p, q), (p, p), (q, q)))
    ans, s4 = _mul(xv if left == p else yv, xv if right == p else yv, f"multiply {left} by {right}")
    text = f"If {p} + {q} = {s} and {p} - {q} = {t}, what is {left} * {right}?"
    return ToyProblem(text, ans, "equations", level, f"add the equations to find {p}", (s1, s2, s3, s4))


# ----------------------------------------------------------------------------------------------- modular


def _mod_ask(rng: random.Random, expr: str, m: int) -> str:
    return rng.choice(
        ("What is {e} mod {m}?", "Find the remainder when {e} is divided by {m}.", "Compute {e} modulo {m}.")
    ).format(e=expr, m=m)


def _modular(rng: random.Random, level: int) -> ToyProblem:
    problem = _modular_draw(rng, level)
    # Products are often multiples of m: without this, "0" would be a good blind guess.
    _need(problem.answer != 0 or rng.random() < 0.15)
    return problem


def _modular_draw(rng: random.Random, level: int) -> ToyProblem:
    m = _d(rng, 3)
    if level == 1:
        # Small quotients first: finding the multiple is the hard part of a remainder (the gentle end of the slope).
        m = _d(rng, 2, 7)
        n = rng.randint(m + 1, 5 * m - 1)
        _, r, step = _divmod(n, m, f"divide {n} by {m}")
        if rng.random() < 0.3:
            text = f"{rng.choice(NAMES)} shares {n} {rng.choice(OBJECTS)} equally among {m} friends. How many are left?"
        else:
            text = _mod_ask(rng, str(n), m)
        return ToyProblem(text, r, "modular", level, f"divide by {m}", (step,))
    if level == 2:
        a, b = _d(rng, 5, 40), _d(rng)
        s, s1 = _add(a, b, "add first")
        _, r, s2 = _divmod(s, m, f"divide by {m}")
        return ToyProblem(_mod_ask(rng, f"({a} + {b})", m), r, "modular", level, "add, then reduce", (s1, s2))
    if level == 3:
        a, b = _d(rng, 2), _d(rng, 2)
        p, s1 = _mul(a, b, "multiply")
        _, r, s2 = _divmod(p, m, f"divide by {m}")
        return ToyProblem(_mod_ask(rng, f"({a} * {b})", m), r, "modular", level, "multiply, then reduce", (s1, s2))
    if level == 4:
        a, b, c = _d(rng, 2), _d(rng, 2), _d(rng)
        p, s1 = _mul(a, b, "multiply")
        s, s2 = _add(p, c, f"add {c}")
        _, r, s3 = _divmod(s, m, f"divide by {m}")
        text = _mod_ask(rng, f"({a} * {b} + {c})", m)
        return ToyProblem(text, r, "modular", level, "compute, then reduce", (s1, s2, s3))
    # level 5: three remainders and their sum: five steps (a sum, not one remainder, so a blind guess rarely hits).
    values = [rng.randint(m + 1, 10 * m - 1) for _ in range(3)]
    steps, rests = [], []
    for n in values:
        _, r, step = _divmod(n, m, f"reduce {n} mod {m}")
        steps.append(step)
        rests.append(r)
    partial, s4 = _add(rests[0], rests[1], "add the first two remainders")
    ans, s5 = _add(partial, rests[2], "add the third")
    text = rng.choice(("Find", "Compute", "What is")) + " " + " + ".join(f"({n} mod {m})" for n in values)
    text += "?" if text.startswith("What") else "."
    return ToyProblem(text, ans, "modular", level, "reduce each number, then add", (*steps, s4, s5))


# ----------------------------------------------------------------------------------------------- counting


def _counting(rng: random.Random, level: int) -> ToyProblem:
    name = rng.choice(NAMES)
    if level == 1:
        a, b = _d(rng, 2), _d(rng, 2)
        if rng.random() < 0.5:
            ans, step = _add(a, b, "add the two kinds")
            text = f"{name} may pick one of {a} apples or one of {b} pears. How many choices are there?"
            return ToyProblem(text, ans, "counting", level, "add the choices", (step,))
        ans, step = _mul(a, b, "pair each shirt with each hat")
        text = f"{name} has {a} shirts and {b} hats. How many shirt and hat outfits are there?"
        return ToyProblem(text, ans, "counting", level, "multiply the choices", (step,))
    if level == 2:
        a = _d(rng)
        b = a + _d(rng, 2, 50)
        d, s1 = _sub(b, a, "take the difference")
        ans, s2 = _add(d, 1, "count both ends")
        text = rng.choice(
            (
                f"How many whole numbers are there from {a} to {b}, inclusive?",
                f"How many integers lie from {a} to {b}, counting both ends?",
            )
        )
        return ToyProblem(text, ans, "counting", level, "count both ends", (s1, s2))
    if level == 3:
        if rng.random() < 0.5:
            k = _d(rng, 2)
            n = rng.randint(k + 1, 10 * k - 1)
            q, _, step = _divmod(n, k, f"divide {n} by {k}")
            text = f"How many multiples of {k} are there from 1 to {n}?"
            return ToyProblem(text, q, "counting", level, "divide and keep the quotient", (step,))
        a, b, c = _d(rng, 2, 4), _d(rng, 2, 4), _d(rng, 2)
        p, s1 = _mul(a, b, "multiply shirts by pants")
        ans, s2 = _mul(p, c, "multiply by hats")
        text = f"{name} has {a} shirts, {b} pants and {c} hats. How many outfits of one of each are there?"
        return ToyProblem(text, ans, "counting", level, "multiply the choices", (s1, s2))
    if level == 4:
        k = _d(rng, 3)
        lo, hi = rng.randint(k + 1, 5 * k), rng.randint(5 * k, 10 * k - 1)
        q1, _, s1 = _divmod(hi, k, f"count multiples up to {hi}")
        q0, _, s2 = _divmod(lo - 1, k, f"count multiples below {lo}")
        ans, s3 = _sub(q1, q0, "take the difference")
        text = f"How many multiples of {k} are there from {lo} to {hi}?"
        return ToyProblem(text, ans, "counting", level, "count up to each end", (s1, s2, s3))
    # level 5: inclusion-exclusion, five steps.
    a, b = rng.choice(((2, 3), (2, 5), (2, 7), (2, 9), (3, 4), (3, 5), (3, 7), (3, 8), (4, 5), (4, 7), (4, 9)))
    n = rng.randint(10, 10 * a - 1)
    q1, _, s1 = _divmod(n, a, f"count multiples of {a}")
    q2, _, s2 = _divmod(n, b, f"count multiples of {b}")
    lcm = a * b
    q3 = n // lcm
    s3 = Step(
        f"{n} = {lcm} * {q3} + {n - lcm * q3}", f"count multiples of {lcm}", f"{lcm} * {q3} + {n - lcm * q3} = {n}"
    )
    s, s4 = _add(q1, q2, "add the two counts")
    ans, s5 = _sub(s, q3, "remove the double count")
    text = rng.choice(
        (
            f"How many numbers from 1 to {n} are divisible by {a} or {b}?",
            f"How many integers from 1 to {n} are multiples of {a} or of {b}?",
        )
    )
    return ToyProblem(text, ans, "counting", level, "add the counts, remove the overlap", (s1, s2, s3, s4, s5))


_GENERATORS: dict[str, Callable[[random.Random, int], ToyProblem]] = {
    "arithmetic": _arithmetic,
    "equations": _equations,
    "modular": _modular,
    "counting": _counting,
}


# ----------------------------------------------------------------------------------------------- public API


def make_problem(rng: random.Random, domain: str, level: int, max_tries: int = 1000) -> ToyProblem:
    """One problem of `domain` at `level`, drawn from `rng` (numbers redrawn until every constraint holds)."""
    if domain not in _GENERATORS:
        raise LimoError(f"unknown toy domain {domain!r}; known: {', '.join(DOMAINS)}")
    if level not in LEVELS:
        raise LimoError(f"toy difficulty level must be one of {LEVELS}, got {level!r}")
    for _ in range(max_tries):
        try:
            return _GENERATORS[domain](rng, level)
        except _Retry:
            continue
    raise RuntimeError(f"could not draw a {domain} level-{level} problem in {max_tries} tries")  # a generator bug


def generate_toy_problems(
    n: int,
    seed: int,
    levels: Iterable[int] = LEVELS,
    domains: Iterable[str] = DOMAINS,
    exclude: Collection[str] = (),
    unique: bool = True,
    reject: Callable[[ToyProblem], bool] | None = None,
) -> list[ToyProblem]:
    """`n` problems cycling through every (level, domain) cell in turn, so each cell gets n / cells of them.

    Reproducible: the same arguments give the same list, and a shorter list is a prefix of a longer one.
    `exclude` holds normalised texts (`normalize_text`) never to produce (another split's problems); with
    `unique`, no text repeats within the list either; a problem `reject` says yes to is drawn again.
    """
    cells = [(d, lv) for lv in levels for d in domains]
    if not cells:
        raise LimoError("generate_problems needs at least one level and one domain")
    rng = random.Random(f"limo-ray-toy-problems:{seed}")
    seen: set[str] = set()
    out: list[ToyProblem] = []
    for i in range(n):
        domain, level = cells[i % len(cells)]
        for _ in range(2000):
            prob = make_problem(rng, domain, level)
            key = normalize_text(prob.text)
            if key in exclude or (unique and key in seen) or (reject is not None and reject(prob)):
                continue
            seen.add(key)
            out.append(prob)
            break
        else:
            raise LimoError(f"ran out of distinct {domain} level-{level} problems after {len(out)}: ask for fewer")
    return out


def generate_problems(
    n: int,
    seed: int,
    levels: Iterable[int] = LEVELS,
    domains: Iterable[str] = DOMAINS,
    source: str = "toy:pool",
    exclude: Collection[str] = (),
) -> list[Problem]:
    """`generate_toy_problems` as `Problem` rows (domain and difficulty set; solution = the L3 reference chain)."""
    from limo_ray.toy.chains import reference_chain

    return [
        p.to_problem(source, i, solution=reference_chain(p, 3, seed=seed))
        for i, p in enumerate(generate_toy_problems(n, seed, levels, domains, exclude))
    ]
