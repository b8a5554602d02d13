"""PyVeda behind the OpenTelemetry metrics API: instruments made through
``opentelemetry.metrics`` record into a PyVeda registry.

>>> from opentelemetry import metrics
>>> import pyveda.otel
>>> from pyveda.telemetry import CollectorRegistry
>>> provider = pyveda.otel.MeterProvider(registry=CollectorRegistry())
>>> metrics.set_meter_provider(provider)                        # doctest: +SKIP
>>> requests = provider.get_meter("shop").create_counter("shop.requests", description="Requests served")
>>> requests.add(1, {"route": "/cart"})
>>> print(provider.registry.generate_prometheus())              # doctest: +NORMALIZE_WHITESPACE
# HELP shop_requests_total Requests served
# TYPE shop_requests_total counter
shop_requests_total{route="/cart"} 1
<BLANKLINE>

Each instrument is one family of ``provider.registry`` (default
:data:`~pyveda.telemetry.REGISTRY`), named as the instrument is (lower-cased,
as the SDK does; the Prometheus text formats escape ``.`` to ``_`` and add a
counter's ``_total``; OTLP keeps the name), so it shows up in every export:
Prometheus text and protobuf, OpenMetrics, OTLP (``OTLPExporter``), and the
multi-process aggregate. Attributes are its labels:

- the label names are the attribute keys of the instrument's first
  measurement (sorted); a later measurement that leaves a key out records
  ``""`` for it (an absent label, in Prometheus' data model), and one with
  keys the family lacks is recorded without them, with a warning (once per
  instrument) naming the keys;
- values that are not str are label text as the SDK's Prometheus exporter
  writes them: ``true``/``false``, ``str(int)``, ``repr(float)``, sequences
  as JSON.

Instruments and what records them:

- ``Counter.add`` into a Counter (amounts >= 0); ``UpDownCounter.add`` into
  a Gauge that OTLP carries as a non-monotonic Sum (a gauge in the
  Prometheus formats); ``Gauge.set`` into a Gauge; ``Histogram.record`` into
  a Histogram: native exponential buckets by default (an OTLP
  ExponentialHistogram, a native histogram in the protobuf exposition),
  classic buckets when ``explicit_bucket_boundaries_advisory`` asks (an OTLP
  explicit-bucket Histogram);
- the observable instruments read their callbacks before each collection
  (each Observation sets its series): ObservableCounter into a Counter,
  ObservableUpDownCounter as UpDownCounter, ObservableGauge into a Gauge.

Label values are text, so attribute values arrive in OTLP as strings.

As in the SDK, a measurement the API cannot take (a negative amount for a
counter or histogram, a value that is not a finite number) is dropped and
logged, never raised; a callback that raises is logged and the others still
run. A name that breaks the API's rule (a letter, then up to 254 of
``A-Za-z0-9_.-/``) raises ValueError. Asking again for an instrument of the
same name and kind returns the first one (a differing unit or description
is logged); the same name with another kind raises ValueError, as a
registry cannot hold both. The unit is kept on the instrument
(``instrument.unit``), not in the family's name.

Needs ``opentelemetry-api`` (the ``otel`` extra).
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import threading
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from opentelemetry import metrics as api

from pyveda import _core
from pyveda.telemetry import registry as _registry_module
from pyveda.telemetry.metrics import Counter as _Counter
from pyveda.telemetry.metrics import Gauge as _Gauge
from pyveda.telemetry.metrics import Histogram as _Histogram
from pyveda.telemetry.registry import REGISTRY, CollectorRegistry

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "Meter",
    "MeterProvider",
    "ObservableCounter",
    "ObservableGauge",
    "ObservableUpDownCounter",
    "UpDownCounter",
]

_logger = logging.getLogger("pyveda.otel")
_NAME_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_./\-]{0,254}\Z")


def _label_text(value: Any) -> str:
    """A non-str attribute value as label text (the SDK's Prometheus exporter's spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value) if isinstance(value, int) else repr(float(value))
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return json.dumps([v if isinstance(v, (str, bool, int, float)) else str(v) for v in value])
    return str(value)


