"""Distributed tracing: spans as context managers, stored in the native span ring.

>>> from pyveda.telemetry import TracingSystem
>>> tracing = TracingSystem()
>>> with tracing.span("data_processing", attributes={"batch_id": 123}) as span:
...     with tracing.span("transform") as child:   # parent: the current span
...         pass
>>> [s.name for s in tracing.get_spans()]
['transform', 'data_processing']

The current span lives in a :class:`contextvars.ContextVar`, so it follows
``contextvars.copy_context().run`` into threads, asyncio tasks, and tasks
spawned on the pyveda runtime. Finished spans go to a bounded C++ ring buffer
(``capacity`` spans); when it is full the oldest span is dropped and counted in
``pyveda_spans_dropped_total``. Exports take one snapshot of that buffer:
:meth:`TracingSystem.export_jaeger` (Jaeger JSON),
:meth:`TracingSystem.export_otlp` (OTLP/JSON dict or protobuf bytes).
"""

from __future__ import annotations

import contextvars
import enum
import json
import logging
import math
import os
import re
import traceback
import warnings
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from pyveda import _core
from pyveda.telemetry.otlp import SCOPE_NAME, SCOPE_VERSION

__all__ = [
    "Span",
    "encode_spans",
    "SpanContext",
    "SpanEvent",
    "SpanKind",
    "StatusCode",
    "TracingSystem",
    "get_current_span",
]

_logger = logging.getLogger("pyveda")


_FLAG_SAMPLED = 0x01  # the W3C "sampled" trace flag



