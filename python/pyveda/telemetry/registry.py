"""The registry: the set of metrics (and collectors) one exposition renders.

:data:`REGISTRY` is the default one. Every exposition is rendered by the C++
core from one collection of the registry's families: Prometheus text 0.0.4,
OpenMetrics 1.0 and the protobuf exposition.
"""

from __future__ import annotations

import abc
import os
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from pyveda import _core

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CONTENT_TYPE_PLAIN_0_0_4",
    "CONTENT_TYPE_PLAIN_1_0_0",
    "CONTENT_TYPE_PROTOBUF",
    "REGISTRY",
    "Collector",
    "CollectorRegistry",
    "RestrictedRegistry",
    "ESCAPING_SCHEMES",
    "disable_legacy_validation",
    "enable_legacy_validation",
    "generate_latest",
    "get_legacy_validation",
    "write_to_textfile",
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


# Which metric and label names are valid: any UTF-8 text (without control
# characters), as prometheus_client 0.26, unless PROMETHEUS_LEGACY_NAME_VALIDATION
# is true at import or enable_legacy_validation() is called; then only the
# legacy character set.
_core.set_legacy_name_validation(
    os.environ.get("PROMETHEUS_LEGACY_NAME_VALIDATION", "False").strip().lower() in ("true", "1", "t")
)


def enable_legacy_validation() -> None:
    """New metric and label names must use the legacy character set ([a-zA-Z_:][a-zA-Z0-9_:]*)."""
    _core.set_legacy_name_validation(True)


def disable_legacy_validation() -> None:
    """New metric and label names may be any UTF-8 text without control characters (the default)."""
    _core.set_legacy_name_validation(False)


def get_legacy_validation() -> bool:
    """Whether new names must use the legacy character set."""
    return _core.legacy_name_validation()


#: The name escaping schemes an exposition may be asked for (``escaping=`` in Accept).
ESCAPING_SCHEMES: Tuple[str, ...] = ("underscores", "dots", "values", "allow-utf-8")


def disable_created_metrics() -> None:
    """Leaves the ``_created`` samples out of OpenMetrics expositions (as prometheus_client's)."""
    global _created_series
    _created_series = False


def enable_created_metrics() -> None:
    """Puts the ``_created`` samples back (the default)."""
    global _created_series
    _created_series = True


#: Content-Type of text format 0.0.4, what :func:`generate_prometheus` renders.
CONTENT_TYPE_PLAIN_0_0_4: str = _core.PROMETHEUS_CONTENT_TYPE
#: Content-Type of text format 1.0.0 (0.0.4 plus UTF-8 names; the same text for legacy names).
CONTENT_TYPE_PLAIN_1_0_0: str = "text/plain; version=1.0.0; charset=utf-8"
#: prometheus_client 0.26's value: text format 1.0.0. Servers answer an
#: Accept without a version with :data:`CONTENT_TYPE_PLAIN_0_0_4`, as it does.
CONTENT_TYPE_LATEST: str = CONTENT_TYPE_PLAIN_1_0_0
#: Content-Type of the protobuf exposition (:func:`generate_protobuf`), which
#: Prometheus asks for when its native histograms are enabled.
CONTENT_TYPE_PROTOBUF: str = _core.PROTOBUF_CONTENT_TYPE

# Sample-name suffixes a collector's family of each type exposes, for clash checks at register().
_SUFFIXES: Dict[str, Tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "info": ("_info",),
}


_NATIVE_FAMILIES = (_core.CounterFamily, _core.GaugeFamily, _core.HistogramFamily)


def _sample_names(metric: Any) -> List[str]:
    return [metric.name + suffix for suffix in _SUFFIXES.get(metric.type, ("",))]


class Collector(abc.ABC):
    """What :meth:`CollectorRegistry.register` takes: an object whose
    ``collect()`` returns (or yields) metric families (see
    :mod:`pyveda.telemetry.metrics_core`). An optional ``describe()`` returns
    the families without values, to check names at registration without
    collecting. Subclassing is optional: any object with ``collect`` will do;
    a subclass must define ``collect()`` (an abstract method, as in
    prometheus_client).
    """

    @abc.abstractmethod
    def collect(self) -> Iterable[Any]:
        """The metric families now."""

    def describe(self) -> Iterable[Any]:
        return ()


