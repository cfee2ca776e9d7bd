"""Wrong answers made from right ones, each kind a mistake a lenient grader is known to forgive."""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

from limo_ray.grading.compare import as_number, normalize

_FIRST_INT = re.compile(r"\d+")
_TUPLE = re.compile(r"^\\left\(|^\(")
_SINGLE_EXPR_BLOCKERS = (",", "=", "\\text", "\\cup", "\\infty", "\\pm", "\\le", "\\ge", "<", ">")


def _fmt(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    decimal = value.numerator / value.denominator
    if Fraction(str(decimal)) == value:
        return str(decimal)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def off_by_one(gold: str) -> str | None:
    number = as_number(normalize(gold))
    if number is not None:
        return _fmt(number + 1)
    match = _FIRST_INT.search(gold)
    if not match:
        return None
    return gold[: match.start()] + str(int(match.group(0)) + 1) + gold[match.end() :]


def _single_expression(gold: str) -> bool:
    return not any(b in gold for b in _SINGLE_EXPR_BLOCKERS) and not gold.strip().startswith(("(", "[", "\\{"))


def reciprocal(gold: str) -> str | None:
    number = as_number(normalize(gold))
    if number is not None:
        return None if number in (0, 1, -1) else _fmt(1 / number)
    return f"\\frac{{1}}{{{gold}}}" if _single_expression(gold) else None


def _split_top_level(inner: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return parts


def swapped_pair(gold: str) -> str | None:
    text = normalize(gold)
    if not (text.startswith("(") and text.endswith(")")):
        return None
    parts = _split_top_level(text[1:-1])
    if len(parts) < 2 or parts[0] == parts[1]:
        return None
    return "(" + ",".join([parts[1], parts[0], *parts[2:]]) + ")"


def flipped_interval_end(gold: str) -> str | None:
    """Open <-> closed at the first finite endpoint of an interval (or union of intervals)."""
    text = normalize(gold)
    if not (text[:1] in "([" and text[-1:] in ")]" and "," in text):
        return None
    if text.startswith("(") and text.endswith(")") and "\\infty" not in text and "\\cup" not in text:
        return None  # an ordered pair, not an interval: swapped_pair covers it
    flip = {"(": "[", "[": "(", ")": "]", "]": ")"}
    for i, ch in enumerate(text):
        if ch in "([" and not text[i + 1 :].startswith(("-\\infty", "\\infty")):
            return text[:i] + flip[ch] + text[i + 1 :]
        if ch in ")]" and not text[:i].endswith("\\infty"):
            return text[:i] + flip[ch] + text[i + 1 :]
    return None


def times_100(gold: str) -> str | None:
    number = as_number(normalize(gold))
    if number is not None:
        return None if number == 0 else _fmt(number * 100)
    return f"100{gold}" if _single_expression(gold) and not gold[:1].isdigit() else None


def over_100(gold: str) -> str | None:
    number = as_number(normalize(gold))
    if number is not None:
        return None if number == 0 else _fmt(number / 100)
    return f"\\frac{{{gold}}}{{100}}" if _single_expression(gold) else None


PERTURBATIONS: dict[str, Callable[[str], str | None]] = {
    "off_by_one": off_by_one,
    "reciprocal": reciprocal,
    "swapped_pair": swapped_pair,
    "open_vs_closed_interval": flipped_interval_end,
    "times_100": times_100,
    "over_100": over_100,
}


def boxed_response(answer: str) -> str:
    return f"Working through the problem step by step gives the result.\n\nThe final answer is $\\boxed{{{answer}}}$."


def abandoned_draft_response(gold: str, wrong: str) -> str:
    return (
        f"A first guess: the answer is $\\boxed{{{gold}}}$. Wait, that step was wrong: I dropped a term. "
        f"Redoing the computation carefully.\n\nSo the final answer is $\\boxed{{{wrong}}}$."
    )
