"""Exporters: one core snapshot (or a tracing system, or a list of spans) in, a wire format out.

>>> from pyveda.telemetry import create_exporter
>>> exporter = create_exporter('otlp', endpoint='http://localhost:4318')
>>> otlp_data = exporter.export(snapshot)        # doctest: +SKIP  (OTLP/JSON dict)
>>> result = exporter.send(snapshot)             # doctest: +SKIP  (POST protobuf to /v1/metrics)
>>> result = exporter.send(tracing.get_spans())  # doctest: +SKIP  (POST protobuf to /v1/traces)

``create_exporter`` knows ``'otlp'``, ``'prometheus'``, ``'json'`` and
``'jaeger'``. The OTLP exporter is thin: it checks what it is given and picks
the encoder. The pieces it is made of each live in one module:

- :mod:`pyveda.telemetry.otlp_options`: ``OTLPOptions.from_env(signal)``, the
  only reader of ``OTEL_EXPORTER_OTLP_*`` (endpoint, headers, timeout,
  compression, protocol; explicit arguments beat the environment);
- :mod:`pyveda.telemetry.otlp` and :mod:`pyveda.telemetry.tracing`: encoding
  (the OTLP/JSON of natively encoded requests comes from :mod:`pyveda.telemetry.otlp_json`);
- :mod:`pyveda.telemetry.transport`: POST with retries inside one deadline;
- :mod:`pyveda.telemetry.grpc_transport`: the same over OTLP/gRPC
  (``protocol='grpc'``, the ``grpc`` extra);
- :mod:`pyveda.telemetry.pusher`: the background thread behind ``start()``,
  with a bounded queue, a bounded ``shutdown`` and a flush at exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Dict, Mapping, Optional, Union

from pyveda import _core
from pyveda._checks import seconds
from pyveda.telemetry import otlp
from pyveda.telemetry.otlp_options import OTLPOptions
from pyveda.telemetry.pusher import DEFAULT_EXIT_TIMEOUT_S, PeriodicPusher
from pyveda.telemetry.transport import ExportResult, post

__all__ = [
    "EXPORTERS",
    "ExportResult",
    "JaegerExporter",
    "JsonExporter",
    "OTLPExporter",
    "PrometheusExporter",
    "create_exporter",
]


class OTLPExporter:
    """OTLP metrics (and traces) as OTLP/JSON dicts, protobuf bytes, or pushed over OTLP/HTTP or OTLP/gRPC.

    ``export(item)`` encodes; ``send(item)`` posts to ``<endpoint>/v1/metrics``
    (a snapshot) or ``/v1/traces`` (a tracing system, or a list or tuple of
    finished spans), or calls the MetricsService or TraceService ``Export``
    method over gRPC, with retries and returns an :class:`ExportResult` (never
    raises for network or server trouble, never blocks beyond ``timeout``, the
    deadline for the whole send). ``protocol`` (default:
    ``OTEL_EXPORTER_OTLP_{TRACES,METRICS}_PROTOCOL``, then
    ``OTEL_EXPORTER_OTLP_PROTOCOL``, then ``'http/protobuf'``) picks how
    ``send`` sends: protobuf or OTLP/JSON (``'http/json'``) over HTTP, or
    protobuf over gRPC (``'grpc'``, default endpoint ``http://localhost:4317``;
    ImportError here when grpcio is missing: ``pip install pyveda[grpc]``);
    any other value raises ValueError here. ``encoding`` is only what ``export``
    returns by default. The resolved options are ``metrics`` and ``traces``
    (:class:`~pyveda.telemetry.otlp_options.OTLPOptions`). ``resource_attributes``
    are checked as span attributes are (TypeError naming the key for a value
    that is not a str, bool, int, float or a list of one of them).

    ``start(interval, source)`` pushes from a background thread through a
    bounded queue; a TracingSystem source sends each finished span once.
    ``shutdown(timeout)`` flushes and returns within about ``timeout``; a
    started exporter also flushes at interpreter exit, within ``exit_timeout``.

    Thread-safety: ``export`` and ``send`` may be called from any thread.
    """

    def __init__(
        self,
        endpoint: Optional[str] = None,
        *,
        encoding: str = "json",
        headers: Union[None, str, Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        compression: Optional[str] = None,
        resource_attributes: Optional[Mapping[str, Any]] = None,
        max_queue_size: int = 64,
        protocol: Optional[str] = None,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT_S,
    ) -> None:
        if encoding not in ("json", "protobuf"):
            raise ValueError(f"encoding must be 'json' or 'protobuf', got {encoding!r}")
        options = dict(endpoint=endpoint, timeout=timeout, compression=compression, headers=headers, protocol=protocol)
        self.encoding = encoding
        self.metrics = OTLPOptions.from_env("metrics", **options)
        self.traces = OTLPOptions.from_env("traces", **options)
        if "grpc" in (self.metrics.protocol, self.traces.protocol):
            from pyveda.telemetry.grpc_transport import require_grpc

            require_grpc()  # now, not at the first send
        self.resource = otlp.resource_attributes(_core.check_attributes(resource_attributes))
        self._pusher = PeriodicPusher(
            self.send,
            name="pyveda-otlp-exporter",
            max_queue_size=max_queue_size,
            exit_timeout=exit_timeout,
            failure=lambda message: ExportResult(False, error=message),
        )

    # -- encoding --

    def export(self, item: Any, encoding: Optional[str] = None) -> Any:
        """The OTLP request for ``item``: a dict (``encoding='json'``) or bytes (``'protobuf'``).

        A metrics snapshot gives an ExportMetricsServiceRequest, and so does a
        :class:`~pyveda.telemetry.CollectorRegistry` (every family in it, the
        runtime's included when it is ``REGISTRY``; see
        :func:`pyveda.telemetry.otlp.registry_request_bytes`); a tracing
        system (anything with ``export_otlp``) gives its ExportTraceServiceRequest,
        and so does a list or tuple of finished spans (with this exporter's
        ``resource``; ``tracing.encode_spans`` raises TypeError for an item that is
        not a Span and ValueError for a span that has not ended). Anything else is
        a TypeError.
        """
        encoding = encoding or self.encoding
        if encoding not in ("json", "protobuf"):
            raise ValueError(f"encoding must be 'json' or 'protobuf', got {encoding!r}")
        if _is_tracing(item):
            return item.export_otlp(encoding=encoding)
        if _is_span_list(item):
            from pyveda.telemetry.tracing import encode_spans

            return encode_spans(item, self.resource, encoding)
        if _is_registry(item):
            if encoding == "protobuf":
                return otlp.registry_request_bytes(item, self.resource)
            return otlp.registry_request_dict(item, self.resource)
        if not _is_snapshot(item):
            raise TypeError(
                "export() takes a MetricsSnapshot, a CollectorRegistry, a TracingSystem or a list of Spans, "
                f"got {type(item).__name__}"
            )
        if encoding == "protobuf":
            return otlp.metrics_request_bytes(item, self.resource)
        return otlp.metrics_request_dict(item, self.resource)

    # -- transport --

    def send(self, item: Any, *, timeout: Optional[float] = None) -> ExportResult:
        """Sends ``item`` (POST, or a gRPC call for ``'grpc'``); retries within the timeout.

        ``timeout``: seconds for this send, retries included, when it is shorter
        than the signal's own timeout (``OTEL_EXPORTER_OTLP_*TIMEOUT``); None
        keeps that one. A :class:`~pyveda.telemetry.BatchSpanProcessor` passes
        what is left of its export timeout here.

        OTLP/HTTP retries 429/502/503/504 and connection errors; OTLP/gRPC the
        codes the OTLP specification calls retryable (see
        :mod:`pyveda.telemetry.grpc_transport`).

        ``item``: a MetricsSnapshot or a CollectorRegistry (to ``/v1/metrics``), a TracingSystem or a
        list or tuple of finished Spans (to ``/v1/traces``). The body is
        protobuf, or OTLP/JSON (``Content-Type: application/json``) when the
        signal's protocol is ``'http/json'``; over gRPC it is protobuf. A tracing system without spans or
        an empty list sends nothing and returns ``ExportResult(True)``.

        Network and server trouble is returned, never raised. Bad input is a
        programming error and raises, before anything is sent: TypeError for an
        item of another type, and for a list, the ``encode_spans`` error naming
        the index (TypeError for an item that is not a Span, ValueError for a
        span that has not ended).
        """
        spans = None
        if _is_tracing(item):
            options = self.traces
            if hasattr(item, "__len__") and len(item) == 0:
                return ExportResult(True)  # no empty envelopes
        elif _is_span_list(item):
            options, spans = self.traces, list(item)
            if not spans:
                return ExportResult(True)  # no empty envelopes
        elif _is_registry(item):
            options = self.metrics
            if len(item._core) == 0:
                return ExportResult(True)  # no empty envelopes
        elif _is_snapshot(item):
            options = self.metrics
        else:
            raise TypeError(
                "send() takes a MetricsSnapshot, a CollectorRegistry, a TracingSystem or a list of Spans, "
                f"got {type(item).__name__}"
            )
        if timeout is not None:
            timeout = seconds(timeout, "timeout")
            if options.timeout is None or timeout < options.timeout:
                options = options._replace(timeout=timeout)
        kind = options.signal
        try:
            data = self.export(spans if spans is not None else item, encoding=options.encoding)
        except (TypeError, ValueError) as e:
            if spans is not None:
                raise  # encode_spans: an item that is not a Span, or a live span (the message names the index)
            return ExportResult(False, error=f"could not encode {kind}: {e}")
        except Exception as e:  # encoding trouble is reported, not raised
            return ExportResult(False, error=f"could not encode {kind}: {e}")
        try:
            if options.encoding == "json":
                if _no_data(data):
                    return ExportResult(True)  # nothing to send: no empty envelopes
                import json

                body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode("utf-8")
            else:
                body = bytes(data)
        except Exception as e:  # encoding trouble is reported, not raised
            return ExportResult(False, error=f"could not encode {kind}: {e}")
        if not body:
            return ExportResult(True)  # nothing to send: no empty envelopes
        if options.protocol == "grpc":
            from pyveda.telemetry.grpc_transport import send_grpc

            return send_grpc(options, body, self._pusher.cancelled)
        return post(options, body, self._pusher.cancelled)

    # -- background pushing (pyveda.telemetry.pusher) --

    @property
    def running(self) -> bool:
        """Whether ``start()`` has a background thread pushing now."""
        return self._pusher.running

    @property
    def dropped(self) -> int:
        """Items the background queue dropped because it was full."""
        return self._pusher.dropped

    @property
    def last_result(self) -> Optional[ExportResult]:
        """The result of the latest background send (None before the first)."""
        return self._pusher.last_result

    @property
    def max_queue_size(self) -> int:
        return self._pusher.max_queue_size

    def submit(self, item: Any) -> bool:
        """Queues ``item`` for the background thread.

        When the queue is full the oldest item is dropped and counted in
        ``dropped``; returns False then.
        """
        return self._pusher.submit(item)

    def start(self, interval: float = 10.0, source: Any = None) -> None:
        """Exports every ``interval`` seconds on a daemon thread.

        ``source`` is a TelemetrySystem (a snapshot is taken each interval), a
        TracingSystem (the spans finished since the last push are sent, so each
        goes out once; ``get_spans()`` still returns them all), a
        CollectorRegistry (all its families each interval), or a callable
        returning any of these; items passed to :meth:`submit` are sent too. Results of
        background sends are kept in ``last_result``.
        """
        self._pusher.start(interval, _as_source(source))

    def force_flush(self, timeout: Optional[float] = None) -> bool:
        """Sends what is queued now; True if done within ``timeout`` seconds (None: waits)."""
        return self._pusher.force_flush(timeout)

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Stops the background thread after a last collection and sends what is queued.

        Returns within about ``timeout`` seconds (None: waits for the sends);
        True if everything was sent in that time. Otherwise the send under way
        is cut off, what is still queued is dropped (counted in ``dropped``),
        and later sends through this exporter return a failed result saying
        "cancelled" until :meth:`start` is called again (as an OpenTelemetry
        exporter refuses to export after shutdown).
        """
        return self._pusher.shutdown(timeout)


