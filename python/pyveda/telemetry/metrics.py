"""Counter, Gauge, Histogram and Summary in the style of prometheus_client.

The values live in the C++ core (``pyveda._core``); these classes only check
Python argument types, remember label handles and expose the core's methods.
Each class derives from the core series type that records its values, so
``counter.inc()`` and ``counter.labels(...)`` are one native call.

The constructors take prometheus_client 0.26's arguments in its order:
``(name, documentation, labelnames=(), namespace='', subsystem='', unit='',
registry=REGISTRY)``. The exposed name is ``namespace_subsystem_name``
(empty parts left out), then ``_<unit>`` unless the name already ends so (a
counter's ``_total`` comes off first and goes back on at exposition).
``registry=None`` makes a metric that works but is exposed nowhere until a
registry's ``register()`` takes it.

The helpers of :mod:`pyveda.telemetry.instrument` hang off the metrics:
``Counter.count_exceptions()``, ``Gauge.track_inprogress()``,
``Gauge.time()``, ``Histogram.time()`` and ``Summary.time()``, for ``with``,
``async with`` and as decorators of functions, generators, coroutines and
async generators. ``Gauge.set_function(f)`` makes the gauge read ``f()`` at
each collection.

Registering the same name twice with the same type, label names and help
returns a metric that shares the first one's series (prometheus_client raises
instead); any difference raises ValueError.
"""

from __future__ import annotations

import atexit
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from pyveda import _core
from pyveda.telemetry import registry as _registry_module
from pyveda.telemetry import instrument as _instrument  # noqa: F401 - sets how time() and the others decorate
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

__all__ = ["Counter", "Gauge", "Histogram", "Summary"]

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


def _full_name(owner: str, kind: str, name: Any, namespace: Any, subsystem: Any, unit: Any) -> str:
    """prometheus_client's rule: ``namespace_subsystem_name`` (empty parts left out), then ``_<unit>``."""
    _require_str(owner, "name", name)
    for what, part in (("namespace", namespace), ("subsystem", subsystem), ("unit", unit)):
        _require_str(owner, what, part)
    if not name:
        raise ValueError(f"{owner}: metric name must not be empty")
    full = "_".join(part for part in (namespace, subsystem, name) if part)
    if kind == "counter" and full.endswith("_total"):
        full = full[:-6]  # the core adds it back at exposition; off first, so a unit goes before it
    if unit and not full.endswith("_" + unit):
        full += "_" + unit
    return full


def _check_label_names(owner: str, names: Tuple[str, ...]) -> None:
    """The core's ValueError for a label name it would refuse (under the current name validation), naming the metric too."""
    for label in names:
        try:
            _core.check_label_name(label)
        except ValueError as error:
            raise ValueError(f"{error} ({owner})") from None


def _max_age(owner: str, max_age_seconds: Any) -> float:
    if max_age_seconds is None:
        return 0.0
    if isinstance(max_age_seconds, bool) or not isinstance(max_age_seconds, (int, float)):
        raise TypeError(
            f"{owner}: max_age_seconds must be a number of seconds or None, got {type(max_age_seconds).__name__}"
        )
    if not 0 < max_age_seconds <= 1e9:
        raise ValueError(f"{owner}: max_age_seconds must be in (0, 1e9] seconds, got {max_age_seconds!r}")
    return float(max_age_seconds)


