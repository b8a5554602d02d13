"""Argument checks shared by the facade's modules, each with the one message it raises."""

from __future__ import annotations

from typing import Any, Optional


def seconds(value: Any, what: str, *, allow_none: bool = False, positive: bool = False) -> Optional[float]:
    """``value`` as float seconds: a real number >= 0 (> 0 with ``positive``), or None if ``allow_none``.

    Anything else (a bool, a str, NaN, a negative number) raises ValueError
    naming ``what``, the rule and the value.
    """
    if value is None and allow_none:
        return None
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not number or not (value > 0 if positive else value >= 0):
        rule = "> 0" if positive else ">= 0"
        extra = " or None" if allow_none else ""
        raise ValueError(f"{what} must be a number of seconds {rule}{extra}, got {value!r}")
    return float(value)
