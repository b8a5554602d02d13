"""Exporters: one core snapshot (or a tracing system, or a list of spans) in, a wire format out.

>>> from pyveda.telemetry import create_exporter
>>> exporter = create_exporter('otlp', endpoint='http://localhost:4318')
>>> otlp_data = exporter.export(snapshot)        # doctest: +SKIP  (OTLP/JSON dict)
>>> result = exporter.send(snapshot)             # doctest: +SKIP  (POST protobuf to /v1/metrics)
>>> result = exporter.send(tracing.get_spans())  # doctest: +SKIP  (POST protobuf to /v1/traces)

``create_exporter`` knows ``'otlp'``, ``'prometheus'``, ``'json'`` and
``'jaeger'``. Encoding lives in :mod:`pyveda.telemetry.otlp`; this module adds
the OTLP/HTTP transport (standard library only), retries, environment
configuration and an optional background pusher.

OTLP configuration follows the OpenTelemetry environment variables, the
metrics/traces-specific ones beating ``OTEL_EXPORTER_OTLP_*``:
``_ENDPOINT`` (the signal-specific one is used as-is), ``_HEADERS``
(``k=v,k2=v2``, percent-decoded), ``_TIMEOUT`` (integer milliseconds, as the
OTel spec says; opentelemetry-python reads seconds), ``_COMPRESSION``
(``gzip`` or ``none``) and ``_PROTOCOL`` (``http/protobuf``, the default, or
``http/json``; ``grpc`` and anything else are a ValueError when the exporter
is made, as there is no gRPC transport). Explicit arguments beat the environment.
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import os
import random
import threading
import time
import warnings
import weakref
from collections import deque
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, Callable, Deque, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from pyveda.telemetry import otlp

__all__ = [
    "EXPORTERS",
    "ExportResult",
    "JaegerExporter",
    "JsonExporter",
    "OTLPExporter",
    "PrometheusExporter",
    "create_exporter",
]

DEFAULT_ENDPOINT = "http://localhost:4318"
DEFAULT_TIMEOUT_S = 10.0
MAX_REQUEST_BYTES = 64 * 1024 * 1024
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_ATTEMPTS = 6
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
PROTOCOLS = ("http/protobuf", "http/json")
CONTENT_TYPES = {"http/protobuf": "application/x-protobuf", "http/json": "application/json"}


def _version() -> str:
    import pyveda

    return str(getattr(pyveda, "__version__", "0.0.0"))


@dataclass(frozen=True)
class ExportResult:
    """What one :meth:`OTLPExporter.send` did. ``send`` never raises for network or server trouble; read this instead.

    ``success`` is True for a 2xx answer (even with a partial success, whose
    ``rejected`` count and ``error_message`` are set then). ``status_code`` is
    the last HTTP status (None if no answer came), ``attempts`` the requests
    made, ``error`` a description of the failure (None on success).
    """

    success: bool
    status_code: Optional[int] = None
    attempts: int = 0
    rejected: int = 0
    error_message: str = ""
    error: Optional[str] = None

    def __bool__(self) -> bool:
        return self.success


# --- configuration -----------------------------------------------------------


def _env(signal: str, name: str) -> Tuple[Optional[str], str]:
    """(value, variable name): the signal-specific variable, else the generic one."""
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name}"
    value = os.environ.get(specific)
    if value is not None and value.strip():
        return value.strip(), specific
    generic = f"OTEL_EXPORTER_OTLP_{name}"
    value = os.environ.get(generic)
    if value is not None and value.strip():
        return value.strip(), generic
    return None, generic


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{what}: {url!r} is not an absolute URL (expected e.g. 'http://localhost:4318')")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{what}: unsupported scheme {parts.scheme!r} in {url!r} (use http or https)")
    if not parts.hostname:
        raise ValueError(f"{what}: {url!r} has no host (expected e.g. 'http://localhost:4318')")
    try:
        parts.port
    except ValueError as e:
        raise ValueError(f"{what}: bad port in {url!r}") from e
    return url


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path


def _signal_url(signal: str, endpoint: Optional[str]) -> str:
    path = f"v1/{signal}"
    if endpoint is not None:
        return _join(_check_url(endpoint, "endpoint"), path)
    value, name = _env(signal, "ENDPOINT")
    if value is not None and name.endswith(f"_{signal.upper()}_ENDPOINT"):
        _check_url(value, name)
        return value if urlsplit(value).path else value + "/"  # used as-is
    if value is not None:
        return _join(_check_url(value, name), path)
    return _join(DEFAULT_ENDPOINT, path)


def _timeout(signal: str, timeout: Optional[float]) -> Optional[float]:
    """Seconds (None = no limit) from the argument or the env (ms)."""
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        return None if timeout == 0 else float(timeout)
    value, name = _env(signal, "TIMEOUT")
    if value is None:
        return DEFAULT_TIMEOUT_S
    try:
        ms = int(value)
    except ValueError:
        ms = -1
    if ms < 0:
        warnings.warn(
            f"pyveda: {name}={value!r} is not a non-negative integer of milliseconds; "
            f"using {int(DEFAULT_TIMEOUT_S * 1000)}",
            RuntimeWarning,
            stacklevel=4,
        )
        return DEFAULT_TIMEOUT_S
    return None if ms == 0 else ms / 1000.0


def _compression(signal: str, compression: Optional[str]) -> Optional[str]:
    if compression is not None:
        if compression not in ("gzip", "none"):
            raise ValueError(f"compression must be 'gzip' or 'none', got {compression!r}")
        return None if compression == "none" else "gzip"
    value, name = _env(signal, "COMPRESSION")
    if value is None:
        return None
    if value.lower() not in ("gzip", "none"):
        warnings.warn(
            f"pyveda: {name}={value!r} is not 'gzip' or 'none'; sending uncompressed", RuntimeWarning, stacklevel=4
        )
        return None
    return None if value.lower() == "none" else "gzip"


def _protocol(signal: str, protocol: Optional[str]) -> str:
    """``'http/protobuf'`` or ``'http/json'`` from the argument or the env; ValueError otherwise."""
    allowed = "supported values: 'http/protobuf' (the default), 'http/json'"
    if protocol is not None:
        what, value = "protocol", protocol
    else:
        env, name = _env(signal, "PROTOCOL")
        if env is None:
            return "http/protobuf"
        what, value = name, env
        if env.lower() in PROTOCOLS:
            return env.lower()
    if value in PROTOCOLS:
        return str(value)
    if isinstance(value, str) and value.lower() == "grpc":
        raise ValueError(f"{what}: {value!r}: gRPC is not supported (PyVeda has no gRPC transport); {allowed}")
    raise ValueError(f"{what}: {value!r} is not a supported OTLP protocol; {allowed}")


def _headers(signal: str, headers: Union[None, str, Mapping[str, str]]) -> Dict[str, str]:
    if isinstance(headers, Mapping):
        return {str(k): str(v) for k, v in headers.items()}
    if isinstance(headers, str):
        return otlp.parse_key_values(headers, "headers")
    result: Dict[str, str] = {}
    generic = os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", "")
    if generic.strip():
        result.update(otlp.parse_key_values(generic, "OTEL_EXPORTER_OTLP_HEADERS"))
    name = f"OTEL_EXPORTER_OTLP_{signal.upper()}_HEADERS"
    specific = os.environ.get(name, "")
    if specific.strip():
        result.update(otlp.parse_key_values(specific, name))
    return result


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


# --- the OTLP exporter ----------------------------------------------------------


class _SignalConfig:
    __slots__ = ("url", "timeout", "compression", "headers", "protocol")

    def __init__(
        self,
        signal: str,
        endpoint: Optional[str],
        timeout: Optional[float],
        compression: Optional[str],
        headers: Any,
        protocol: Optional[str] = None,
    ) -> None:
        self.url = _signal_url(signal, endpoint)
        self.timeout = _timeout(signal, timeout)
        self.compression = _compression(signal, compression)
        self.headers = _headers(signal, headers)
        self.protocol = _protocol(signal, protocol)


_LIVE: "weakref.WeakSet[OTLPExporter]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for exporter in list(_LIVE):
        exporter._reinit_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class OTLPExporter:
    """OTLP metrics (and traces) as OTLP/JSON dicts, protobuf bytes, or pushed over OTLP/HTTP.

    ``export(item)`` encodes; ``send(item)`` posts to ``<endpoint>/v1/metrics``
    (a snapshot) or ``/v1/traces`` (a tracing system, or a list or tuple of
    finished spans) with retries and returns an :class:`ExportResult` (never
    raises for network or server trouble, never blocks beyond ``timeout``).
    ``protocol`` (default: ``OTEL_EXPORTER_OTLP_{TRACES,METRICS}_PROTOCOL``,
    then ``OTEL_EXPORTER_OTLP_PROTOCOL``, then ``'http/protobuf'``) picks the
    body ``send`` posts: protobuf, or OTLP/JSON for ``'http/json'``; ``'grpc'``
    or any other value raises ValueError here. ``encoding`` is only what
    ``export`` returns by default. ``start(interval, source)`` pushes from a
    background thread through a bounded queue; ``shutdown()`` flushes and joins.

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
    ) -> None:
        if encoding not in ("json", "protobuf"):
            raise ValueError(f"encoding must be 'json' or 'protobuf', got {encoding!r}")
        if isinstance(max_queue_size, bool) or not isinstance(max_queue_size, int) or max_queue_size < 1:
            raise ValueError(f"max_queue_size must be an int >= 1, got {max_queue_size!r}")
        self.encoding = encoding
        self.metrics = _SignalConfig("metrics", endpoint, timeout, compression, headers, protocol)
        self.traces = _SignalConfig("traces", endpoint, timeout, compression, headers, protocol)
        self.resource = otlp.resource_attributes(resource_attributes)
        self.max_queue_size = max_queue_size
        self.dropped = 0
        self._init_worker_state()
        _LIVE.add(self)

    # -- encoding --

    def export(self, item: Any, encoding: Optional[str] = None) -> Any:
        """The OTLP request for ``item``: a dict (``encoding='json'``) or bytes (``'protobuf'``).

        A metrics snapshot gives an ExportMetricsServiceRequest; a tracing
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
        if not _is_snapshot(item):
            raise TypeError(
                f"export() takes a MetricsSnapshot, a TracingSystem or a list of Spans, got {type(item).__name__}"
            )
        if encoding == "protobuf":
            return otlp.metrics_request_bytes(item, self.resource)
        return otlp.metrics_request_dict(item, self.resource)

    # -- transport --

    def send(self, item: Any) -> ExportResult:
        """POSTs ``item``; retries 429/502/503/504 and connection errors within the timeout.

        ``item``: a MetricsSnapshot (to ``/v1/metrics``), a TracingSystem or a
        list or tuple of finished Spans (to ``/v1/traces``). The body is
        protobuf, or OTLP/JSON (``Content-Type: application/json``) when the
        signal's protocol is ``'http/json'``. A tracing system without spans or
        an empty list sends nothing and returns ``ExportResult(True)``.

        Network and server trouble is returned, never raised. Bad input is a
        programming error and raises, before anything is sent: TypeError for an
        item of another type, and for a list, the ``encode_spans`` error naming
        the index (TypeError for an item that is not a Span, ValueError for a
        span that has not ended).
        """
        spans = None
        if _is_tracing(item):
            config, kind = self.traces, "traces"
            if hasattr(item, "__len__") and len(item) == 0:
                return ExportResult(True)  # no empty envelopes
        elif _is_span_list(item):
            config, kind, spans = self.traces, "traces", list(item)
            if not spans:
                return ExportResult(True)  # no empty envelopes
        elif _is_snapshot(item):
            config, kind = self.metrics, "metrics"
        else:
            raise TypeError(
                f"send() takes a MetricsSnapshot, a TracingSystem or a list of Spans, got {type(item).__name__}"
            )
        encoding = "json" if config.protocol == "http/json" else "protobuf"
        try:
            data = self.export(spans if spans is not None else item, encoding=encoding)
        except (TypeError, ValueError) as e:
            if spans is not None:
                raise  # encode_spans: an item that is not a Span, or a live span (the message names the index)
            return ExportResult(False, error=f"could not encode {kind}: {e}")
        except Exception as e:  # encoding trouble is reported, not raised
            return ExportResult(False, error=f"could not encode {kind}: {e}")
        try:
            if encoding == "json":
                if _no_data(data):
                    return ExportResult(True)  # nothing to send: no empty envelopes
                body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode("utf-8")
            else:
                body = bytes(data)
        except Exception as e:  # encoding trouble is reported, not raised
            return ExportResult(False, error=f"could not encode {kind}: {e}")
        if not body:
            return ExportResult(True)  # nothing to send: no empty envelopes
        return self._post(config, kind, body)

    def _post(self, config: _SignalConfig, kind: str, body: bytes) -> ExportResult:
        deadline = None if config.timeout is None else time.monotonic() + config.timeout
        headers = dict(config.headers)
        headers.update({"Content-Type": CONTENT_TYPES[config.protocol], "User-Agent": f"PyVeda/{_version()}"})
        if config.compression == "gzip":
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        if len(body) > MAX_REQUEST_BYTES:
            return ExportResult(False, error=f"request of {len(body)} bytes exceeds {MAX_REQUEST_BYTES}")
        parts = urlsplit(config.url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        status: Optional[int] = None
        error = "timed out before the first attempt"
        attempt = 0
        while attempt < MAX_ATTEMPTS:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            attempt += 1
            retry_after: Optional[float] = None
            try:
                status, reply_headers, reply = _request(parts, target, body, headers, remaining)
            except (OSError, http.client.HTTPException) as e:
                status, error = None, f"{type(e).__name__}: {e}"
            else:
                as_json = _is_json_reply(reply_headers.get("content-type"), config.protocol)
                if 200 <= status < 300:
                    rejected, message = _partial_success(kind, reply, as_json)
                    if message or rejected:
                        warnings.warn(
                            f"pyveda: OTLP {kind} partial success: {rejected} rejected: {message}",
                            RuntimeWarning,
                            stacklevel=3,
                        )
                    return ExportResult(True, status, attempt, rejected, message)
                error = f"HTTP {status}: {_status_message(reply, as_json)}"
                if status not in RETRYABLE_STATUS:
                    return ExportResult(False, status, attempt, error=error)
                retry_after = _retry_after(reply_headers.get("retry-after"))
            if attempt >= MAX_ATTEMPTS:
                break
            delay = retry_after if retry_after is not None else (2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
            if deadline is not None and time.monotonic() + delay >= deadline:
                error += " (gave up: the next retry would pass the timeout)"
                break
            time.sleep(delay)
        return ExportResult(False, status, attempt, error=error)

    # -- background pushing --

    def _init_worker_state(self) -> None:
        self._queue: Deque[Any] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._interval = 0.0
        self._source: Optional[Callable[[], Any]] = None

    def _reinit_after_fork(self) -> None:
        # The parent's thread does not exist in the child; locks may be held.
        was_running = self._thread is not None and not self._stop.is_set()
        interval, source = self._interval, self._source
        self._init_worker_state()
        if was_running:
            self._interval, self._source = interval, source
            self._start_thread()

    def submit(self, item: Any) -> bool:
        """Queues ``item`` for the background thread.

        When the queue is full the oldest item is dropped and counted in
        ``dropped``; returns False then.
        """
        with self._lock:
            accepted = True
            if len(self._queue) >= self.max_queue_size:
                self._queue.popleft()
                self.dropped += 1
                accepted = False
            self._queue.append(item)
        self._wake.set()
        return accepted

    def start(self, interval: float = 10.0, source: Any = None) -> None:
        """Exports every ``interval`` seconds on a daemon thread.

        ``source`` is a TelemetrySystem (a snapshot is taken each interval), a
        TracingSystem, or a callable returning either; items passed to
        :meth:`submit` are sent too. Results of background sends are kept in
        ``last_result``.
        """
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ValueError(f"interval must be a number of seconds > 0, got {interval!r}")
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("exporter already started; call shutdown() first")
        self._interval = float(interval)
        self._source = _as_source(source)
        self._stop = threading.Event()
        self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pyveda-otlp-exporter", daemon=True)
        self._thread.start()

    last_result: Optional[ExportResult] = None

    def _collect(self) -> None:
        if self._source is None:
            return
        try:
            item = self._source()
        except Exception as e:
            self.last_result = ExportResult(False, error=f"source failed: {e}")
            return
        if item is not None:
            self.submit(item)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                item = self._queue.popleft()
            try:
                self.last_result = self.send(item)
            except Exception as e:  # send() itself never raises for transport trouble
                self.last_result = ExportResult(False, error=str(e))

    def _run(self) -> None:
        next_at = time.monotonic() + self._interval
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_at - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                break
            if time.monotonic() >= next_at:
                next_at = time.monotonic() + self._interval
                self._collect()
            self._drain()

    def force_flush(self) -> None:
        """Sends what is queued now, on the calling thread."""
        self._drain()

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Stops the background thread after a last collection, sends what is queued and joins."""
        thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        self._collect()
        self._drain()
        self._thread = None
        self._source = None