class _Metric:
    """Naming, argument checks, registration and series removal, shared by the metric types.

    Each subclass also derives from the core series type that records its
    values (``_core.Counter`` ...), so ``counter.inc()`` and
    ``counter.labels(...)`` resolve straight to native code. Subclasses set
    ``_kind`` to the registry method to call and ``_probe`` to a cheap native
    read, which raises the core's ValueError on a labelled metric itself
    (not one of its series).

    Children (what ``labels(...)`` returns) are made by the core without
    running ``__init__``: they have ``_family`` but not ``_registry``.
    """

    __slots__ = ()
    _kind = "metric"
    _probe: Callable[[], Any]

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Optional[CollectorRegistry] = REGISTRY,
        _labelvalues: Optional[Sequence[str]] = None,
    ) -> None:
        self._setup(name, documentation, labelnames, namespace, subsystem, unit, registry, _labelvalues, {})

    def _setup(self, name: Any, documentation: Any, labelnames: Iterable[str], namespace: Any, subsystem: Any,
               unit: Any, registry: Any, labelvalues: Any, options: Dict[str, Any]) -> None:
        owner = type(self).__name__
        full = _full_name(owner, self._kind, name, namespace, subsystem, unit)
        _require_str(owner, "description", documentation)
        names = _label_names(owner, labelnames)
        _check_label_names(f"{owner} {full!r}", names)
        if labelvalues is not None:
            raise ValueError(
                f"{owner} {full!r}: _labelvalues is prometheus_client's internal way to make a child; "
                "call labels(...) on the metric instead"
            )
        if registry is None:
            registry = CollectorRegistry()  # prometheus_client's None: the metric works, exposed nowhere
        elif not isinstance(registry, CollectorRegistry):
            raise TypeError(f"{owner}: registry must be a CollectorRegistry, got {type(registry).__name__}")
        register = getattr(registry._core, self._kind)
        super().__init__(register(full, documentation, list(names), unit=unit, **options))  # type: ignore[call-arg]
        self._registry = registry

    @property
    def name(self) -> str:
        """The registered name (a counter's without ``_total``)."""
        return self._family.name  # type: ignore[attr-defined,no-any-return]

    @property
    def documentation(self) -> str:
        return self._family.help  # type: ignore[attr-defined,no-any-return]

    @property
    def labelnames(self) -> Tuple[str, ...]:
        return tuple(self._family.label_names)  # type: ignore[attr-defined]

    def _is_parent(self) -> bool:
        """Whether this is a labelled metric itself, not a series from labels(...)."""
        if not self._family.label_names:  # type: ignore[attr-defined]
            return False
        try:
            self._probe()
        except ValueError:
            return True
        return False

    def remove_by_labels(self, labels: Dict[str, Any]) -> None:
        """Removes every series whose labels include all of ``labels`` (values compared as ``str()``).

        ``{}`` removes nothing. ValueError for a metric without label names,
        a label name the metric does not have, or a call on a series; TypeError
        when ``labels`` is not a dict. Handles of removed series keep working,
        unexported, as after ``remove()``.
        """
        owner = f"{type(self).__name__} {self.name!r}"
        names = self.labelnames
        if not names:
            raise ValueError(f"{owner} has no label names, so it has no labelled series to remove")
        if not self._is_parent():
            raise ValueError(
                f"{owner}: this is one labelled series (what labels(...) returned); "
                "call remove_by_labels() on the metric itself"
            )
        if not isinstance(labels, dict):
            raise TypeError(
                f"{owner}: remove_by_labels() takes a dict of {{label_name: label_value}}, got {type(labels).__name__}"
            )
        unknown = [key for key in labels if key not in names]
        if unknown:
            raise ValueError(f"{owner}: remove_by_labels() got unknown label names {unknown}; its label names are {names!r}")
        if not labels:
            return
        wanted = [(names.index(key), str(value)) for key, value in labels.items()]
        for values in self._family.label_sets():  # type: ignore[attr-defined]
            if all(values[i] == value for i, value in wanted):
                self.remove(*values)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, labelnames={self.labelnames!r})"


class Counter(_Metric, _core.Counter):
    """A total that only goes up, e.g. requests served or tasks failed.

    ``Counter('http_requests_total', 'Total HTTP requests')`` is exposed as
    ``http_requests_total``; a trailing ``_total`` is added when missing.
    Methods: ``inc(amount=1)`` (a finite amount >= 0, else ValueError),
    ``get()``, ``reset()``, ``count_exceptions()``; on a labelled counter,
    call them on ``labels(...)``.
    """

    __slots__ = ("_registry",)
    _kind = "counter"
    _probe = _core.Counter.get

    # count_exceptions(exception=Exception) -> ExceptionCounter is native (_core.Counter): adds 1 each
    # time an exception of those types leaves a block or decorated function (functions, generators,
    # coroutines, async generators); ValueError on a labelled counter, as in prometheus_client.