class CollectorRegistry:
    """A set of metrics and collectors exposed together. :data:`REGISTRY` is the default one.

    Metrics (Counter, Gauge, Histogram, Summary) join their registry when
    created; collectors join with :meth:`register`. Every exposition is
    rendered by the C++ core: the metrics' families first, in registration
    order, then each collector's, collected at that moment.

    ``auto_describe=True`` checks a collector without ``describe()`` by
    calling its ``collect()`` once at registration. ``target_info`` (a dict
    of labels) adds a ``target_info`` info family to every exposition.
    """

    def __init__(self, auto_describe: bool = False, target_info: Optional[Dict[str, str]] = None) -> None:
        self._init(_core.Registry(), auto_describe)
        self.set_target_info(target_info)

    def _init(self, core_registry: _core.Registry, auto_describe: bool) -> None:
        self._core = core_registry
        self._auto_describe = auto_describe
        self._lock = threading.Lock()
        self._collectors: Dict[Any, List[str]] = {}  # collector -> the sample names it registered
        self._target_info: Optional[Dict[str, str]] = None
        self._families: Tuple[Any, ...] = ()  # collectors' calls at each render (a snapshot of _collectors)

    @classmethod
    def _wrap(cls, core_registry: _core.Registry) -> "CollectorRegistry":
        registry = cls.__new__(cls)
        registry._init(core_registry, False)
        return registry

    # -- collectors ---------------------------------------------------------

    def register(self, collector: Any) -> None:
        """Adds a collector (or a metric made with ``registry=None``) to this registry.

        A metric (Counter, Gauge, Histogram, Summary) is exposed here too; a
        collector's ``collect()`` is called at each scrape. ValueError when
        the collector's sample names (from ``describe()``, or ``collect()``
        with ``auto_describe``) clash with ones already registered, naming
        them; TypeError for an object without ``collect()``.
        """
        family = getattr(collector, "_family", None)
        if isinstance(family, _NATIVE_FAMILIES):
            try:
                self._core.add(family)
            except ValueError as error:
                raise ValueError(f"Duplicated timeseries in CollectorRegistry: {error}") from None
            return
        if not callable(getattr(collector, "collect", None)):
            raise TypeError(
                f"register() takes a collector (an object with a collect() method returning metric families) "
                f"or a metric, got {type(collector).__name__}"
            )
        names = self._names_of(collector)
        with self._lock:
            if collector in self._collectors:
                raise ValueError(f"collector {collector!r} is already registered in this registry")
            taken = set(names) & (self._taken_names() if names else set())
            if taken:
                raise ValueError(f"Duplicated timeseries in CollectorRegistry: {sorted(taken)}")
            self._collectors[collector] = names
            self._families = tuple(self._collectors)

    def unregister(self, collector: Any) -> None:
        """Stops exposing a metric (its handles keep working) or a collector. ValueError if not registered here."""
        with self._lock:
            if collector in self._collectors:
                del self._collectors[collector]
                self._families = tuple(self._collectors)
                return
        family = getattr(collector, "_family", None)
        if not isinstance(family, _NATIVE_FAMILIES):
            if callable(getattr(collector, "collect", None)):
                raise ValueError(f"collector {collector!r} is not registered in this registry")
            raise TypeError(f"unregister() takes a metric or a collector, got {type(collector).__name__}")
        if not self._core.unregister(family.name):
            raise ValueError(f"metric {family.name!r} is not registered in this registry")

    def _names_of(self, collector: Any) -> List[str]:
        describe = getattr(collector, "describe", None)
        if callable(describe):
            metrics = describe()
        elif self._auto_describe:
            metrics = collector.collect()
        else:
            return []
        return [name for metric in metrics for name in _sample_names(metric)]

    def _taken_names(self) -> set:
        taken = {name for names in self._collectors.values() for name in names}
        taken.update(self._core.exposed_names())  # the core's own clash-check names
        return taken

    def set_target_info(self, labels: Optional[Dict[str, str]]) -> None:
        """Sets (or with None removes) the ``target_info`` family's labels."""
        if labels is not None:
            if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in labels.items()):
                raise TypeError(f"target_info must be a dict of str to str, got {labels!r}")
            labels = dict(labels)
        with self._lock:
            if labels and "target_info" in self._taken_names():
                raise ValueError("CollectorRegistry already has a target_info metric")
            self._target_info = labels or None

    def get_target_info(self) -> Optional[Dict[str, str]]:
        """The ``target_info`` labels, or None."""
        return None if self._target_info is None else dict(self._target_info)

    def _collected(self, names: Optional[frozenset] = None, skip: Tuple[type, ...] = ()) -> List[Any]:
        """The families the collectors (but those of the types in ``skip``) yield now, after the set_function gauges are refreshed."""
        _metrics_hooks.before_collect(self)
        families: List[Any] = []
        if self._target_info is not None:
            families.append(_target_info_family(self._target_info))
        for collector in self._families:
            if not isinstance(collector, skip):
                families.extend(collector.collect())
        if names is not None:
            families = [m for m in map(lambda f: _restrict(f, names), families) if m is not None]
        return families

    # -- reading ------------------------------------------------------------

    def collect(self) -> Iterator[Any]:
        """Every family, as :class:`~pyveda.telemetry.metrics_core.Metric` objects (prometheus_client's API).

        The metrics' families first (their samples as the 0.0.4 text has
        them), then the collectors'.
        """
        from pyveda.telemetry.metrics_core import Metric, _sample

        collected = self._collected()
        for name, help_text, typ, samples in self._core.collect_samples():
            metric = Metric(name, help_text, typ)
            metric.samples = [_sample(n, labels, value) for n, labels, value in samples]
            yield metric
        yield from collected

    def get_sample_value(self, name: str, labels: Optional[Dict[str, str]] = None) -> Optional[float]:
        """The value of the sample ``name`` with exactly ``labels`` (default none), or None. For tests."""
        if labels is None:
            labels = {}
        for metric in self.collect():
            for sample in metric.samples:
                if sample[0] == name and sample[1] == labels:
                    return sample[2]
        return None

    def restricted_registry(self, names: Iterable[str]) -> "RestrictedRegistry":
        """A view exposing only the families with one of these sample names (``name[]`` in a scrape URL)."""
        return RestrictedRegistry(names, self)

    # -- rendering ----------------------------------------------------------

    def generate_prometheus(self, escaping: str = "underscores") -> str:
        """Every metric and collector of this registry in Prometheus text format 0.0.4.

        Names outside the legacy character set are written as ``escaping``
        says: ``underscores`` (the default: each other character becomes
        ``_``), ``dots`` (``.`` as ``_dot_``, ``_`` as ``__``), ``values``
        (``U__`` and code points) or ``allow-utf-8`` (quoted, text format
        1.0.0).
        """
        return self._core.render_prometheus(self._collected(), None, escaping)

    def generate_openmetrics(self, escaping: str = "underscores") -> str:
        """Every metric and collector of this registry as OpenMetrics 1.0 text, ending in ``# EOF``.

        Rendered by the core from the same collection as the 0.0.4 text: TYPE
        before HELP, counters named without ``_total`` in their metadata,
        canonical quantile labels, NaN quantiles for a series with no
        observations, and a ``_created`` sample (the series' creation or
        last reset, in seconds) after each counter, histogram and summary
        series unless :func:`disable_created_metrics` was called or
        ``PROMETHEUS_DISABLE_CREATED_SERIES=true`` was set. Collectors'
        families follow with their samples as given (timestamps, exemplars).
        Names are escaped as in :meth:`generate_prometheus`.
        """
        return self._core.render_openmetrics(_created_series, self._collected(), None, escaping)

    def generate_protobuf(self, escaping: str = "underscores") -> bytes:
        """Every metric and collector of this registry in Prometheus' protobuf exposition.

        Length-delimited ``io.prometheus.client.MetricFamily`` messages, the
        format Prometheus scrapes with ``--enable-feature=native-histograms``.
        Each Histogram goes out as a native histogram (its exponential
        buckets as they are: schema = scale, zero bucket, spans and deltas),
        so ``histogram_quantile()`` and ``histogram_count()`` work on it and
        replicas sum exactly; the text formats show the same histogram as a
        summary. Counters carry their created timestamp. A Summary goes out
        as a summary; collectors' families as their types map (an info as a
        gauge ``<name>_info``, a state set as gauges, unknown as untyped).
        Names are escaped as in :meth:`generate_prometheus`, except that
        ``allow-utf-8`` keeps them as they are (protobuf needs no quotes).
        """
        return self._core.encode_protobuf(self._collected(), None, escaping)

    def clear(self) -> None:
        """Removes every metric and collector."""
        self._core.clear()
        with self._lock:
            self._collectors.clear()
            self._families = ()

    def names(self) -> list:
        """Registered metric names, in registration order (counters without ``_total``); collectors not included."""
        return self._core.names()

    def __len__(self) -> int:
        return len(self._core)