def _request(
    parts: Any, target: str, body: bytes, headers: Mapping[str, str], timeout: Optional[float]
) -> Tuple[int, Mapping[str, str], bytes]:
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", target, body=body, headers=dict(headers))
        response = conn.getresponse()
        reply = response.read(MAX_RESPONSE_BYTES)
        if response.getheader("Content-Encoding", "").lower() == "gzip":
            try:
                reply = gzip.decompress(reply)
            except (OSError, EOFError):
                reply = b""
        return response.status, {k.lower(): v for k, v in response.getheaders()}, reply
    finally:
        conn.close()


def _is_json_reply(content_type: Optional[str], protocol: str) -> bool:
    """Whether a reply body is OTLP/JSON: by its Content-Type, else by what was sent."""
    if content_type:
        return content_type.split(";")[0].strip().lower() == "application/json"
    return protocol == "http/json"


def _partial_success(kind: str, reply: bytes, as_json: bool = False) -> Tuple[int, str]:
    if not reply:
        return 0, ""
    if as_json:  # {"partialSuccess": {"rejectedDataPoints"|"rejectedSpans": "3", "errorMessage": "..."}}
        try:
            partial = json.loads(reply.decode("utf-8")).get("partialSuccess") or {}
            field = "rejectedDataPoints" if kind == "metrics" else "rejectedSpans"
            rejected = int(partial.get(field) or 0)  # int64: a JSON string or number
            message = partial.get("errorMessage") or ""
            return rejected, message if isinstance(message, str) else str(message)
        except Exception:
            return 0, ""  # an unparsable 2xx body is still a success
    try:
        if kind == "metrics":
            from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

            msg = ExportMetricsServiceResponse.FromString(reply)
            return int(msg.partial_success.rejected_data_points), msg.partial_success.error_message
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        msg = ExportTraceServiceResponse.FromString(reply)
        return int(msg.partial_success.rejected_spans), msg.partial_success.error_message
    except Exception:
        return 0, ""  # an unparsable 2xx body is still a success