class Gauge(_Metric, _core.Gauge):
    """A value that goes up and down, e.g. active connections.

    Methods: ``set(v)``, ``inc(amount=1)``, ``dec(amount=1)``,
    ``set_to_current_time()``, ``get()``, ``track_inprogress()``, ``time()``,
    ``set_function(f)``.

    ``multiprocess_mode`` (prometheus_client's modes) says how multi-process
    mode (:mod:`pyveda.telemetry.multiprocess`) combines the processes'
    values; without that mode it changes nothing. The ``mostrecent`` modes
    keep the time of every change, ``inc()``/``dec()`` included, so they do
    not refuse those as prometheus_client does. In multi-process mode a
    ``set_function`` gauge stores its function's value whenever this process
    collects; other processes see the value stored last.
    """

    __slots__ = ("_registry", "_function")
    _kind = "gauge"
    _probe = _core.Gauge.get
    _MULTIPROC_MODES: Tuple[str, ...] = (
        "all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent", "livemostrecent",
    )

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Optional[CollectorRegistry] = REGISTRY,
        _labelvalues: Optional[Sequence[str]] = None,
        multiprocess_mode: str = "all",
    ) -> None:
        if not isinstance(multiprocess_mode, str) or multiprocess_mode not in self._MULTIPROC_MODES:
            raise ValueError(
                f"Gauge {name!r}: invalid multiprocess mode {multiprocess_mode!r}; "
                f"expected one of: {', '.join(self._MULTIPROC_MODES)}"
            )
        self._setup(name, documentation, labelnames, namespace, subsystem, unit, registry, _labelvalues,
                    {"multiprocess_mode": multiprocess_mode})

    # track_inprogress() -> InprogressTracker (inc() when a block or decorated function starts, dec()
    # when it ends; ValueError on a labelled gauge) and time() -> Timer (sets the gauge to the seconds
    # it took) are native (_core.Gauge).

    def set_function(self, f: Callable[[], float]) -> None:
        """Makes the gauge read ``float(f())``: at each collection of a registry exposing it, and in ``get()``.

        ``f`` may be called from any thread; an exception from it fails that
        collection, as in prometheus_client. The gauge (and ``f``) stay
        referenced from then on, since the registry exposes its series
        whether or not the Python object is kept.
        """
        self._probe()
        if not callable(f):
            raise TypeError(f"Gauge {self.name!r}: set_function() takes a callable, got {type(f).__name__}")
        self._function = f
        _function_gauges[id(self)] = self

    def get(self) -> float:
        """The current value (``float(f())`` after ``set_function(f)``)."""
        function = getattr(self, "_function", None)
        if function is None:
            return _core.Gauge.get(self)
        return float(function())


# Gauges given a function by set_function(), by id. Held strongly: a registry
# exposes their families, not these objects, and prometheus_client's registry
# keeps such a gauge (and its function) alive the same way.
_function_gauges: Dict[int, Gauge] = {}


def _before_collect(registry: CollectorRegistry) -> None:
    """Sets every set_function gauge that ``registry`` exposes to its function's value.

    Called before each collection (render, ``collect()``, ``get_sample_value``).
    """
    if not _function_gauges:
        return
    core = registry._core
    set_value = _core.Gauge.set
    for gauge in list(_function_gauges.values()):
        if gauge._family in core:
            set_value(gauge, float(gauge._function()))


_registry_module._metrics_hooks.hooks.append(_before_collect)
# Let go of them before interpreter teardown, so the core's objects are freed
# while the core module still exists (nanobind reports them as leaks otherwise).
atexit.register(_function_gauges.clear)


