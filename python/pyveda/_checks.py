"""Argument checks shared by the facade's modules, each with the one message it raises."""

from __future__ import annotations

from typing import Any, Optional


MAX_SECONDS = 1e9  # about 31 years: the longest wait any argument may ask for


def shown(value: Any) -> str:
    """``repr(value)``, except that an int too long to read is shown by its length."""
    if isinstance(value, int) and abs(value) >= 10**20:
        return f"an int of {len(str(abs(value)))} digits"
    return repr(value)


def seconds(value: Any, what: str, *, allow_none: bool = False, positive: bool = False) -> Optional[float]:
    """``value`` as float seconds: a real number >= 0 (> 0 with ``positive``), or None if ``allow_none``.

    Anything else (a bool, a str, NaN, a negative number, inf or anything
    from 1e9 s, about 31 years, up) raises ValueError naming ``what``, the
    rule and the value.
    """
    if value is None and allow_none:
        return None
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not number or not (value > 0 if positive else value >= 0) or not value < MAX_SECONDS:
        rule = "> 0" if positive else ">= 0"
        extra = " or None" if allow_none else ""
        limit = " (the longest allowed is 1e9 s, about 31 years)" if number and value == value and value > 0 else ""
        raise ValueError(f"{what} must be a number of seconds {rule}{extra}, got {shown(value)}{limit}")
    return float(value)
