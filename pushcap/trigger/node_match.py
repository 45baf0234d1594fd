"""Node regexes (`nodere`) from the network, compiled only when a search provably ends quickly.

A `nodere` runs in this process against the node name, and Python's `re` cannot be interrupted:
a pattern that backtracks without bound would hang the listener. So only a safe subset is
accepted (see `check_regex_cost`), and a bounded cost is proved before the search runs.
"""

from __future__ import annotations

import re
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

from pushcap import defaults
from pushcap.trigger.errors import TriggerError


def compile_node_regex(expr: str, subject_chars: int) -> re.Pattern[str]:
    """Compile `expr` only if a search over `subject_chars` characters provably ends quickly."""
    if len(expr) > defaults.MAX_REGEX_CHARS:
        raise TriggerError("nodere", f"longer than {defaults.MAX_REGEX_CHARS} characters")
    try:
        parsed = sre_parse.parse(expr)
        pattern = re.compile(expr)
    except (re.error, RecursionError, OverflowError) as exc:
        raise TriggerError("nodere", f"{expr!r} does not compile: {exc}") from None
    check_regex_cost(parsed, subject_chars, expr)
    return pattern


_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT,
            getattr(sre_constants, "POSSESSIVE_REPEAT", sre_constants.MAX_REPEAT)}
_REFUSED = {sre_constants.GROUPREF: "backreferences", sre_constants.GROUPREF_EXISTS:
            "conditionals", sre_constants.ASSERT: "lookahead/lookbehind",
            sre_constants.ASSERT_NOT: "lookahead/lookbehind"}


def check_regex_cost(parsed, subject_chars: int, expr: str) -> None:
    """Refuse what makes backtracking explode, so the search is bounded without a timeout.

    Exponential blow-up needs a repeat over something that can match in several ways (a nested
    repeat, an alternation, a backreference); those are refused inside a repeat. What is left is
    polynomial: at most (n+1) ** (repeats + 1) steps for n characters, checked against a budget.
    """
    repeats = _count_repeats(parsed, inside_repeat=False, expr=expr)
    if (subject_chars + 1) ** (repeats + 1) > defaults.MAX_REGEX_STEPS:
        raise TriggerError("nodere", f"{expr!r} has too many repetitions ({repeats}) to search "
                           "in bounded time; simplify it")


def _count_repeats(items, inside_repeat: bool, expr: str) -> int:
    count = 0
    for op, arg in items:
        if op in _REFUSED:
            raise TriggerError("nodere", f"{expr!r}: {_REFUSED[op]} are not allowed")
        if op in _REPEATS:
            low, high, body = arg
            if inside_repeat:
                raise TriggerError("nodere", f"{expr!r}: nested repetition can backtrack "
                                   "forever; not allowed")
            count += 1 if low != high else 0  # a fixed count like \d{3} offers no choice
            count += _count_repeats(body, inside_repeat or high != 1, expr)
        elif op is sre_constants.BRANCH:
            if inside_repeat:
                raise TriggerError("nodere", f"{expr!r}: alternation inside a repetition can "
                                   "backtrack forever; use a character class")
            count += max((_count_repeats(b, inside_repeat, expr) for b in arg[1]), default=0)
        elif op is sre_constants.SUBPATTERN:
            count += _count_repeats(arg[-1], inside_repeat, expr)
        elif op is getattr(sre_constants, "ATOMIC_GROUP", None):
            count += _count_repeats(arg, inside_repeat, expr)
    return count
