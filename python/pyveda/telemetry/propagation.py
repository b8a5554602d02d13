"""W3C Trace Context: the ``traceparent`` and ``tracestate`` headers, written and read.

:meth:`TracingSystem.inject <pyveda.telemetry.tracing.TracingSystem.inject>` and
:meth:`~pyveda.telemetry.tracing.TracingSystem.extract` are thin wrappers over
:func:`inject` and :func:`extract`; this module holds the format rules
(https://www.w3.org/TR/trace-context/, level 1):

- ``traceparent`` is ``version-trace_id-span_id-flags`` in lowercase hex; we
  write version ``00``. A reader accepts a later version and ignores what
  follows the four fields, refuses version ``ff``, a version ``00`` with extra
  fields, and all-zero ids.
- ``tracestate`` is passed on cleaned: empty and malformed members dropped, at
  most 32 members and 512 characters (members over 128 characters go first).

>>> inject({}, span)  # doctest: +SKIP
{'traceparent': '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'}
>>> extract({'traceparent': '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'})
('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', 1, '')
"""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping, Optional, Tuple

__all__ = ["clean_tracestate", "extract", "format_traceparent", "inject", "parse_traceparent"]

_logger = logging.getLogger("pyveda")

_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.S)
_TRACESTATE_MAX_MEMBERS = 32
_TRACESTATE_MAX_LENGTH = 512
_TRACESTATE_LONG_MEMBER = 128


def inject(headers: Any, span: Any) -> Any:
    """Writes ``traceparent`` (and ``tracestate`` when it has one) for ``span`` into ``headers``.

    ``span``: anything with ``trace_id``, ``span_id``, ``flags`` and
    ``trace_state`` (a :class:`~pyveda.telemetry.Span`), or None to write
    nothing. ``headers`` takes item assignment (a dict); anything else is a
    TypeError. Returns ``headers``.
    """
    if not callable(getattr(headers, "__setitem__", None)):
        raise TypeError(
            f"inject() writes into a mutable mapping of header names to values (a dict), got {type(headers).__name__}"
        )
    if span is None:
        return headers
    headers["traceparent"] = format_traceparent(span.trace_id, span.span_id, span.flags)
    if span.trace_state:
        headers["tracestate"] = span.trace_state
    return headers


def extract(headers: Mapping[str, Any]) -> Optional[Tuple[str, str, int, str]]:
    """``(trace_id, span_id, trace_flags, trace_state)`` from ``traceparent``/``tracestate``, or None.

    Header names match case-insensitively; a list value is joined with commas
    and bytes are read as Latin-1. An invalid ``traceparent`` is ignored
    (logged at debug level on the "pyveda" logger). ``headers`` is a mapping
    (a dict, or an object with ``get()`` and ``items()`` such as
    ``http.client.HTTPMessage``); anything else is a TypeError.
    """
    if not (callable(getattr(headers, "get", None)) and callable(getattr(headers, "items", None))):
        raise TypeError(
            "extract() takes a mapping of header names to values (a dict, or an object with get() and "
            f"items()), got {type(headers).__name__}"
        )
    value = _header(headers, "traceparent")
    if value is None:
        return None
    parsed = parse_traceparent(value)
    if parsed is None:
        _logger.debug("ignoring invalid traceparent header %r", value)
        return None
    trace_id, span_id, flags = parsed
    return trace_id, span_id, flags, clean_tracestate(_header(headers, "tracestate"))


def format_traceparent(trace_id: str, span_id: str, flags: int) -> str:
    """The version-00 ``traceparent`` value (only the low 8 bits of ``flags`` are trace flags)."""
    return f"00-{trace_id}-{span_id}-{flags & 0xFF:02x}"


def parse_traceparent(value: str) -> Optional[Tuple[str, str, int]]:
    """``(trace_id, span_id, trace_flags)`` of a ``traceparent`` value, or None when it is invalid."""
    value = value.strip(" \t")
    match = _TRACEPARENT_RE.fullmatch(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff":
        return None
    if version == "00" and rest is not None:
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, int(flags, 16)


def clean_tracestate(value: Optional[str]) -> str:
    """A ``tracestate`` value with malformed members dropped and cut to the W3C limits ("" for none)."""
    if not value:
        return ""
    members = [m.strip() for m in value.split(",")]
    members = [m for m in members if m and "=" in m and m[0] != "="]
    if len(members) > _TRACESTATE_MAX_MEMBERS:
        members = members[:_TRACESTATE_MAX_MEMBERS]
    text = ",".join(members)
    if len(text) > _TRACESTATE_MAX_LENGTH:  # drop the entries over 128 characters first, then from the end
        members = [m for m in members if len(m) <= _TRACESTATE_LONG_MEMBER]
        while members and len(",".join(members)) > _TRACESTATE_MAX_LENGTH:
            members.pop()
        text = ",".join(members)
    return text


def _header(headers: Mapping[str, Any], name: str) -> Optional[str]:
    """The value of header ``name`` (lowercase), matched case-insensitively, as a str; None if absent."""
    value = headers.get(name)
    if value is None:
        for key, v in headers.items():
            if isinstance(key, str) and key.lower() == name:
                value = v
                break
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if isinstance(value, str) else None
