"""The registry: the set of metrics (and collectors) one exposition renders.

:data:`REGISTRY` is the default one. Every exposition is rendered by the C++
core from one collection of the registry's families: Prometheus text 0.0.4,
OpenMetrics 1.0 and the protobuf exposition.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from pyveda import _core

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CONTENT_TYPE_PROTOBUF",
    "REGISTRY",
    "CollectorRegistry",
    "disable_created_metrics",
    "enable_created_metrics",
    "generate_openmetrics",
    "generate_prometheus",
    "generate_protobuf",
]

# Whether OpenMetrics has a _created sample per counter, histogram and summary
# series. Off when PROMETHEUS_DISABLE_CREATED_SERIES is true at import (as
# prometheus_client reads it) or after disable_created_metrics().
_created_series = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").strip().lower() not in ("true", "1", "t")


def disable_created_metrics() -> None:
    """Leaves the ``_created`` samples out of OpenMetrics expositions (as prometheus_client's)."""
    global _created_series
    _created_series = False


def enable_created_metrics() -> None:
    """Puts the ``_created`` samples back (the default)."""
    global _created_series
    _created_series = True


#: Content-Type header for :func:`generate_prometheus` output (text format 0.0.4).
CONTENT_TYPE_LATEST: str = _core.PROMETHEUS_CONTENT_TYPE
#: Content-Type of the protobuf exposition (:func:`generate_protobuf`), which
#: Prometheus asks for when its native histograms are enabled.
CONTENT_TYPE_PROTOBUF: str = _core.PROTOBUF_CONTENT_TYPE


class CollectorRegistry:
    """A set of metrics exposed together. :data:`REGISTRY` is the default one."""

    def __init__(self) -> None:
        self._core = _core.Registry()

    @classmethod
    def _wrap(cls, core_registry: _core.Registry) -> "CollectorRegistry":
        registry = cls.__new__(cls)
        registry._core = core_registry
        return registry

    def generate_prometheus(self) -> str:
        """Every metric of this registry in Prometheus text format 0.0.4."""
        return self._core.render_prometheus()

    def generate_openmetrics(self) -> str:
        """Every metric of this registry as OpenMetrics 1.0 text, ending in ``# EOF``.

        Rendered by the core from the same collection as the 0.0.4 text: TYPE
        before HELP, counters named without ``_total`` in their metadata,
        canonical quantile labels, NaN quantiles for a series with no
        observations, and a ``_created`` sample (the series' creation or
        last reset, in seconds) after each counter, histogram and summary
        series unless :func:`disable_created_metrics` was called or
        ``PROMETHEUS_DISABLE_CREATED_SERIES=true`` was set.
        """
        return self._core.render_openmetrics(_created_series)

    def generate_protobuf(self) -> bytes:
        """Every metric of this registry in Prometheus' protobuf exposition.

        Length-delimited ``io.prometheus.client.MetricFamily`` messages, the
        format Prometheus scrapes with ``--enable-feature=native-histograms``.
        Each Histogram goes out as a native histogram (its exponential
        buckets as they are: schema = scale, zero bucket, spans and deltas),
        so ``histogram_quantile()`` and ``histogram_count()`` work on it and
        replicas sum exactly; the text formats show the same histogram as a
        summary. Counters carry their created timestamp.
        """
        return self._core.encode_protobuf()

    def unregister(self, metric: Any) -> None:
        """Stops exposing ``metric``; its handles keep working. ValueError if not registered here."""
        family = getattr(metric, "_family", None)
        if family is None or not hasattr(metric, "_registry"):
            raise TypeError(f"unregister() takes a Counter, Gauge or Histogram, got {type(metric).__name__}")
        if metric._registry is not self or not self._core.unregister(family.name):
            raise ValueError(f"metric {family.name!r} is not registered in this registry")

    def clear(self) -> None:
        """Removes every metric."""
        self._core.clear()

    def names(self) -> list:
        """Registered metric names, in registration order (counters without ``_total``)."""
        return self._core.names()

    def __len__(self) -> int:
        return len(self._core)


#: The registry every metric joins unless given ``registry=``.
REGISTRY = CollectorRegistry._wrap(_core.default_registry())


def generate_prometheus(registry: Optional[CollectorRegistry] = None) -> str:
    """Renders ``registry`` (default :data:`REGISTRY`) as Prometheus text format 0.0.4."""
    return (REGISTRY if registry is None else registry).generate_prometheus()


def generate_openmetrics(registry: Optional[CollectorRegistry] = None) -> str:
    """Renders ``registry`` (default :data:`REGISTRY`) as OpenMetrics 1.0 text."""
    return (REGISTRY if registry is None else registry).generate_openmetrics()


def generate_protobuf(registry: Optional[CollectorRegistry] = None) -> bytes:
    """Encodes ``registry`` (default :data:`REGISTRY`) in the protobuf exposition (native histograms)."""
    return (REGISTRY if registry is None else registry).generate_protobuf()
