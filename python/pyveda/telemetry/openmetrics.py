"""OpenMetrics 1.0 text from any Prometheus 0.0.4 exposition.

The core renders both formats itself (:func:`pyveda.telemetry.generate_prometheus`,
:func:`pyveda.telemetry.generate_openmetrics`, which the scrape endpoint
serves). :func:`to_openmetrics` rewrites other 0.0.4 text, such as
``MetricsSnapshot.export_prometheus()``, by the same rules:

* a counter's ``# TYPE``/``# HELP`` name drops ``_total`` (the sample keeps it);
* ``untyped`` becomes ``unknown``; lines are ordered TYPE, HELP;
* ``"`` in HELP text is escaped (0.0.4 escapes only ``\\`` and newline);
* ``le``/``quantile`` label values use the canonical form (``1.0``, ``+Inf``);
* summary quantiles read ``NaN`` for a series with no observations;
* timestamps, if any, turn from milliseconds into seconds;
* other comments and blank lines are dropped, and the body ends in ``# EOF``.

Only the formatting changes: values and label sets are the core's. The input
must be well-formed 0.0.4 text (families contiguous, TYPE before samples),
which the core always produces.
"""

from __future__ import annotations

import math
import re
from typing import Dict, List, Optional, Tuple

__all__ = ["CONTENT_TYPE_OPENMETRICS", "to_openmetrics"]

#: Content-Type header for :func:`to_openmetrics` output.
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# name, optional {labels}, value, optional timestamp. Label values may contain
# spaces, '}' and escaped quotes, so the label block is matched as quoted pairs.
_SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{(?P<labels>(?:[^"}]|"(?:[^"\\]|\\.)*")*)\})?'
    r'[ \t]+(?P<value>\S+)(?:[ \t]+(?P<ts>-?\d+))?[ \t]*$'
)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def _canonical_number(text: str) -> str:
    """Go ``%g`` (shortest digits) with ``.0`` added when it has neither '.' nor an exponent.

    That is OpenMetrics' canonical form for ``le`` and ``quantile`` values:
    ``0.5``, ``1.0``, ``100000.0``, ``1e+06``, ``1e-05``, ``+Inf``.
    """
    try:
        value = float(text)
    except ValueError:
        return text
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    from decimal import Decimal

    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    exp10 = len(mantissa) + exponent - 1
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:  # Go's %g switches to an exponent here (precision 6 when shortest)
        frac = mantissa[1:]
        return f"{prefix}{mantissa[0]}{'.' + frac if frac else ''}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    out = format(Decimal(repr(abs(value))).normalize(), "f")
    return prefix + (out if "." in out else out + ".0")


def _value(text: str) -> str:
    if text in ("+Inf", "-Inf", "NaN"):
        return text
    lowered = text.lower()
    if lowered in ("inf", "+inf"):
        return "+Inf"
    if lowered == "-inf":
        return "-Inf"
    if lowered == "nan":
        return "NaN"
    return text


class _Family:
    __slots__ = ("name", "type", "help", "samples")

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.type = kind
        self.help: Optional[str] = None
        # (sample name, [(label, escaped value)], value text, timestamp text or None)
        self.samples: List[Tuple[str, List[Tuple[str, str]], str, Optional[str]]] = []


def _parse(text: str) -> List[_Family]:
    families: List[_Family] = []
    by_name: Dict[str, _Family] = {}
    helps: Dict[str, str] = {}
    current: Optional[_Family] = None
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                name, kind = parts[2], (parts[3].strip() if len(parts) > 3 else "untyped")
                current = _Family(name, kind)
                families.append(current)
                by_name[name] = current
                if name in helps:
                    current.help = helps.pop(name)
            elif len(parts) >= 3 and parts[1] == "HELP":
                doc = parts[3] if len(parts) > 3 else ""
                if parts[2] in by_name:
                    by_name[parts[2]].help = doc
                else:
                    helps[parts[2]] = doc
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"not a Prometheus 0.0.4 sample line: {line!r}")
        name = match.group("name")
        labels = _LABEL.findall(match.group("labels") or "")
        sample = (name, labels, _value(match.group("value")), match.group("ts"))
        if current is not None and (
            name == current.name or any(name == current.name + s for s in _SUFFIXES.get(current.type, ()))
        ):
            current.samples.append(sample)
            continue
        # A sample without a TYPE line: its own untyped family.
        current = by_name.get(name)
        if current is None:
            current = _Family(name, "untyped")
            current.help = helps.pop(name, None)
            families.append(current)
            by_name[name] = current
        current.samples.append(sample)
    return families


def _escape_help(doc: str) -> str:
    # 0.0.4 HELP escapes '\' and newline; OpenMetrics also escapes '"'.
    out = []
    i = 0
    while i < len(doc):
        ch = doc[i]
        if ch == "\\" and i + 1 < len(doc):
            out.append(doc[i : i + 2])
            i += 2
            continue
        out.append('\\"' if ch == '"' else ch)
        i += 1
    return "".join(out)


def _render_family(family: _Family, out: List[str]) -> None:
    kind = {"untyped": "unknown"}.get(family.type, family.type)
    name = family.name
    if kind == "counter" and name.endswith("_total"):
        name = name[: -len("_total")]
    out.append(f"# TYPE {name} {kind}\n")
    if family.help:
        out.append(f"# HELP {name} {_escape_help(family.help)}\n")

    empty_series = set()
    if kind == "summary":
        for sample_name, labels, value, _ in family.samples:
            if sample_name == name + "_count" and value in ("0", "0.0"):
                empty_series.add(tuple(labels))

    for sample_name, labels, value, ts in family.samples:
        if kind == "counter" and sample_name == name:
            sample_name = name + "_total"
        rendered = []
        key = []
        for label, label_value in labels:
            if label in ("le", "quantile"):
                label_value = _canonical_number(label_value)
            else:
                key.append((label, label_value))
            rendered.append(f'{label}="{label_value}"')
        if kind == "summary" and sample_name == name and tuple(key) in empty_series:
            value = "NaN"  # OpenMetrics: quantiles of an empty window are NaN
        line = sample_name + ("{" + ",".join(rendered) + "}" if rendered else "") + " " + value
        if ts is not None:
            line += " " + _canonical_timestamp(ts)
        out.append(line + "\n")


def _canonical_timestamp(ms: str) -> str:
    seconds, millis = divmod(int(ms), 1000)
    return f"{seconds}.{millis:03d}"


def to_openmetrics(text: str) -> str:
    """Rewrites Prometheus text format 0.0.4 as OpenMetrics 1.0.0 text (ends in ``# EOF``)."""
    if not isinstance(text, str):
        raise TypeError(f"to_openmetrics() takes the exposition as a str, got {type(text).__name__}")
    out: List[str] = []
    for family in _parse(text):
        _render_family(family, out)
    out.append("# EOF\n")
    return "".join(out)
