"""Find the last ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``) in a text, with balanced braces.

Both the loaders (gold answer from a solution) and the grader (answer from a model response) use this, so
it lives on its own with no dependencies. Model responses can be tens of thousands of characters and the
grader calls this for every sampled chain, so it is a reverse ``str.rfind`` for the macro plus one forward
pass over the braces after it: linear time, no regex that could backtrack.
"""

from __future__ import annotations

import re

_MACROS = ("\\boxed", "\\fbox")
# Only a single-character class: each match is O(1), finditer over the argument stays linear.
_BRACE_OR_ESCAPE = re.compile(r"[{}\\]")
# `\boxed 5` takes one token; a `$` closes the math mode the box sits in, so it ends the token too.
_TOKEN_END = re.compile(r"[\s$]")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``, or None.

    - Braces nest: ``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``.
    - Escaped braces (``\\{``, ``\\}``) are literal characters, not grouping, so ``\\boxed{\\{1,2\\}}``
      gives ``\\{1,2\\}`` and ``\\boxed{\\left\\{x\\right.}`` is still balanced.
    - ``\\boxed 5`` (no braces) gives the single token after the space: ``5``.
    - Whitespace between the macro and its ``{`` is allowed (``\\boxed {5}``).
    - The last box wins, whichever macro it uses. If the last box is unbalanced or has no argument, the
      result is None: an earlier box is not a safe stand-in for a broken final answer.
    - A longer macro that merely starts with the name (``\\boxedsymbol``) is not a box and is skipped.
    - ``\\boxed{}`` gives ``""``; callers decide whether an empty answer counts.
    """
    end = len(text)
    while True:
        start, macro = _last_macro(text, end)
        if start < 0:
            return None
        after = start + len(macro)
        if after < len(text) and text[after].isalpha():
            # `\boxedfoo` is some other command; keep looking further left.
            end = start
            continue
        return _argument(text, after)


def _last_macro(text: str, end: int) -> tuple[int, str]:
    """Position and name of the right-most box macro that starts before ``end`` (-1 when none)."""
    best, best_macro = -1, ""
    for macro in _MACROS:
        # rfind's end bound applies to the whole match; macros never overlap, so bounding by `end + len`
        # finds every occurrence that *starts* before `end`.
        pos = text.rfind(macro, 0, end + len(macro) - 1)
        if pos > best:
            best, best_macro = pos, macro
    return best, best_macro


def _argument(text: str, pos: int) -> str | None:
    """The argument that starts at ``pos`` (just after the macro name)."""
    n = len(text)
    i = pos
    while i < n and text[i].isspace():
        i += 1
    if i >= n:
        return None
    if text[i] != "{":
        if i == pos:
            # `\boxed5` or `\boxed\frac..` without a space is not the token form Qwen/LIMO accept.
            return None
        m = _TOKEN_END.search(text, i)
        token = text[i : m.start() if m else n]
        return token or None
    depth = 0
    skip_to = -1
    for m in _BRACE_OR_ESCAPE.finditer(text, i):
        j = m.start()
        if j < skip_to:
            continue
        ch = text[j]
        if ch == "\\":
            # The next character is escaped (`\{`, `\}`, `\\`): it never opens or closes a group.
            skip_to = j + 2
        elif ch == "{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None