def _is_tracing(item: Any) -> bool:
    return callable(getattr(item, "export_otlp", None))


def _is_span_list(item: Any) -> bool:
    """A list or tuple (or another sequence that is not text or bytes): spans to export."""
    return isinstance(item, Sequence) and not isinstance(item, (str, bytes, bytearray, memoryview))


def _no_data(request: Mapping[str, Any]) -> bool:
    """True for an OTLP/JSON request with no metric or span in it."""
    for resource in request.get("resourceMetrics", []) + request.get("resourceSpans", []):
        for scope in resource.get("scopeMetrics", []) + resource.get("scopeSpans", []):
            if scope.get("metrics") or scope.get("spans"):
                return False
    return True


def _is_registry(item: Any) -> bool:
    from pyveda.telemetry.registry import CollectorRegistry

    return isinstance(item, CollectorRegistry)


def _is_snapshot(item: Any) -> bool:
    return hasattr(item, "tasks_executed") and hasattr(item, "timestamp")


def _new_spans(tracing: Any) -> Callable[[], Any]:
    """A source giving the spans ``tracing`` finished since its previous call (None when there are none)."""
    cursor = 0

    def collect() -> Any:
        nonlocal cursor
        spans, cursor = tracing._spans_since(cursor)
        return spans or None

    return collect


