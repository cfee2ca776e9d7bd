"""Decide whether an extracted answer equals the gold: cheap exact checks first, math-verify for the rest.

Most comparisons in curation are a number against a number (AIME, AMC, the toy world) or a string the
model copied exactly; those are decided here in microseconds. Everything else goes to math-verify, which
knows intervals, tuples, sets, units and symbolic equivalence. The cheap checks never say "equal" where
math-verify would not: numbers are compared exactly (no percent rule: 0.7 is not 70, and no rounding:
0.00011 is not 0.0001).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad|\\displaystyle|\\left|\\right|\s+|\$")
_FRAC_ALIASES = re.compile(r"\\[dt]frac")
_DEGREES = re.compile(r"\^\{?\\circ\}?")
_PERCENT = re.compile(r"\\?%$")
_INTEGER = r"(?:\d{1,3}(?:,\d{3})+|\d+)"
_DECIMAL = re.compile(rf"^[-+]?(?:{_INTEGER}(?:\.\d*)?|\.\d+)$")
_LATEX_FRAC = re.compile(r"^([-+]?)\\frac\{?([-+]?\d+)\}?\{?([-+]?\d+)\}?$")
_SLASH_FRAC = re.compile(r"^([-+]?\d+)/(\d+)$")
# A numeral in another base, `52_8` or `4210_{5}`: math-verify drops the base, so it is decided here.
_BASE_NUMERAL = re.compile(r"^([0-9A-Za-z]+)_\{?(\d+)\}?$")


@dataclass(frozen=True, slots=True)
class QuickResult:
    """A decided comparison (`equal` is True/False), or undecided (None) for math-verify to settle."""

    equal: bool | None
    reason: str


def normalize(answer: str) -> str:
    """Remove what never changes an answer's value: spacing macros, `$`, `\\left`/`\\right`, a final period."""
    text = _SPACING.sub("", answer)
    text = _FRAC_ALIASES.sub(r"\\frac", text)
    text = _DEGREES.sub("", text)
    return text.rstrip(".")


def as_number(text: str) -> Fraction | None:
    """An exact number from `42`, `-3.50`, `1,000`, `\\frac{3}{4}`, `3/4`, `50\\%`; None if not a plain number."""
    text = _PERCENT.sub("", text)
    if _DECIMAL.match(text):
        return Fraction(text.replace(",", ""))
    frac = _LATEX_FRAC.match(text) or _SLASH_FRAC.match(text)
    if frac:
        groups = frac.groups()
        sign = -1 if len(groups) == 3 and groups[0] == "-" else 1
        numerator, denominator = int(groups[-2]), int(groups[-1])
        if denominator == 0:
            return None
        return sign * Fraction(numerator, denominator)
    return None


def quick_compare(predicted: str, gold: str) -> QuickResult:
    p, g = normalize(predicted), normalize(gold)
    if p == g:
        return QuickResult(True, "same text")
    p_base, g_base = _BASE_NUMERAL.match(p), _BASE_NUMERAL.match(g)
    if p_base or g_base:
        return _compare_base_numerals(p_base, g_base, p, g)
    p_num, g_num = as_number(p), as_number(g)
    if p_num is not None and g_num is not None:
        return QuickResult(p_num == g_num, "same number" if p_num == g_num else "different number")
    return QuickResult(None, "needs symbolic check")


def _compare_base_numerals(p_base: re.Match[str] | None, g_base: re.Match[str] | None, p: str, g: str) -> QuickResult:
    """`52_8` vs `53_8` or `52_9` differ; `52` for `52_8` is accepted (the base is given by the question)."""
    p_digits, p_radix = (p_base.group(1), p_base.group(2)) if p_base else (p, None)
    g_digits, g_radix = (g_base.group(1), g_base.group(2)) if g_base else (g, None)
    if p_radix is not None and g_radix is not None and int(p_radix) != int(g_radix):
        return QuickResult(False, "different base")
    same = p_digits.upper() == g_digits.upper()
    return QuickResult(same, "same numeral" if same else "different numeral")