class _Instrument:
    """What every instrument has: its name, unit, description and family.

    Subclasses say what records them: ``_family_type`` ("counter", "gauge",
    "up_down": a gauge that OTLP carries as a non-monotonic Sum, or
    "histogram"), whether a gauge is moved by an amount (``_adds``) or set,
    and whether a counter takes totals.
    """

    _family_type = "counter"
    _adds = False
    _totals = False

    def __init__(self, meter: "Meter", name: str, unit: str, description: str) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self._meter = meter
        self._metric: Any = None  # the pyveda metric, made at the first measurement
        self._record: Any = None  # its native recorder's record(amount, attributes, context)
        self._lock = threading.Lock()
        self._warned_keys = False

    @property
    def _registry(self) -> CollectorRegistry:
        return self._meter._provider.registry

    def _labels_for(self, attributes: Any) -> List[str]:
        if not attributes:
            return []
        try:
            return sorted(str(key) for key in dict(attributes))
        except (TypeError, ValueError):
            return []

    def _problem(self, kind: str, detail: Any) -> Any:
        """The native recorder's slow path (see ``pyveda._core.AttributeRecorder``)."""
        if kind == "value":
            return _label_text(detail)
        if kind == "amount":
            _logger.warning("pyveda.otel: %s %r dropped a measurement of %r (%s)", type(self).__name__,
                            self.name, detail, self._amount_rule)
        elif kind == "keys" and not self._warned_keys:
            self._warned_keys = True
            extra = sorted(set(map(str, dict(detail))) - set(self._metric.labelnames))
            _logger.warning("pyveda.otel: %s %r records with the label names %s (its first measurement's "
                            "attribute keys); the attributes %s are left out of its measurements",
                            type(self).__name__, self.name, list(self._metric.labelnames), extra)
        elif kind == "attributes":
            _logger.warning("pyveda.otel: %s %r: attributes must be a mapping, got %s; recorded without them",
                            type(self).__name__, self.name, type(detail).__name__)
        return None

    def _recorder_for(self, attributes: Any) -> Any:
        """The native recorder's ``record``; the first call makes the family, with
        the measurement's attribute keys as label names."""
        with self._lock:
            if self._metric is None:
                self._metric = self._new_metric(self._labels_for(attributes))
                self._record = self._recorder(self._metric._family).record
        return self._record

    def _new_metric(self, labels: List[str]) -> Any:
        if self._family_type == "gauge":
            return _Gauge(self.name, self.description, labels, registry=self._registry, multiprocess_mode="mostrecent")
        if self._family_type == "up_down":
            return _UpDownSum(self.name, self.description, labels, self._registry)
        return _Counter(self.name, self.description, labels, registry=self._registry)

    def _recorder(self, family: Any) -> Any:
        """The ``pyveda._core.AttributeRecorder`` that records into the family."""
        if self._family_type in ("gauge", "up_down"):
            return _core.AttributeRecorder(family, self._adds, self._problem)
        if self._totals:
            return _core.AttributeRecorder(family, self._problem, total=True)
        return _core.AttributeRecorder(family, self._problem)


class _UpDownSum(_Gauge):
    """The family of an up-down counter: a PyVeda Gauge (summed across processes)
    that OTLP carries as a cumulative, non-monotonic Sum."""

    __slots__ = ()

    def __init__(self, name: str, documentation: str, labelnames: List[str], registry: CollectorRegistry) -> None:
        self._setup(name, documentation, labelnames, "", "", "", registry, None,
                    {"multiprocess_mode": "sum", "up_down": True})


class _Synchronous(_Instrument):
    """A synchronous instrument: its first measurement makes the family and puts the
    native recorder's ``record`` on the instance as the API method (``add``, ``set``
    or ``record``), so later calls go straight to C++."""

    _method = ""
    _amount_rule = ""

    def _measure(self, amount: Any, attributes: Any, context: Any) -> None:
        record = self._recorder_for(attributes)
        setattr(self, self._method, record)  # later calls: straight to the recorder
        record(amount, attributes, context)


class Counter(_Synchronous, api.Counter):
    """``opentelemetry.metrics.Counter`` on a PyVeda Counter."""

    _method = "add"
    _amount_rule = "a counter takes finite amounts >= 0"

    def add(self, amount: Any, attributes: Any = None, context: Any = None) -> None:
        self._measure(amount, attributes, context)


class UpDownCounter(_Synchronous, api.UpDownCounter):
    """``opentelemetry.metrics.UpDownCounter`` on a PyVeda Gauge (``add`` is ``inc`` by any amount)."""

    _method = "add"
    _amount_rule = "an up-down counter takes finite amounts"
    _family_type, _adds = "up_down", True

    def add(self, amount: Any, attributes: Any = None, context: Any = None) -> None:
        self._measure(amount, attributes, context)


class Gauge(_Synchronous, api._Gauge):
    """``opentelemetry.metrics`` synchronous Gauge on a PyVeda Gauge (``set``)."""

    _method = "set"
    _amount_rule = "a gauge takes finite values"
    _family_type = "gauge"

    def set(self, amount: Any, attributes: Any = None, context: Any = None) -> None:
        self._measure(amount, attributes, context)