def _as_source(source: Any) -> Optional[Callable[[], Any]]:
    if source is None:
        return None
    if _is_tracing(source):
        if callable(getattr(source, "_spans_since", None)):
            return _new_spans(source)
        return lambda: source
    if _is_registry(source):
        return lambda: source  # collected when each push is encoded
    if callable(getattr(source, "snapshot", None)):
        return source.snapshot
    if callable(source):
        return source
    raise TypeError(
        "source must be a TelemetrySystem, a TracingSystem, a CollectorRegistry or a callable, "
        f"got {type(source).__name__}"
    )


# --- the other exporters ---------------------------------------------------------


class PrometheusExporter:
    """``export(snapshot)`` -> Prometheus text format 0.0.4 (``snapshot.export_prometheus()``)."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def export(self, snapshot: Any) -> str:
        return str(snapshot.export_prometheus())


class JsonExporter:
    """``export(snapshot)`` -> the guide's nested dict (``snapshot.export_json()``)."""

    def export(self, snapshot: Any) -> Dict[str, Any]:
        return dict(snapshot.export_json())


class JaegerExporter:
    """``export(tracing)`` -> ``tracing.export_jaeger()`` (Jaeger JSON)."""

    def export(self, tracing: Any) -> Any:
        method = getattr(tracing, "export_jaeger", None)
        if not callable(method):
            raise TypeError(f"JaegerExporter.export() takes a TracingSystem, got {type(tracing).__name__}")
        return method()