def _status_message(reply: bytes, as_json: bool = False) -> str:
    if not reply:
        return "(no body)"
    if as_json:  # a google.rpc.Status in JSON: {"code": 3, "message": "..."}
        try:
            message = json.loads(reply.decode("utf-8")).get("message")
            if isinstance(message, str) and message:
                return message
        except Exception:
            pass
        return reply[:200].decode("utf-8", "replace")
    try:
        from google.rpc import status_pb2  # type: ignore[import-not-found]

        return status_pb2.Status.FromString(reply).message or "(no message)"
    except Exception:
        return reply[:200].decode("utf-8", "replace")


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


def _is_snapshot(item: Any) -> bool:
    return hasattr(item, "tasks_executed") and hasattr(item, "timestamp")


def _as_source(source: Any) -> Optional[Callable[[], Any]]:
    if source is None:
        return None
    if _is_tracing(source):
        return lambda: source
    if callable(getattr(source, "snapshot", None)):
        return source.snapshot
    if callable(source):
        return source
    raise TypeError(f"source must be a TelemetrySystem, a TracingSystem or a callable, got {type(source).__name__}")


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
    ``protocol`` (``'http/protobuf'`` or ``'http/json'``: what ``send`` posts); see
    :class:`OTLPExporter`. Raises ValueError for an unknown name or a bad option.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in EXPORTERS:
        raise ValueError(f"unknown exporter {name!r}; valid exporters: {', '.join(sorted(EXPORTERS))}")
    return EXPORTERS[key](**options)