class SpanKind(enum.IntEnum):
    """OTLP ``Span.SpanKind``."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(enum.IntEnum):
    """OTLP ``Status.StatusCode``."""

    UNSET = 0
    OK = 1
    ERROR = 2


class SpanContext(NamedTuple):
    """The identity of a span as it crosses a process boundary (see :meth:`TracingSystem.extract`)."""

    trace_id: str  # 32 lowercase hex
    span_id: str  # 16 lowercase hex
    trace_flags: int = _FLAG_SAMPLED
    trace_state: str = ""
    is_remote: bool = True


class SpanEvent(NamedTuple):
    """A timestamped event of a span."""

    name: str
    time_unix_nano: int
    attributes: Dict[str, Any]
    dropped_attributes_count: int = 0  # past the tracing system's max_event_attributes


# The current span: a ContextVar made by the core, which sets and resets it in Span.__enter__/__exit__.
_current_span: "contextvars.ContextVar[Optional[Span]]" = _core.current_span


def get_current_span() -> "Optional[Span]":
    """The span current in this context (thread / asyncio task), or None."""
    return _current_span.get()


# --- attribute validation -----------------------------------------------------------------------

# Values may be str, bool, int (64-bit), float, or a homogeneous list (or tuple) of one of them;
# anything else is a TypeError naming the key. Spans check in the core; this is the same check
# for the other places that take attributes (resources).
_check_attributes = _core.check_attributes


# --- spans --------------------------------------------------------------------------------------


class Span(_core.Span):
    """One operation: a live span while its ``with`` block runs, then a finished record.

    Made by :meth:`TracingSystem.span` (live) and :meth:`TracingSystem.get_spans`
    (finished). Fields: ``name``, ``trace_id`` (32 hex), ``span_id`` (16 hex),
    ``parent_span_id`` (16 hex or None), ``kind``, ``start_time`` /
    ``end_time`` (ns since the epoch; ``end_time`` None while live),
    ``duration_ms``, ``attributes``, ``events``, ``status``,
    ``status_description``.

    ``set_attribute``, ``set_attributes``, ``add_event``, ``end`` and the
    context-manager methods are native (see ``pyveda._core.Span``). A span is
    used by one thread at a time (as in OpenTelemetry); changes after it ended
    are ignored.
    """

    __slots__ = ()

    @property
    def kind(self) -> SpanKind:
        return SpanKind(self._kind)

    @property
    def status(self) -> StatusCode:
        return StatusCode(self._status_code)

    @property
    def events(self) -> List[SpanEvent]:
        return [SpanEvent(name, t, attrs, dropped) for t, name, attrs, dropped in self._events]

    @property
    def context(self) -> SpanContext:
        return SpanContext(self.trace_id, self.span_id, self.flags & 0xFF, self.trace_state, False)

    def set_status(self, code: Union[StatusCode, int, str], description: Optional[str] = None) -> "Span":
        """Sets the status: ``StatusCode``, 0/1/2 or "unset"/"ok"/"error".

        As in OpenTelemetry, OK is final and a description is kept only for ERROR.
        """
        if isinstance(code, str):
            try:
                code = StatusCode[code.upper()]
            except KeyError:
                raise ValueError(f"status must be 'unset', 'ok' or 'error', got {code!r}") from None
        else:
            code = StatusCode(code)
        self._set_status(code, "" if description is None else str(description))
        return self

    def __repr__(self) -> str:
        state = "live" if self.end_time is None else f"{self.duration_ms:.3f} ms"
        return f"<pyveda Span {self.name!r} {self.trace_id}/{self.span_id} {state} {self.status.name}>"




# --- W3C trace context ---------------------------------------------------------------------------

_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.S)
_TRACESTATE_MAX_MEMBERS = 32


def _header(headers: Mapping[str, Any], name: str) -> Optional[str]:
    value = headers.get(name)
    if value is None:
        for key, v in headers.items():
            if isinstance(key, str) and key.lower() == name:
                value = v
                break
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if isinstance(value, str) else None


def _parse_traceparent(value: str) -> Optional[Tuple[str, str, int]]:
    value = value.strip(" \t")
    match = _TRACEPARENT_RE.fullmatch(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff":
        return None
    if version == "00" and rest is not None:
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, int(flags, 16)


def _clean_tracestate(value: Optional[str]) -> str:
    if not value:
        return ""
    members = [m.strip() for m in value.split(",")]
    members = [m for m in members if m and "=" in m and m[0] != "="]
    if len(members) > _TRACESTATE_MAX_MEMBERS:
        members = members[:_TRACESTATE_MAX_MEMBERS]
    text = ",".join(members)
    if len(text) > 512:  # drop the longest-first entries over 128 characters, then from the end
        members = [m for m in members if len(m) <= 128]
        while members and len(",".join(members)) > 512:
            members.pop()
        text = ",".join(members)
    return text


# --- resource -----------------------------------------------------------------------------------

# --- the system ---------------------------------------------------------------------------------


def _span_limit(name: str, value: Optional[int], env_names: Tuple[str, ...], default: Optional[int]) -> Optional[int]:
    """An explicit limit (checked), else the first environment variable set, else ``default``."""
    if value is not None:
        if type(value) is not int or not 0 <= value < 1 << 64:
            raise ValueError(f"{name} must be a non-negative int below 2**64 or None, got {value!r}")
        return value
    for env_name in env_names:
        text = os.environ.get(env_name, "").strip()
        if not text:
            continue
        if text.isascii() and text.isdigit() and int(text) < 1 << 64:
            return int(text)
        warnings.warn(
            f"pyveda: ignoring {env_name}={text!r}: not a non-negative integer", RuntimeWarning, stacklevel=3
        )
    return default


class TracingSystem(_core.Tracer):
    """Creates spans and keeps the finished ones (at most ``capacity``; oldest dropped first).

    ``service_name`` names the service in exports (else ``OTEL_SERVICE_NAME``,
    else ``service.name`` from ``OTEL_RESOURCE_ATTRIBUTES``, else "pyveda").
    ``resource_attributes`` are added to the export resource and win over
    ``OTEL_RESOURCE_ATTRIBUTES``.

    ``span(name, attributes=None, parent_span_id=None, trace_id=None,
    kind=SpanKind.INTERNAL, context=None, start_time=None)`` (native, from
    ``pyveda._core.Tracer``) returns a started :class:`Span`; use it as a
    context manager to make it current and end it. The parent is, first match
    wins: ``context`` (a :class:`SpanContext` from :meth:`extract`),
    ``parent_span_id`` (a span id or a Span; its trace is found among the
    current span and its ancestors, else the current trace; pass ``trace_id``
    for a parent from elsewhere), the current span. With none, the span starts
    a new trace (in ``trace_id`` if given). ``start_time`` is in ns since the
    epoch (default now). Bad names, ids, kinds and attributes raise TypeError
    or ValueError saying what is allowed.

    Span limits, as the OpenTelemetry SDK's: a span keeps at most
    ``max_attributes`` attributes and ``max_events`` events, an event at most
    ``max_event_attributes`` attributes (128 each by default), and string
    values at most ``max_attribute_length`` characters (default: whole).
    What goes past them is dropped and counted in the span's
    ``dropped_attributes_count`` / ``dropped_events_count`` (and the event's),
    which the exports carry. Unset arguments come from
    ``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`` (else ``OTEL_ATTRIBUTE_COUNT_LIMIT``),
    ``OTEL_SPAN_EVENT_COUNT_LIMIT``, ``OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`` and
    ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`` (else
    ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``); a variable that is not a
    non-negative integer is ignored with a warning.

    Thread-safety: spans may be created and ended from any thread.
    """

    def __init__(
        self,
        capacity: int = 100_000,
        service_name: Optional[str] = None,
        resource_attributes: Optional[Mapping[str, Any]] = None,
        *,
        max_attributes: Optional[int] = None,
        max_events: Optional[int] = None,
        max_event_attributes: Optional[int] = None,
        max_attribute_length: Optional[int] = None,
    ) -> None:
        if type(capacity) is not int or not 1 <= capacity < 1 << 64:
            raise ValueError(f"capacity must be a positive int below 2**64, got {capacity!r}")
        if service_name is not None and not isinstance(service_name, str):
            raise TypeError(f"service_name must be a str, got {type(service_name).__name__}")
        super().__init__(
            capacity,
            _span_limit("max_attributes", max_attributes, ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"), 128),
            _span_limit("max_events", max_events, ("OTEL_SPAN_EVENT_COUNT_LIMIT",), 128),
            _span_limit("max_event_attributes", max_event_attributes, ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",), 128),
            _span_limit(
                "max_attribute_length",
                max_attribute_length,
                ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
                None,
            ),
            span_class=Span,
        )
        self.service_name = service_name
        self._resource_extra = _check_attributes(resource_attributes)

    # -- spans --

    start_span = _core.Tracer.span  # the OpenTelemetry name

    @staticmethod
    def current_span() -> Optional[Span]:
        """The span current in this context, or None."""
        return _current_span.get()

    def clear(self) -> None:
        """Forgets every finished span."""
        self._store.clear()

    @property
    def capacity(self) -> int:
        return self._store.capacity

    @property
    def dropped(self) -> int:
        """Finished spans this system dropped because its buffer was full."""
        return self._store.dropped

    def __len__(self) -> int:
        return len(self._store)

    # -- W3C trace context --

    def inject(self, headers: Dict[str, str], span: Optional[Span] = None) -> Dict[str, str]:
        """Writes ``traceparent`` (and ``tracestate``) for ``span`` (default: the current one) into ``headers``.

        ``headers`` takes item assignment (a dict); anything else is a TypeError.
        """
        if not callable(getattr(headers, "__setitem__", None)):
            raise TypeError(
                f"inject() writes into a mutable mapping of header names to values (a dict), got {type(headers).__name__}"
            )
        if span is None:
            span = _current_span.get()
        if span is None:
            return headers
        headers["traceparent"] = f"00-{span.trace_id}-{span.span_id}-{span.flags & 0xFF:02x}"
        if span.trace_state:
            headers["tracestate"] = span.trace_state
        return headers

    def extract(self, headers: Mapping[str, Any]) -> Optional[SpanContext]:
        """The remote parent in ``traceparent``/``tracestate`` headers, or None.

        Pass it as ``span(..., context=...)``. An invalid ``traceparent`` is
        ignored (logged at debug level on the "pyveda" logger). ``headers`` is
        a mapping (a dict, or an object with ``get()`` and ``items()`` such as
        ``http.client.HTTPMessage``); anything else is a TypeError.
        """
        if not (callable(getattr(headers, "get", None)) and callable(getattr(headers, "items", None))):
            raise TypeError(
                "extract() takes a mapping of header names to values (a dict, or an object with get() and "
                f"items()), got {type(headers).__name__}"
            )
        value = _header(headers, "traceparent")
        if value is None:
            return None
        parsed = _parse_traceparent(value)
        if parsed is None:
            _logger.debug("ignoring invalid traceparent header %r", value)
            return None
        trace_id, span_id, flags = parsed
        return SpanContext(trace_id, span_id, flags, _clean_tracestate(_header(headers, "tracestate")), True)

    # -- export --

    def resource_attributes(self) -> Dict[str, Any]:
        """The resource describing this process in exports (see pyveda.telemetry.otlp.resource_attributes)."""
        from pyveda.telemetry.otlp import resource_attributes

        extra = dict(self._resource_extra)
        if self.service_name:
            extra["service.name"] = self.service_name
        return resource_attributes(extra)

    def export_jaeger(self) -> Dict[str, Any]:
        """The finished spans in the Jaeger JSON model (``/api/traces`` envelope), one trace per trace id."""
        resource = self.resource_attributes()
        process = {
            "serviceName": str(resource["service.name"]),
            "tags": [_jaeger_tag(k, v) for k, v in resource.items() if k != "service.name"],
        }
        traces: Dict[str, List[Dict[str, Any]]] = {}
        for data in self._store.snapshot():
            traces.setdefault(data.trace_id, []).append(_jaeger_span(data))
        return {
            "data": [
                {"traceID": tid, "spans": spans, "processes": {"p1": dict(process)}, "warnings": None}
                for tid, spans in traces.items()
            ],
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": None,
        }

    def export_otlp(self, encoding: str = "json") -> Union[Dict[str, Any], bytes]:
        """An OTLP ``ExportTraceServiceRequest`` of the finished spans.

        ``encoding="json"``: the OTLP/JSON dict (hex ids, 64-bit ints as
        strings, enums as ints); ``"protobuf"``: serialised bytes (encoded
        natively; a resource value the native encoder does not take falls back
        to the ``opentelemetry-proto`` package).
        """
        _check_encoding(encoding)
        return _encode_store(self._store, self.resource_attributes(), encoding)

    def __repr__(self) -> str:
        return f"<pyveda TracingSystem {len(self)}/{self.capacity} spans, {self.dropped} dropped>"


def encode_spans(spans: Iterable[Span], resource: Optional[Mapping[str, Any]] = None,
                 encoding: str = "protobuf") -> Union[Dict[str, Any], bytes]:
    """An OTLP ``ExportTraceServiceRequest`` of the given finished spans, in order.

    ``spans``: :class:`Span` objects that have ended (from :meth:`TracingSystem.get_spans`
    or kept from ``with`` blocks). ``resource``: the resource attributes (default
    :func:`pyveda.telemetry.otlp.resource_attributes`). ``encoding``: ``"protobuf"``
    (bytes) or ``"json"`` (the OTLP/JSON dict). A live span is a ValueError, anything
    that is not a Span a TypeError.
    """
    _check_encoding(encoding)
    if resource is None:
        from pyveda.telemetry.otlp import resource_attributes

        resource = resource_attributes()
    else:
        resource = _check_attributes(resource)
    spans = list(spans)
    store = _core.SpanStore(max(1, len(spans)))
    for i, span in enumerate(spans):
        if not isinstance(span, Span):
            raise TypeError(f"spans[{i}] must be a pyveda Span, got {type(span).__name__}")
        if span.end_time is None:
            raise ValueError(f"spans[{i}] ({span.name!r}) has not ended; only finished spans can be exported")
        store.add_span(span)
    return _encode_store(store, resource, encoding)


def _check_encoding(encoding: str) -> None:
    if encoding not in ("json", "protobuf"):
        raise ValueError(f"encoding must be 'json' or 'protobuf', got {encoding!r}")


def _encode_store(store: Any, resource: Mapping[str, Any], encoding: str) -> Union[Dict[str, Any], bytes]:
    """The store's spans as an OTLP request: the OTLP/JSON dict, or protobuf bytes."""
    if encoding == "json":
        return _otlp_json(store.snapshot(), resource)
    try:
        return store.encode_otlp(resource, SCOPE_NAME, SCOPE_VERSION)
    except TypeError:  # a resource value the native encoder does not take: the protobuf runtime's path
        return _otlp_message(store.snapshot(), resource).SerializeToString()


# --- Jaeger -------------------------------------------------------------------------------------

_JAEGER_KIND = {2: "server", 3: "client", 4: "producer", 5: "consumer"}
_JS_SAFE = 2**53 - 1


def _jaeger_tag(key: str, value: Any) -> Dict[str, Any]:
    t = type(value)
    if t is bool:
        return {"key": key, "type": "bool", "value": value}
    if t is int:
        return {"key": key, "type": "int64", "value": value if -_JS_SAFE <= value <= _JS_SAFE else str(value)}
    if t is float:
        return {"key": key, "type": "float64", "value": value}
    if t is list:
        return {"key": key, "type": "string", "value": json.dumps(value)}
    return {"key": key, "type": "string", "value": str(value)}


def _jaeger_span(d: Any) -> Dict[str, Any]:
    tags = [_jaeger_tag(k, v) for k, v in d.attributes.items()]
    tags.append({"key": "otel.scope.name", "type": "string", "value": SCOPE_NAME})
    tags.append({"key": "otel.scope.version", "type": "string", "value": SCOPE_VERSION})
    kind = _JAEGER_KIND.get(d.kind)
    if kind:
        tags.append({"key": "span.kind", "type": "string", "value": kind})
    if d.status_code == 1:
        tags.append({"key": "otel.status_code", "type": "string", "value": "OK"})
    elif d.status_code == 2:
        tags.append({"key": "otel.status_code", "type": "string", "value": "ERROR"})
        if d.status_message:
            tags.append({"key": "otel.status_description", "type": "string", "value": d.status_message})
        tags.append({"key": "error", "type": "bool", "value": True})
    for key, count in (
        ("otel.dropped_attributes_count", d.dropped_attributes_count),
        ("otel.dropped_events_count", d.dropped_events_count),
        ("otel.dropped_links_count", d.dropped_links_count),
    ):
        if count:
            tags.append({"key": key, "type": "int64", "value": count})
    logs = []
    for t, name, attrs, _dropped in d.events:
        fields = [] if "event" in attrs else [{"key": "event", "type": "string", "value": name}]
        fields.extend(_jaeger_tag(k, v) for k, v in attrs.items())
        logs.append({"timestamp": t // 1000, "fields": fields})
    parent = d.parent_span_id
    start_us = d.start_time_unix_nano // 1000
    return {
        "traceID": d.trace_id,
        "spanID": d.span_id,
        "flags": d.flags & 0xFF,
        "operationName": d.name,
        "references": [{"refType": "CHILD_OF", "traceID": d.trace_id, "spanID": parent}] if parent else [],
        "startTime": start_us,
        "duration": max(0, d.end_time_unix_nano // 1000 - start_us),
        "tags": tags,
        "logs": logs,
        "processID": "p1",
        "warnings": None,
    }


# --- OTLP ---------------------------------------------------------------------------------------


def _json_value(value: Any) -> Dict[str, Any]:
    t = type(value)
    if t is str:
        return {"stringValue": value}
    if t is bool:
        return {"boolValue": value}
    if t is int:
        return {"intValue": str(value)}
    if t is float:
        if math.isfinite(value):
            return {"doubleValue": value}
        return {"doubleValue": "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")}
    if t is list:
        return {"arrayValue": {"values": [_json_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _json_attributes(attrs: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return [{"key": k, "value": _json_value(v)} for k, v in attrs.items()]


def _json_event(time_unix_nano: int, name: str, attrs: Mapping[str, Any], dropped: int) -> Dict[str, Any]:
    event: Dict[str, Any] = {"timeUnixNano": str(time_unix_nano), "name": name}
    if attrs:
        event["attributes"] = _json_attributes(attrs)
    if dropped:
        event["droppedAttributesCount"] = dropped
    return event


def _otlp_json(spans: Sequence[Any], resource: Mapping[str, Any]) -> Dict[str, Any]:
    out = []
    for d in spans:
        span: Dict[str, Any] = {"traceId": d.trace_id, "spanId": d.span_id}
        if d.trace_state:
            span["traceState"] = d.trace_state
        if d.parent_span_id:
            span["parentSpanId"] = d.parent_span_id
        span["flags"] = d.flags
        span["name"] = d.name
        span["kind"] = d.kind
        span["startTimeUnixNano"] = str(d.start_time_unix_nano)
        span["endTimeUnixNano"] = str(d.end_time_unix_nano)
        attrs = d.attributes
        if attrs:
            span["attributes"] = _json_attributes(attrs)
        if d.events:
            span["events"] = [_json_event(*event) for event in d.events]
        for key, count in (
            ("droppedAttributesCount", d.dropped_attributes_count),
            ("droppedEventsCount", d.dropped_events_count),
            ("droppedLinksCount", d.dropped_links_count),
        ):
            if count:
                span[key] = count
        status: Dict[str, Any] = {}
        if d.status_message:
            status["message"] = d.status_message
        if d.status_code:
            status["code"] = d.status_code
        if status:
            span["status"] = status
        out.append(span)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _json_attributes(resource)},
                "scopeSpans": [{"scope": {"name": SCOPE_NAME, "version": SCOPE_VERSION}, "spans": out}],
            }
        ]
    }


def _pb_set_value(any_value: Any, value: Any) -> None:
    t = type(value)
    if t is str:
        any_value.string_value = value
    elif t is bool:
        any_value.bool_value = value
    elif t is int:
        any_value.int_value = value
    elif t is float:
        any_value.double_value = value
    elif t is list:
        values = any_value.array_value.values
        for v in value:
            _pb_set_value(values.add(), v)
    else:
        any_value.string_value = str(value)


def _pb_attributes(repeated: Any, attrs: Mapping[str, Any]) -> None:
    for k, v in attrs.items():
        kv = repeated.add()
        kv.key = k
        _pb_set_value(kv.value, v)


def _otlp_message(spans: Iterable[Any], resource: Mapping[str, Any]) -> Any:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _pb_attributes(resource_spans.resource.attributes, resource)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = SCOPE_NAME
    scope_spans.scope.version = SCOPE_VERSION
    out = scope_spans.spans
    for d in spans:
        span = out.add()
        span.trace_id = d.trace_id_bytes
        span.span_id = d.span_id_bytes
        if d.trace_state:
            span.trace_state = d.trace_state
        span.parent_span_id = d.parent_span_id_bytes
        span.flags = d.flags
        span.name = d.name
        span.kind = d.kind
        span.start_time_unix_nano = d.start_time_unix_nano
        span.end_time_unix_nano = d.end_time_unix_nano
        attrs = d.attributes
        if attrs:
            _pb_attributes(span.attributes, attrs)
        for t, name, a, dropped in d.events:
            event = span.events.add()
            event.time_unix_nano = t
            event.name = name
            if a:
                _pb_attributes(event.attributes, a)
            event.dropped_attributes_count = dropped
        span.dropped_attributes_count = d.dropped_attributes_count
        span.dropped_events_count = d.dropped_events_count
        span.dropped_links_count = d.dropped_links_count
        if d.status_code or d.status_message:
            span.status.code = d.status_code
            span.status.message = d.status_message
    return request


# --- runtime hook -------------------------------------------------------------------------------


def _traced_call(tracing: TracingSystem, name: str, fn: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    with tracing.span(name, attributes={"pyveda.task": True}):
        return fn(*args, **kwargs)


def _task_name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__qualname__
