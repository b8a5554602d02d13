"""Metric families for custom collectors, as prometheus_client's ``metrics_core``.

A collector is any object with a ``collect()`` method that returns (or
yields) metric families; registered in a :class:`~pyveda.telemetry.CollectorRegistry`
it is called at each scrape, and the C++ core renders its families in the
same exposition as the registry's own metrics (text 0.0.4, OpenMetrics,
protobuf)::

    class QueueCollector:
        def collect(self):
            depth = GaugeMetricFamily("queue_depth", "Jobs waiting.", labels=["queue"])
            for name, queue in queues.items():
                depth.add_metric([name], len(queue))
            yield depth

    REGISTRY.register(QueueCollector())

The classes, their constructors and ``add_metric`` signatures are
prometheus_client's, so a collector written for it runs unchanged; the core
also accepts prometheus_client's own family objects.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from pyveda import _core

__all__ = [
    "METRIC_TYPES",
    "CounterMetricFamily",
    "Exemplar",
    "GaugeHistogramMetricFamily",
    "GaugeMetricFamily",
    "HistogramMetricFamily",
    "InfoMetricFamily",
    "Metric",
    "Sample",
    "StateSetMetricFamily",
    "SummaryMetricFamily",
    "Timestamp",
    "UnknownMetricFamily",
    "UntypedMetricFamily",
]

#: The family types OpenMetrics defines ("untyped" is accepted as "unknown").
METRIC_TYPES: Tuple[str, ...] = (
    "counter", "gauge", "summary", "histogram", "gaugehistogram", "unknown", "info", "stateset",
)


class Timestamp:
    """A time in whole seconds and nanoseconds since the epoch (exact, unlike a float)."""

    __slots__ = ("sec", "nsec")

    def __init__(self, sec: float, nsec: float) -> None:
        if not 0 <= nsec < 1e9:
            raise ValueError(f"Timestamp: nsec must be in [0, 1e9), got {nsec!r}")
        self.sec = int(sec)
        self.nsec = int(-nsec if sec < 0 else nsec)

    def __float__(self) -> float:
        return self.sec + self.nsec / 1e9

    def __str__(self) -> str:
        return f"{self.sec}.{self.nsec:09d}"

    def __repr__(self) -> str:
        return f"Timestamp({self.sec}, {self.nsec})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timestamp) and (self.sec, self.nsec) == (other.sec, other.nsec)

    def __hash__(self) -> int:
        return hash((self.sec, self.nsec))

    def __lt__(self, other: "Timestamp") -> bool:
        return (self.sec, self.nsec) < (other.sec, other.nsec)

    def __gt__(self, other: "Timestamp") -> bool:
        return (self.sec, self.nsec) > (other.sec, other.nsec)


class Exemplar(NamedTuple):
    """An exemplar of a counter's ``_total`` or a histogram bucket's sample."""

    labels: Dict[str, str]
    value: float
    timestamp: Optional[Union[float, Timestamp]] = None


class Sample(NamedTuple):
    """One sample line: full name, labels, value, optional timestamp and exemplar."""

    name: str
    labels: Dict[str, str]
    value: float
    timestamp: Optional[Union[float, Timestamp]] = None
    exemplar: Optional[Exemplar] = None
    native_histogram: Any = None


_new_sample = tuple.__new__  # Sample without the NamedTuple's Python-level __new__


def _sample(name: str, labels: Dict[str, str], value: float, timestamp: Any = None, exemplar: Any = None) -> Sample:
    return _new_sample(Sample, (name, labels, value, timestamp, exemplar, None))


class Metric:
    """One metric family and its samples (``name``, ``documentation``, ``type``, ``unit``, ``samples``).

    A ``unit`` is appended to the name as ``_<unit>`` unless the name already
    ends so. The name must be a valid Prometheus metric name and the type one
    of :data:`METRIC_TYPES`; ValueError otherwise.
    """

    def __init__(self, name: str, documentation: str, typ: str, unit: str = "") -> None:
        for what, value in (("name", name), ("documentation", documentation), ("unit", unit), ("type", typ)):
            if not isinstance(value, str):
                raise TypeError(f"{type(self).__name__}: {what} must be a str, got {type(value).__name__} ({value!r})")
        if unit and not name.endswith("_" + unit):
            name = f"{name}_{unit}"
        try:
            _core.check_metric_name(name)
        except ValueError as error:
            raise ValueError(f"{type(self).__name__}: {error}") from None
        if typ == "untyped":
            typ = "unknown"
        if typ not in METRIC_TYPES:
            raise ValueError(f"invalid metric type {typ!r} for {name!r}; allowed: {', '.join(METRIC_TYPES)}")
        self.name = name
        self.documentation = documentation
        self.unit = unit
        self.type = typ
        self.samples: List[Sample] = []

    def add_sample(self, name: str, labels: Dict[str, str], value: float, timestamp: Any = None,
                   exemplar: Optional[Exemplar] = None, native_histogram: Any = None) -> None:
        """Appends one sample as given (the family classes' ``add_metric`` is the usual way)."""
        self.samples.append(Sample(name, labels, value, timestamp, exemplar, native_histogram))

    def _restricted_metric(self, names: Any) -> Optional["Metric"]:
        """A copy with only the samples named in ``names``, or None when none is."""
        samples = [s for s in self.samples if s[0] in names]
        if not samples:
            return None
        metric = Metric(self.name, self.documentation, self.type)
        metric.unit = self.unit
        metric.samples = samples
        return metric

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Metric) and (
            self.name, self.documentation, self.type, self.unit, self.samples
        ) == (other.name, other.documentation, other.type, other.unit, other.samples)

    def __repr__(self) -> str:
        return f"Metric({self.name}, {self.documentation}, {self.type}, {self.unit}, {self.samples})"