class RestrictedRegistry:
    """A view of a registry limited to families with some sample names (from :meth:`CollectorRegistry.restricted_registry`).

    A metric family is included whole when any of its sample names is
    asked for (``x``, ``x_total``, ``x_count`` ... all name a histogram or
    counter ``x``); a collector's family keeps only the samples asked for,
    as prometheus_client does.
    """

    def __init__(self, names: Iterable[str], registry: CollectorRegistry) -> None:
        if isinstance(names, str):
            raise TypeError(f"restricted_registry() takes a collection of metric names, not one str ({names!r})")
        self._names = frozenset(names)
        for name in self._names:
            if not isinstance(name, str):
                raise TypeError(f"restricted_registry(): each name must be a str, got {type(name).__name__} ({name!r})")
        self._registry = registry

    def collect(self) -> Iterator[Any]:
        for metric in self._registry.collect():
            restricted = _restrict(metric, self._names)
            if restricted is not None:
                yield restricted

    def generate_prometheus(self, escaping: str = "underscores") -> str:
        r = self._registry
        return r._core.render_prometheus(r._collected(self._names), self._names, escaping)

    def generate_openmetrics(self, escaping: str = "underscores") -> str:
        r = self._registry
        return r._core.render_openmetrics(_created_series, r._collected(self._names), self._names, escaping)

    def generate_protobuf(self, escaping: str = "underscores") -> bytes:
        r = self._registry
        return r._core.encode_protobuf(r._collected(self._names), self._names, escaping)