class Histogram(_Synchronous, api.Histogram):
    """``opentelemetry.metrics.Histogram`` on a PyVeda Histogram (exponential, or the advisory's bounds)."""

    _method = "record"
    _amount_rule = "a histogram takes finite values >= 0"
    _family_type = "histogram"

    def __init__(self, meter: "Meter", name: str, unit: str, description: str,
                 boundaries: Optional[Sequence[float]] = None) -> None:
        super().__init__(meter, name, unit, description)
        self._boundaries = boundaries

    def _new_metric(self, labels: List[str]) -> Any:
        if self._boundaries is None:
            return _Histogram(self.name, self.description, labels, registry=self._registry)
        return _Histogram(self.name, self.description, labels, registry=self._registry,
                          buckets=tuple(self._boundaries) + (float("inf"),))

    def record(self, amount: Any, attributes: Any = None, context: Any = None) -> None:
        self._measure(amount, attributes, context)


# -- observable instruments ---------------------------------------------------------------------


class _Observable(_Instrument):
    """An asynchronous instrument: its callbacks run before each collection of its registry."""

    _amount_rule = ""

    def __init__(self, meter: "Meter", name: str, callbacks: Optional[Sequence[Any]], unit: str,
                 description: str) -> None:
        super().__init__(meter, name, unit, description)
        self._callbacks: List[Callable[[api.CallbackOptions], Iterable[api.Observation]]] = []
        for callback in callbacks or ():
            if inspect.isgenerator(callback):
                self._callbacks.append(_from_generator(callback))
            elif callable(callback):
                self._callbacks.append(callback)
            else:
                raise TypeError(f"{type(self).__name__} {name!r}: callbacks must be callables or generators, "
                                f"got {type(callback).__name__}")
        _OBSERVABLES.add(self)

    def _observe(self) -> None:
        options = api.CallbackOptions()
        for callback in self._callbacks:
            try:
                observations = list(callback(options) or ())
            except Exception:  # as the SDK: logged, the other callbacks still run
                _logger.exception("pyveda.otel: a callback of %s %r raised", type(self).__name__, self.name)
                continue
            for observation in observations:
                self._take(observation)

    def _take(self, observation: Any) -> None:
        if not isinstance(observation, api.Observation):
            _logger.warning("pyveda.otel: a callback of %s %r returned %s, not an Observation; left out",
                            type(self).__name__, self.name, type(observation).__name__)
            return
        self._recorder_for(observation.attributes)(observation.value, observation.attributes)


class ObservableCounter(_Observable, api.ObservableCounter):
    """``opentelemetry.metrics.ObservableCounter`` on a PyVeda Counter: each observation is the total."""

    _amount_rule = "an observable counter takes finite totals >= 0"
    _totals = True


class ObservableUpDownCounter(_Observable, api.ObservableUpDownCounter):
    """``opentelemetry.metrics.ObservableUpDownCounter`` on a PyVeda Gauge."""

    _amount_rule = "an observable up-down counter takes finite values"
    _family_type = "up_down"


class ObservableGauge(_Observable, api.ObservableGauge):
    """``opentelemetry.metrics.ObservableGauge`` on a PyVeda Gauge."""

    _amount_rule = "an observable gauge takes finite values"
    _family_type = "gauge"


def _from_generator(generator: Any) -> Callable[[api.CallbackOptions], Iterable[api.Observation]]:
    """A generator callback as the API defines one: primed once, then sent the options each time."""
    started = False

    def call(options: api.CallbackOptions) -> Iterable[api.Observation]:
        nonlocal started
        if not started:
            started = True
            return next(generator)
        return generator.send(options)

    return call


# The observable instruments alive now; their callbacks run before each collection of their registry.
_OBSERVABLES: "weakref.WeakSet[_Observable]" = weakref.WeakSet()


def _before_collect(registry: CollectorRegistry) -> None:
    if not _OBSERVABLES:
        return
    core = registry._core
    for instrument in list(_OBSERVABLES):
        if instrument._meter._provider.registry._core is core:
            instrument._observe()


_registry_module._metrics_hooks.hooks.append(_before_collect)


# -- meters and the provider --------------------------------------------------------------------