class _Family(Metric):
    """A family whose samples come from ``add_metric(label_values, ...)``."""

    def __init__(self, name: str, documentation: str, typ: str, unit: str,
                 labels: Optional[Sequence[str]], given: bool, what: str = "value") -> None:
        super().__init__(name, documentation, typ, unit)
        if labels is not None and given:
            raise ValueError(
                f"{type(self).__name__} {self.name!r}: give either {what} (one unlabelled sample) or labels "
                "(then add_metric() per label set), not both"
            )
        if isinstance(labels, str):
            raise TypeError(f"{type(self).__name__} {self.name!r}: labels must be a sequence of label names, not a str")
        self._labelnames: Tuple[str, ...] = tuple(labels or ())

    def _labels(self, values: Sequence[str]) -> Dict[str, str]:
        names = self._labelnames
        if len(values) != len(names):
            raise self._count_error(values)
        return dict(zip(names, values))

    def _count_error(self, values: Sequence[str]) -> ValueError:
        return ValueError(
            f"{type(self).__name__} {self.name!r}: add_metric() got {len(values)} label value(s) "
            f"for the label names {self._labelnames!r}"
        )


class UnknownMetricFamily(_Family):
    """A family of unknown type (``untyped`` in text format 0.0.4)."""

    def __init__(self, name: str, documentation: str, value: Optional[float] = None,
                 labels: Optional[Sequence[str]] = None, unit: str = "") -> None:
        super().__init__(name, documentation, "unknown", unit, labels, value is not None)
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float, timestamp: Any = None) -> None:
        self.samples.append(_sample(self.name, self._labels(labels), value, timestamp))


UntypedMetricFamily = UnknownMetricFamily


class CounterMetricFamily(_Family):
    """A counter family: ``<name>_total`` samples (a trailing ``_total`` in ``name`` is dropped), optional ``_created``."""

    def __init__(self, name: str, documentation: str, value: Optional[float] = None,
                 labels: Optional[Sequence[str]] = None, created: Optional[float] = None, unit: str = "",
                 exemplar: Optional[Exemplar] = None) -> None:
        if isinstance(name, str) and name.endswith("_total"):
            name = name[: -len("_total")]
        super().__init__(name, documentation, "counter", unit, labels, value is not None)
        self._total = self.name + "_total"
        if value is not None:
            self.add_metric([], value, created, exemplar=exemplar)

    def add_metric(self, labels: Sequence[str], value: float, created: Optional[float] = None,
                   timestamp: Any = None, exemplar: Optional[Exemplar] = None) -> None:
        names = self._labelnames
        if len(labels) != len(names):
            raise self._count_error(labels)
        pairs = dict(zip(names, labels))
        self.samples.append(_new_sample(Sample, (self._total, pairs, value, timestamp, exemplar, None)))
        if created is not None:
            self.samples.append(_sample(self.name + "_created", pairs, created, timestamp))


class GaugeMetricFamily(_Family):
    """A gauge family."""

    def __init__(self, name: str, documentation: str, value: Optional[float] = None,
                 labels: Optional[Sequence[str]] = None, unit: str = "") -> None:
        super().__init__(name, documentation, "gauge", unit, labels, value is not None)
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float, timestamp: Any = None) -> None:
        names = self._labelnames  # inlined: collectors call this once per series per scrape
        if len(labels) != len(names):
            raise self._count_error(labels)
        self.samples.append(_new_sample(Sample, (self.name, dict(zip(names, labels)), value, timestamp, None, None)))