class Histogram(_Metric, _core.Histogram):
    """A distribution of non-negative values, e.g. request durations.

    Stored in the core as a base-2 exponential histogram (OpenTelemetry's
    layout): ``scale`` (0-8, default 6) gives 2^scale buckets per power of
    two; at 6 every percentile is within 0.54% of the true value. Memory is
    fixed at 32 KiB per series. Negative, NaN and infinite values raise
    ValueError (prometheus_client accepts them).

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
    ``recent=True`` call) leaves a copy of the
    cumulative buckets, about 16 are kept per window, and a read subtracts
    the newest copy at least one window old; so with reads rarer than the
    window it covers the time since the previous read, and early on the
    whole lifetime.

    Methods: ``observe(v)``, ``time()`` (observes seconds),
    ``get_percentile(p, recent=False)`` (p in [0, 100]), ``get_mean()``,
    ``get_count()``, ``get_sum()``, ``get_min()``, ``get_max()``,
    ``snapshot()``, ``recent()``.
    """

    __slots__ = ("_registry",)
    _kind = "histogram"
    _probe = _core.Histogram.get_count
    #: prometheus_client's default bucket bounds (seconds), for ``buckets=Histogram.DEFAULT_BUCKETS``.
    DEFAULT_BUCKETS: Tuple[float, ...] = (
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, float("inf"),
    )

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Optional[CollectorRegistry] = REGISTRY,
        _labelvalues: Optional[Sequence[str]] = None,
        buckets: Optional[Iterable[float]] = None,
        *,
        scale: int = _core.HISTOGRAM_DEFAULT_SCALE,
        max_age_seconds: Optional[float] = None,
    ) -> None:
        low, high = _core.HISTOGRAM_MIN_SCALE, _core.HISTOGRAM_MAX_SCALE
        if not isinstance(scale, int) or isinstance(scale, bool):
            raise TypeError(f"Histogram: scale must be an int in [{low}, {high}], got {type(scale).__name__}")
        if not low <= scale <= high:
            raise ValueError(f"histogram scale must be an integer in [{low}, {high}], got {scale}")  # the core's words
        bounds = [] if buckets is None else _bucket_bounds(buckets)
        options = {"scale": scale, "buckets": bounds, "max_age_s": _max_age("Histogram", max_age_seconds)}
        self._setup(name, documentation, labelnames, namespace, subsystem, unit, registry, _labelvalues, options)

    # time() -> Timer, observing the seconds a block or decorated function took, is native (_core.Histogram).


class Summary(_Metric, _core.Histogram):
    """Count and sum of observations, e.g. request sizes, as prometheus_client's Summary.

    Exposed as ``<name>_count`` and ``<name>_sum`` (plus ``_created`` in
    OpenMetrics); ``quantiles=(0.5, 0.99)`` adds those quantile samples,
    computed from the same exponential histogram as :class:`Histogram`'s
    (``max_age_seconds`` windows them likewise). The label name
    ``quantile`` is reserved. Values must be finite and >= 0.

    Methods: ``observe(v)``, ``time()`` (observes seconds), and Histogram's
    readers (``get_count()``, ``get_sum()``, ``get_percentile(p)`` ...).
    """

    __slots__ = ("_registry",)
    _kind = "summary"
    _probe = _core.Histogram.get_count

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Optional[CollectorRegistry] = REGISTRY,
        _labelvalues: Optional[Sequence[str]] = None,
        *,
        quantiles: Iterable[float] = (),
        max_age_seconds: Optional[float] = None,
    ) -> None:
        if isinstance(quantiles, (str, bytes)) or not hasattr(quantiles, "__iter__"):
            raise TypeError(f"Summary: quantiles must be a sequence of numbers in [0, 1], got {quantiles!r}")
        points = []
        for q in quantiles:
            if isinstance(q, bool) or not isinstance(q, (int, float)):
                raise TypeError(f"Summary: each quantile must be a number in [0, 1], got {type(q).__name__} ({q!r})")
            points.append(float(q))
        options = {"quantiles": points, "max_age_s": _max_age("Summary", max_age_seconds)}
        self._setup(name, documentation, labelnames, namespace, subsystem, unit, registry, _labelvalues, options)

    # time() -> Timer, observing the seconds a block or decorated function took, is native (_core.Histogram).


# Calls to the native fast paths are specialised by CPython only when the
# method belongs to the receiver's exact type: give the subclasses their own.
for _cls in (Counter, Gauge, Histogram, Summary):
    _core._own_fast_methods(_cls)
del _cls