class Meter(api.Meter):
    """Makes instruments that record into ``provider.registry``; see the module docs."""

    def __init__(self, provider: "MeterProvider", name: str, version: Optional[str] = None,
                 schema_url: Optional[str] = None) -> None:
        super().__init__(name, version=version, schema_url=schema_url)
        self._provider = provider

    def _instrument(self, kind: type, name: Any, unit: Any, description: Any, make: Callable[[str], Any]) -> Any:
        if not isinstance(name, str) or not _NAME_RULE.match(name):
            raise ValueError(f"instrument name {name!r} is invalid: it must be a letter followed by up to 254 "
                             "letters, digits, '_', '.', '-' or '/'")
        if not isinstance(unit, str) or len(unit) > 63 or not unit.isascii():
            raise ValueError(f"instrument {name!r}: unit must be an ASCII str of at most 63 characters, got {unit!r}")
        if not isinstance(description, str):
            raise TypeError(f"instrument {name!r}: description must be a str, got {type(description).__name__}")
        return self._provider._instrument(kind, name.lower(), unit, description, make)

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        return self._instrument(Counter, name, unit, description, lambda n: Counter(self, n, unit, description))

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> UpDownCounter:
        return self._instrument(UpDownCounter, name, unit, description,
                                lambda n: UpDownCounter(self, n, unit, description))

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> Gauge:
        return self._instrument(Gauge, name, unit, description, lambda n: Gauge(self, n, unit, description))

    def create_histogram(self, name: str, unit: str = "", description: str = "", *,
                         explicit_bucket_boundaries_advisory: Optional[Sequence[float]] = None) -> Histogram:
        boundaries = None
        if explicit_bucket_boundaries_advisory is not None:
            boundaries = _boundaries(name, explicit_bucket_boundaries_advisory)
        return self._instrument(Histogram, name, unit, description,
                                lambda n: Histogram(self, n, unit, description, boundaries))

    def create_observable_counter(self, name: str, callbacks: Optional[Sequence[Any]] = None, unit: str = "",
                                  description: str = "") -> ObservableCounter:
        return self._instrument(ObservableCounter, name, unit, description,
                                lambda n: ObservableCounter(self, n, callbacks, unit, description))

    def create_observable_up_down_counter(self, name: str, callbacks: Optional[Sequence[Any]] = None,
                                          unit: str = "", description: str = "") -> ObservableUpDownCounter:
        return self._instrument(ObservableUpDownCounter, name, unit, description,
                                lambda n: ObservableUpDownCounter(self, n, callbacks, unit, description))

    def create_observable_gauge(self, name: str, callbacks: Optional[Sequence[Any]] = None, unit: str = "",
                                description: str = "") -> ObservableGauge:
        return self._instrument(ObservableGauge, name, unit, description,
                                lambda n: ObservableGauge(self, n, callbacks, unit, description))


def _boundaries(name: str, advisory: Any) -> Tuple[float, ...]:
    try:
        bounds = tuple(float(b) for b in advisory)
    except (TypeError, ValueError):
        raise ValueError(f"histogram {name!r}: explicit_bucket_boundaries_advisory must be a sequence of numbers, "
                         f"got {advisory!r}") from None
    if any(b != b or b in (float("inf"), float("-inf")) for b in bounds) or any(
            a >= b for a, b in zip(bounds, bounds[1:])):
        raise ValueError(f"histogram {name!r}: explicit_bucket_boundaries_advisory must be finite and strictly "
                         f"increasing, got {list(advisory)!r}")
    return bounds


class MeterProvider(api.MeterProvider):
    """``opentelemetry.metrics.MeterProvider`` on a PyVeda registry (default
    :data:`~pyveda.telemetry.REGISTRY`). The registry is what exporters read
    (``/metrics``, ``OTLPExporter``), so ``force_flush()`` and ``shutdown()``
    have nothing to send and return at once.
    """

    def __init__(self, registry: Optional[CollectorRegistry] = None) -> None:
        if registry is None:
            registry = REGISTRY
        elif not isinstance(registry, CollectorRegistry):
            raise TypeError(f"registry must be a pyveda.telemetry.CollectorRegistry, got {type(registry).__name__}")
        self.registry = registry
        self._lock = threading.Lock()
        self._meters: Dict[Tuple[str, Optional[str], Optional[str]], Meter] = {}
        self._instruments: Dict[str, Any] = {}

    def get_meter(self, name: str, version: Optional[str] = None, schema_url: Optional[str] = None,
                  attributes: Optional[Any] = None) -> Meter:
        if not isinstance(name, str):
            raise TypeError(f"meter name must be a str, got {type(name).__name__}")
        key = (name, version, schema_url)
        with self._lock:
            meter = self._meters.get(key)
            if meter is None:
                meter = self._meters[key] = Meter(self, name, version, schema_url)
        return meter

    def _instrument(self, kind: type, name: str, unit: str, description: str, make: Callable[[str], Any]) -> Any:
        with self._lock:
            existing = self._instruments.get(name)
            if existing is None:
                instrument = self._instruments[name] = make(name)
                return instrument
        if type(existing) is not kind:
            raise ValueError(f"instrument {name!r} is already a {type(existing).__name__} of this MeterProvider; "
                             f"it cannot also be a {kind.__name__} (one registry family per name)")
        if (existing.unit, existing.description) != (unit, description):
            _logger.warning("pyveda.otel: %s %r asked for again with unit %r and description %r; keeping the "
                            "first (%r, %r)", kind.__name__, name, unit, description, existing.unit,
                            existing.description)
        return existing

    def force_flush(self, timeout_millis: float = 30_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        return None