class SummaryMetricFamily(_Family):
    """A summary family: ``_count`` and ``_sum`` per label set."""

    def __init__(self, name: str, documentation: str, count_value: Optional[int] = None,
                 sum_value: Optional[float] = None, labels: Optional[Sequence[str]] = None, unit: str = "") -> None:
        if (count_value is None) != (sum_value is None):
            raise ValueError(f"SummaryMetricFamily {name!r}: give count_value and sum_value together, or neither")
        super().__init__(name, documentation, "summary", unit, labels, count_value is not None,
                         "count_value and sum_value")
        if count_value is not None:
            self.add_metric([], count_value, sum_value)

    def add_metric(self, labels: Sequence[str], count_value: int, sum_value: float, timestamp: Any = None) -> None:
        pairs = self._labels(labels)
        self.samples.append(_sample(self.name + "_count", pairs, count_value, timestamp))
        self.samples.append(_sample(self.name + "_sum", pairs, sum_value, timestamp))


class HistogramMetricFamily(_Family):
    """A classic histogram family: ``buckets`` are (le, cumulative count[, exemplar]), sorted, ending in ``+Inf``."""

    def __init__(self, name: str, documentation: str, buckets: Optional[Sequence[Sequence[Any]]] = None,
                 sum_value: Optional[float] = None, labels: Optional[Sequence[str]] = None, unit: str = "") -> None:
        if sum_value is not None and buckets is None:
            raise ValueError(f"HistogramMetricFamily {name!r}: sum_value needs buckets")
        super().__init__(name, documentation, "histogram", unit, labels, buckets is not None, "buckets")
        if buckets is not None:
            self.add_metric([], buckets, sum_value)

    def add_metric(self, labels: Sequence[str], buckets: Sequence[Sequence[Any]], sum_value: Optional[float],
                   timestamp: Any = None) -> None:
        pairs = self._labels(labels)
        _check_buckets(self.name, buckets)
        bucket_name = self.name + "_bucket"
        for bucket in buckets:
            exemplar = bucket[2] if len(bucket) > 2 else None
            self.samples.append(_sample(bucket_name, {**pairs, "le": bucket[0]}, bucket[1], timestamp, exemplar))
        # _count and _sum only when no bucket is negative (then the sum means nothing), as prometheus_client.
        if sum_value is not None and float(buckets[0][0]) >= 0:
            self.samples.append(_sample(self.name + "_count", pairs, buckets[-1][1], timestamp))
            self.samples.append(_sample(self.name + "_sum", pairs, sum_value, timestamp))


class GaugeHistogramMetricFamily(_Family):
    """A gauge histogram: buckets as for :class:`HistogramMetricFamily`, ``_gcount`` and ``_gsum``."""

    def __init__(self, name: str, documentation: str, buckets: Optional[Sequence[Sequence[Any]]] = None,
                 gsum_value: Optional[float] = None, labels: Optional[Sequence[str]] = None, unit: str = "") -> None:
        super().__init__(name, documentation, "gaugehistogram", unit, labels, buckets is not None, "buckets")
        if buckets is not None:
            self.add_metric([], buckets, gsum_value)

    def add_metric(self, labels: Sequence[str], buckets: Sequence[Sequence[Any]], gsum_value: Optional[float],
                   timestamp: Any = None) -> None:
        pairs = self._labels(labels)
        _check_buckets(self.name, buckets)
        for bucket in buckets:
            self.samples.append(_sample(self.name + "_bucket", {**pairs, "le": bucket[0]}, bucket[1], timestamp))
        self.samples.append(_sample(self.name + "_gcount", pairs, buckets[-1][1], timestamp))
        if gsum_value is not None:
            self.samples.append(_sample(self.name + "_gsum", pairs, gsum_value, timestamp))


class InfoMetricFamily(_Family):
    """An info family: one ``<name>_info`` sample of value 1 per label set, the info as extra labels."""

    def __init__(self, name: str, documentation: str, value: Optional[Dict[str, str]] = None,
                 labels: Optional[Sequence[str]] = None) -> None:
        super().__init__(name, documentation, "info", "", labels, value is not None)
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: Dict[str, str], timestamp: Any = None) -> None:
        self.samples.append(_sample(self.name + "_info", {**self._labels(labels), **value}, 1, timestamp))


class StateSetMetricFamily(_Family):
    """A state set: per label set one sample per state (label ``<name>="<state>"``), 1 if it holds, else 0."""

    def __init__(self, name: str, documentation: str, value: Optional[Dict[str, bool]] = None,
                 labels: Optional[Sequence[str]] = None) -> None:
        super().__init__(name, documentation, "stateset", "", labels, value is not None)
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: Dict[str, bool], timestamp: Any = None) -> None:
        pairs = self._labels(labels)
        for state, holds in sorted(value.items()):
            self.samples.append(_sample(self.name, {**pairs, self.name: state}, 1 if holds else 0, timestamp))


def _check_buckets(name: str, buckets: Sequence[Sequence[Any]]) -> None:
    if not buckets:
        raise ValueError(f"histogram family {name!r}: buckets must not be empty; the last one is ('+Inf', count)")
    last = buckets[-1][0]
    if last not in ("+Inf", "Inf", "inf", "+inf"):
        raise ValueError(f"histogram family {name!r}: the last bucket must be '+Inf' (the count), got {last!r}")