def _tracing_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("pyveda.telemetry.tracing") is not None
    except ImportError:
        return False


def _jaeger(**kwargs: Any) -> JaegerExporter:
    if kwargs:
        raise TypeError(f"create_exporter('jaeger') takes no options, got {sorted(kwargs)}")
    if not _tracing_available():
        raise RuntimeError(
            "create_exporter('jaeger') needs pyveda.telemetry.tracing (TracingSystem), which this build does not have"
        )
    return JaegerExporter()


def _no_options(cls: Callable[[], Any], name: str) -> Callable[..., Any]:
    def make(**kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"create_exporter({name!r}) takes no options, got {sorted(kwargs)}")
        return cls()

    return make


EXPORTERS: Dict[str, Callable[..., Any]] = {
    "otlp": OTLPExporter,
    "prometheus": _no_options(PrometheusExporter, "prometheus"),
    "json": _no_options(JsonExporter, "json"),
    "jaeger": _jaeger,
}


def create_exporter(name: str, **options: Any) -> Any:
    """An exporter by name: ``'otlp'``, ``'prometheus'``, ``'json'`` or ``'jaeger'``.

    ``'otlp'`` accepts ``endpoint``, ``encoding`` (``'json'`` dict or
    ``'protobuf'`` bytes from ``export``), ``headers``, ``timeout`` (seconds),
    ``compression``, ``resource_attributes``, ``max_queue_size`` and
    ``protocol`` (``'http/protobuf'``, ``'http/json'`` or ``'grpc'``: how ``send`` sends); see
    :class:`OTLPExporter`. Raises ValueError for an unknown name or a bad option.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in EXPORTERS:
        raise ValueError(f"unknown exporter {name!r}; valid exporters: {', '.join(sorted(EXPORTERS))}")
    return EXPORTERS[key](**options)