def _restrict(metric: Any, names: frozenset) -> Any:
    """The family with only the samples named in ``names`` (None when none is), as prometheus_client restricts."""
    restricted = getattr(metric, "_restricted_metric", None)
    if restricted is not None:
        return restricted(names)
    return metric if any(s[0] in names for s in metric.samples) else None


def _target_info_family(labels: Dict[str, str]) -> Any:
    from pyveda.telemetry.metrics_core import InfoMetricFamily

    return InfoMetricFamily("target", "Target metadata", labels)


class _Hooks:
    """Calls made before each collection (the set_function gauges refresh their values here)."""

    __slots__ = ("hooks",)

    def __init__(self) -> None:
        self.hooks: List[Callable[[CollectorRegistry], None]] = []

    def before_collect(self, registry: CollectorRegistry) -> None:
        for hook in self.hooks:
            hook(registry)


_metrics_hooks = _Hooks()


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


def _registry_arg(registry: Any, owner: str) -> Any:
    if registry is None:
        return REGISTRY
    if not isinstance(registry, (CollectorRegistry, RestrictedRegistry)):
        raise TypeError(f"{owner}: registry must be a pyveda.telemetry.CollectorRegistry, got {type(registry).__name__}")
    return registry


def generate_latest(registry: Any = None, escaping: str = "underscores") -> bytes:
    """The registry (default :data:`REGISTRY`) in text format 0.0.4, as UTF-8 bytes (prometheus_client's function).

    ``escaping`` as in :meth:`CollectorRegistry.generate_prometheus`.
    """
    return _registry_arg(registry, "generate_latest").generate_prometheus(escaping).encode("utf-8")


def write_to_textfile(path: str, registry: Any = None, escaping: str = "allow-utf-8") -> None:
    """Writes the registry in text format 0.0.4 to ``path`` atomically, for node_exporter's textfile collector.

    The text goes to a temporary file in the same directory, which then
    replaces ``path`` (os.replace), so a reader never sees half a file. The
    temporary file is removed when anything fails.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"write_to_textfile: path must be a str or os.PathLike, got {type(path).__name__}")
    body = generate_latest(registry, escaping)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "wb") as f:
            f.write(body)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise


# The process, platform and GC collectors join REGISTRY, as in prometheus_client.
from pyveda.telemetry import collectors as _collectors  # noqa: E402,F401 - registers them
