"""OpenMetrics 1.0 text from any Prometheus 0.0.4 exposition.

The core renders both formats itself (:func:`pyveda.telemetry.generate_prometheus`,
:func:`pyveda.telemetry.generate_openmetrics`, which the scrape endpoint
serves). :func:`to_openmetrics` rewrites other 0.0.4 text, such as
``MetricsSnapshot.export_prometheus()``: the core reads it back into sample
families (``veda::parse_prometheus_text``) and renders those as OpenMetrics,
so the rules are the native renderer's:

* a counter's ``# TYPE``/``# HELP`` name drops ``_total`` (the sample keeps it);
* ``untyped`` becomes ``unknown``; lines are ordered TYPE, HELP;
* ``"`` in HELP text is escaped (0.0.4 escapes only ``\\`` and newline);
* ``le``/``quantile`` label values use the canonical form (``1.0``, ``+Inf``);
* summary quantiles read ``NaN`` for a series with no observations;
* timestamps, if any, turn from milliseconds into seconds;
* other comments and blank lines are dropped, and the body ends in ``# EOF``.

Only the formatting changes: values and label sets are the input's.
Malformed input raises ValueError naming the line and what is wrong.
"""

from __future__ import annotations

from pyveda import _core

__all__ = ["CONTENT_TYPE_OPENMETRICS", "to_openmetrics"]

#: Content-Type header for :func:`to_openmetrics` output (and the scrape endpoint's OpenMetrics).
CONTENT_TYPE_OPENMETRICS: str = _core.OPENMETRICS_CONTENT_TYPE


def to_openmetrics(text: str) -> str:
    """Rewrites Prometheus text format 0.0.4 as OpenMetrics 1.0.0 text (ends in ``# EOF``)."""
    if not isinstance(text, str):
        raise TypeError(f"to_openmetrics() takes the exposition as a str, got {type(text).__name__}")
    return _core.render_openmetrics_from_text(text)
