"""Counter, Gauge and Histogram in the style of prometheus_client.

The values live in the C++ core (``pyveda._core``); these classes only check
Python argument types, remember label handles and expose the core's methods.
An unlabelled metric binds the core series' methods onto the instance, so
``counter.inc()`` is one native call.

Registering the same name twice with the same type, label names and help
returns a metric that shares the first one's series (prometheus_client raises
instead); any difference raises ValueError.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Tuple

from pyveda import _core
from pyveda.telemetry.registry import (  # noqa: F401 - re-exported: older imports name this module
    CONTENT_TYPE_LATEST,
    CONTENT_TYPE_PROTOBUF,
    REGISTRY,
    CollectorRegistry,
    disable_created_metrics,
    enable_created_metrics,
    generate_openmetrics,
    generate_prometheus,
    generate_protobuf,
)

__all__ = ["Counter", "Gauge", "Histogram"]

def _require_str(owner: str, what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{owner}: {what} must be a str, got {type(value).__name__} ({value!r})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{owner}: {what} {value!r} is not valid Unicode text: it has a lone surrogate at index "
            f"{error.start}, which UTF-8 cannot encode"
        ) from None
    return value


def _label_names(owner: str, labelnames: Iterable[str]) -> Tuple[str, ...]:
    if isinstance(labelnames, (str, bytes)):
        raise TypeError(
            f"{owner}: labelnames must be a sequence of str such as ('method',), "
            f"not a single {type(labelnames).__name__} ({labelnames!r})"
        )
    try:
        names = tuple(labelnames)
    except TypeError:
        raise TypeError(
            f"{owner}: labelnames must be a sequence of str, got {type(labelnames).__name__}"
        ) from None
    for name in names:
        _require_str(owner, "each label name", name)
    return names


def _bucket_bounds(buckets: Any) -> List[float]:
    """The bounds as floats; the core checks their order (and says which rule broke)."""
    if isinstance(buckets, (str, bytes)) or not hasattr(buckets, "__iter__"):
        raise TypeError(f"Histogram: buckets must be a sequence of numbers, got {type(buckets).__name__} ({buckets!r})")
    bounds = []
    for bound in buckets:
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise TypeError(f"Histogram: each bucket bound must be a number, got {type(bound).__name__} ({bound!r})")
        bounds.append(float(bound))
    return _core.check_histogram_bounds(bounds)


class _Metric:
    """Argument checks and registration, shared by the three metric types.

    Each subclass also derives from the core series type that records its
    values (``_core.Counter`` ...), so ``counter.inc()`` and
    ``counter.labels(...)`` resolve straight to native code. Subclasses set
    ``_kind`` to the registry method to call.
    """

    __slots__ = ()
    _kind = "metric"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        registry: Optional[CollectorRegistry] = None,
        **family_options: Any,
    ) -> None:
        owner = type(self).__name__
        _require_str(owner, "name", name)
        _require_str(owner, "description", documentation)
        names = _label_names(owner, labelnames)
        if registry is None:
            registry = REGISTRY
        elif not isinstance(registry, CollectorRegistry):
            raise TypeError(f"{owner}: registry must be a CollectorRegistry, got {type(registry).__name__}")
        register = getattr(registry._core, self._kind)
        super().__init__(register(name, documentation, list(names), **family_options))
        self._registry = registry

    @property
    def name(self) -> str:
        """The registered name (a counter's without ``_total``)."""
        return self._family.name

    @property
    def documentation(self) -> str:
        return self._family.help

    @property
    def labelnames(self) -> Tuple[str, ...]:
        return tuple(self._family.label_names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, labelnames={self.labelnames!r})"


class Counter(_Metric, _core.Counter):
    """A total that only goes up, e.g. requests served or tasks failed.

    ``Counter('http_requests_total', 'Total HTTP requests')`` is exposed as
    ``http_requests_total``; a trailing ``_total`` is added when missing.
    Methods: ``inc(amount=1)`` (a finite amount >= 0, else ValueError),
    ``get()``, ``reset()``; on a labelled counter, call them on ``labels(...)``.
    """

    __slots__ = ("_registry",)
    _kind = "counter"


class Gauge(_Metric, _core.Gauge):
    """A value that goes up and down, e.g. active connections.

    Methods: ``set(v)``, ``inc(amount=1)``, ``dec(amount=1)``,
    ``set_to_current_time()``, ``get()``.
    """

    __slots__ = ("_registry",)
    _kind = "gauge"


class Histogram(_Metric, _core.Histogram):
    """A distribution of non-negative values, e.g. request durations in ms.

    Stored in the core as a base-2 exponential histogram (OpenTelemetry's
    layout): ``scale`` (0-8, default 6) gives 2^scale buckets per power of
    two; at 6 every percentile is within 0.54% of the true value. Memory is
    fixed at 32 KiB per series. Negative, NaN and infinite values raise
    ValueError.

    How Prometheus sees it:

    * over protobuf (Prometheus with native histograms enabled), always as a
      native histogram: the exponential buckets as they are, so
      ``histogram_quantile()`` works and replicas sum exactly;
    * in the text formats, without ``buckets`` as a summary with quantiles
      0.5, 0.9, 0.95 and 0.99 plus ``_sum`` and ``_count``;
    * with ``buckets=(...)`` (as prometheus_client; ``DEFAULT_BUCKETS`` is
      its default set) as a classic histogram: cumulative ``_bucket``
      samples exact for those bounds, ``le="+Inf"``, ``_sum``, ``_count``
      (and the same buckets inside the protobuf message). Bounds must be
      finite and strictly increasing; a trailing ``+Inf`` may be given.

    Percentiles cover every observation. With ``max_age_seconds=600`` (in
    the spirit of client_java's Summary), ``get_percentile(p, recent=True)``
    and the summary quantiles in the text formats describe about the last
    600 seconds instead, while count, sum and buckets stay cumulative. The
    window is kept without any cost per observation: each read (a scrape, a
    ``recent=True`` call) leaves a copy of the cumulative buckets, about 16
    are kept per window, and a read subtracts the newest copy at least one
    window old; so with reads rarer than the window it covers the time since
    the previous read, and early on the whole lifetime.

    Methods: ``observe(v)``, ``get_percentile(p, recent=False)`` (p in
    [0, 100]), ``get_mean()``, ``get_count()``, ``get_sum()``, ``get_min()``,
    ``get_max()``, ``snapshot()``, ``recent()``.
    """

    __slots__ = ("_registry",)
    _kind = "histogram"
    #: prometheus_client's default bucket bounds (seconds), for ``buckets=Histogram.DEFAULT_BUCKETS``.
    DEFAULT_BUCKETS: Tuple[float, ...] = (
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, float("inf"),
    )

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        registry: Optional[CollectorRegistry] = None,
        scale: int = _core.HISTOGRAM_DEFAULT_SCALE,
        buckets: Optional[Iterable[float]] = None,
        max_age_seconds: Optional[float] = None,
    ) -> None:
        low, high = _core.HISTOGRAM_MIN_SCALE, _core.HISTOGRAM_MAX_SCALE
        if not isinstance(scale, int) or isinstance(scale, bool):
            raise TypeError(f"Histogram: scale must be an int in [{low}, {high}], got {type(scale).__name__}")
        if not low <= scale <= high:
            raise ValueError(f"histogram scale must be an integer in [{low}, {high}], got {scale}")  # the core's words
        bounds = [] if buckets is None else _bucket_bounds(buckets)
        if max_age_seconds is None:
            max_age = 0.0
        elif isinstance(max_age_seconds, bool) or not isinstance(max_age_seconds, (int, float)):
            raise TypeError(
                f"Histogram: max_age_seconds must be a number of seconds or None, got {type(max_age_seconds).__name__}"
            )
        elif not 0 < max_age_seconds <= 1e9:
            raise ValueError(f"Histogram: max_age_seconds must be in (0, 1e9] seconds, got {max_age_seconds!r}")
        else:
            max_age = float(max_age_seconds)
        super().__init__(
            name, documentation, labelnames, registry=registry, scale=scale, buckets=bounds, max_age_s=max_age
        )


# Calls to the native fast paths are specialised by CPython only when the
# method belongs to the receiver's exact type: give the subclasses their own.
for _cls in (Counter, Gauge, Histogram):
    _core._own_fast_methods(_cls)
del _cls
