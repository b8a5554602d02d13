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
import re
import time
import traceback
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from pyveda import _core
from pyveda._version import __version__

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
_time_ns = time.time_ns

SCOPE_NAME = "pyveda"

# OTLP Span.flags: W3C trace flags in the low byte, then "is-remote known" and "parent is remote".
_FLAG_SAMPLED = 0x01
_FLAG_HAS_IS_REMOTE = 0x100
_FLAG_IS_REMOTE = 0x200
_LOCAL_FLAGS = _FLAG_SAMPLED | _FLAG_HAS_IS_REMOTE

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


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


_current_span: "contextvars.ContextVar[Optional[Span]]" = contextvars.ContextVar("pyveda_current_span", default=None)


def get_current_span() -> "Optional[Span]":
    """The span current in this context (thread / asyncio task), or None."""
    return _current_span.get()


# --- attribute validation -----------------------------------------------------------------------

_SCALAR_TYPES = (str, bool, int, float)


def _scalar(key: str, value: Any) -> Any:
    t = type(value)
    if t is str or t is bool or t is float:
        return value
    if t is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
        raise TypeError(f"attribute {key!r}: int value {value} does not fit in 64 bits")
    # Subclasses (IntEnum, str enums, numpy-free) become their base type.
    for base in _SCALAR_TYPES:
        if isinstance(value, base):
            return _scalar(key, base(value))
    raise TypeError(
        f"attribute {key!r}: value must be str, bool, int, float or a list of one of them, "
        f"got {type(value).__name__} ({value!r:.60})"
    )


def _check_attribute(key: Any, value: Any) -> Any:
    """The stored form of ``value``; TypeError naming ``key`` for an unsupported value."""
    if type(key) is not str:
        raise TypeError(f"attribute keys must be str, got {type(key).__name__} ({key!r:.60})")
    t = type(value)
    if t is str or t is bool or t is float or t is int:
        return _scalar(key, value)
    if t is list or t is tuple:
        items = [_scalar(key, v) for v in value]
        if items:
            first = type(items[0])
            for item in items:
                if type(item) is not first:
                    raise TypeError(
                        f"attribute {key!r}: list items must all have one type, "
                        f"got {first.__name__} and {type(item).__name__}"
                    )
        return items
    return _scalar(key, value)


def _check_attributes(attributes: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    if type(attributes) is dict:
        out = {}
        for k, v in attributes.items():
            t = type(v)
            # Fast path for the common scalar types; everything else goes through the full check.
            fast = t is str or t is bool or t is float or (t is int and _INT64_MIN <= v <= _INT64_MAX)
            out[k] = v if fast and type(k) is str else _check_attribute(k, v)
        return out
    if not attributes:
        if attributes is None or isinstance(attributes, Mapping):
            return {}
    if not isinstance(attributes, Mapping):
        raise TypeError(f"attributes must be a mapping, got {type(attributes).__name__}")
    return {k: _check_attribute(k, v) for k, v in attributes.items()}


def _check_hex_id(what: str, value: Any, length: int) -> str:
    if (
        type(value) is not str
        or len(value) != length
        or not _HEX_RE.fullmatch(value)
        or value == "0" * length
    ):
        raise ValueError(f"{what} must be {length} lowercase hex characters, not all zero; got {value!r}")
    return value


_HEX_RE = re.compile(r"[0-9a-f]+")
_new_span_id = _core.new_span_id
_new_ids = _core.new_ids  # (trace id, span id) in one call


# --- spans --------------------------------------------------------------------------------------


_UNSET = StatusCode.UNSET
_new_span = object.__new__


class Span:
    """One operation: a live span while its ``with`` block runs, then a finished record.

    Fields: ``name``, ``trace_id`` (32 hex), ``span_id`` (16 hex),
    ``parent_span_id`` (16 hex or None), ``kind``, ``start_time`` /
    ``end_time`` (ns since the epoch; ``end_time`` None while live),
    ``duration_ms``, ``attributes``, ``events``, ``status``,
    ``status_description``.

    A span is used by one thread at a time (as in OpenTelemetry); changes after
    it ended are ignored.
    """

    __slots__ = (
        "_tracing",
        "name",
        "trace_id",
        "span_id",
        "parent_span_id",
        "trace_state",
        "flags",
        "kind",
        "start_time",
        "end_time",
        "_attributes",
        "_events",
        "_status",
        "_status_description",
        "_token",
        "_parent",
    )

    def __init__(self) -> None:  # use TracingSystem.span()
        self._tracing: Optional[TracingSystem] = None
        self.name = ""
        self.trace_id = ""
        self.span_id = ""
        self.parent_span_id: Optional[str] = None
        self.trace_state = ""
        self.flags = _LOCAL_FLAGS
        self.kind = SpanKind.INTERNAL
        self.start_time = 0
        self.end_time: Optional[int] = None
        self._attributes: Dict[str, Any] = {}
        self._events: Optional[List[Tuple[int, str, Optional[Dict[str, Any]]]]] = None
        self._status = StatusCode.UNSET
        self._status_description: Optional[str] = None
        self._token: Optional[contextvars.Token] = None
        self._parent: Optional[Span] = None

    # -- reading --

    @property
    def attributes(self) -> Dict[str, Any]:
        return dict(self._attributes)

    @property
    def events(self) -> List[SpanEvent]:
        return [SpanEvent(name, t, dict(a) if a else {}) for t, name, a in (self._events or ())]

    @property
    def status(self) -> StatusCode:
        return self._status

    @property
    def status_description(self) -> Optional[str]:
        return self._status_description

    @property
    def duration_ms(self) -> float:
        """Milliseconds from start to end (to now while the span is live)."""
        end = self.end_time if self.end_time is not None else _time_ns()
        return (end - self.start_time) / 1e6

    @property
    def is_recording(self) -> bool:
        return self.end_time is None

    @property
    def context(self) -> SpanContext:
        return SpanContext(self.trace_id, self.span_id, self.flags & 0xFF, self.trace_state, False)

    # -- changing --

    def set_attribute(self, key: str, value: Any) -> "Span":
        """Sets one attribute; TypeError naming ``key`` for an unsupported value."""
        value = _check_attribute(key, value)
        if self.end_time is None:
            self._attributes[key] = value
        return self

    def set_attributes(self, attributes: Mapping[str, Any]) -> "Span":
        checked = _check_attributes(attributes)
        if self.end_time is None:
            self._attributes.update(checked)
        return self

    def add_event(self, name: str, attributes: Optional[Mapping[str, Any]] = None,
                  timestamp: Optional[int] = None) -> "Span":
        """Adds an event (``timestamp`` in ns since the epoch, default now)."""
        if type(name) is not str:
            raise TypeError(f"event name must be a str, got {type(name).__name__}")
        checked = _check_attributes(attributes) if attributes else None
        if self.end_time is None:
            if self._events is None:
                self._events = []
            self._events.append((_time_ns() if timestamp is None else int(timestamp), name, checked))
        return self

    def record_exception(self, exception: BaseException, attributes: Optional[Mapping[str, Any]] = None) -> "Span":
        """Adds an ``exception`` event with the OpenTelemetry semantic-convention attributes."""
        stacktrace = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
        attrs: Dict[str, Any] = {
            "exception.type": type(exception).__name__,
            "exception.message": str(exception),
            "exception.stacktrace": stacktrace,
        }
        if attributes:
            attrs.update(_check_attributes(attributes))
        return self.add_event("exception", attrs)

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
        if self.end_time is not None or self._status is StatusCode.OK:
            return self
        self._status = code
        self._status_description = str(description) if (description is not None and code is StatusCode.ERROR) else None
        return self

    # -- ending --

    def end(self, end_time: Optional[int] = None) -> None:
        """Ends the span and hands it to the span store; later calls do nothing."""
        if self.end_time is not None:
            return
        self.end_time = end = _time_ns() if end_time is None else int(end_time)
        self._parent = None
        tracing = self._tracing
        if tracing is not None:
            _store_add(tracing._store, self)


    def __enter__(self) -> "Span":
        self._token = _current_span.set(self)
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        if exc is not None:
            self.record_exception(exc)
            self.set_status(StatusCode.ERROR, f"{exc_type.__name__}: {exc}")
        self.end()
        token = self._token
        if token is not None:
            self._token = None
            try:
                _current_span.reset(token)
            except ValueError:  # exited in another context (a generator moved across tasks)
                _current_span.set(None)
        return False

    def __repr__(self) -> str:
        state = "live" if self.end_time is None else f"{self.duration_ms:.3f} ms"
        return f"<pyveda Span {self.name!r} {self.trace_id}/{self.span_id} {state} {self._status.name}>"

    @classmethod
    def _from_data(cls, data: Any) -> "Span":
        span = cls.__new__(cls)
        span._tracing = None
        span.name = data.name
        span.trace_id = data.trace_id
        span.span_id = data.span_id
        span.parent_span_id = data.parent_span_id
        span.trace_state = data.trace_state
        span.flags = data.flags
        span.kind = SpanKind(data.kind)
        span.start_time = data.start_time_unix_nano
        span.end_time = data.end_time_unix_nano
        span._attributes = data.attributes
        span._events = data.events or None
        span._status = StatusCode(data.status_code)
        span._status_description = data.status_message or None
        span._token = None
        span._parent = None
        return span


def _store_add(store: Any, span: Span) -> None:
    store.add(
        span.trace_id,
        span.span_id,
        span.parent_span_id or "",
        span.trace_state,
        span.flags,
        span.name,
        span.kind,
        span.start_time,
        span.end_time,
        span._attributes or None,
        span._events,
        span._status,
        span._status_description or "",
    )


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


class TracingSystem:
    """Creates spans and keeps the finished ones (at most ``capacity``; oldest dropped first).

    ``service_name`` names the service in exports (else ``OTEL_SERVICE_NAME``,
    else ``service.name`` from ``OTEL_RESOURCE_ATTRIBUTES``, else "pyveda").
    ``resource_attributes`` are added to the export resource and win over
    ``OTEL_RESOURCE_ATTRIBUTES``.

    Thread-safety: spans may be created and ended from any thread.
    """

    def __init__(self, capacity: int = 100_000, service_name: Optional[str] = None,
                 resource_attributes: Optional[Mapping[str, Any]] = None) -> None:
        if type(capacity) is not int or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        if service_name is not None and not isinstance(service_name, str):
            raise TypeError(f"service_name must be a str, got {type(service_name).__name__}")
        self._store = _core.SpanStore(capacity)
        self.service_name = service_name
        self._resource_extra = _check_attributes(resource_attributes)

    # -- spans --

    def span(
        self,
        name: str,
        attributes: Optional[Mapping[str, Any]] = None,
        parent_span_id: Optional[str] = None,
        trace_id: Optional[str] = None,
        kind: Union[SpanKind, int] = SpanKind.INTERNAL,
        context: Optional[SpanContext] = None,
        start_time: Optional[int] = None,
    ) -> Span:
        """A started span; use it as a context manager to make it current and end it.

        The parent is, first match wins: ``context`` (from :meth:`extract`),
        ``parent_span_id`` (its trace is found among the current span and its
        ancestors; pass ``trace_id`` for a parent from elsewhere), the current
        span. With none, the span starts a new trace.
        """
        if type(name) is not str:
            raise TypeError(f"span name must be a str, got {type(name).__name__}")
        span = _new_span(Span)
        span._tracing = self
        span.name = name
        span.kind = kind if type(kind) is SpanKind else SpanKind(kind)
        if attributes:
            if type(attributes) is dict and len(attributes) == 1:
                # Fast path: one attribute of a common scalar type (the full check otherwise).
                for k, v in attributes.items():
                    t = type(v)
                    if type(k) is str and (
                        t is str or t is bool or t is float or (t is int and _INT64_MIN <= v <= _INT64_MAX)
                    ):
                        span._attributes = {k: v}
                    else:
                        span._attributes = _check_attributes(attributes)
            else:
                span._attributes = _check_attributes(attributes)
        else:
            span._attributes = {}
        span._events = None
        span._status = _UNSET
        span._status_description = None
        span._token = None
        span.end_time = None
        current = _current_span.get()
        span._parent = current
        if context is not None:
            if not isinstance(context, SpanContext):
                raise TypeError(f"context must be a SpanContext (from extract()), got {type(context).__name__}")
            span.trace_id = context.trace_id
            span.parent_span_id = context.span_id
            span.trace_state = context.trace_state
            span.flags = (context.trace_flags & 0xFF) | _FLAG_HAS_IS_REMOTE | (_FLAG_IS_REMOTE if context.is_remote else 0)
            span._parent = None
        elif parent_span_id is not None:
            if isinstance(parent_span_id, Span):
                parent_span_id = parent_span_id.span_id
            span.parent_span_id = _check_hex_id("parent_span_id", parent_span_id, 16)
            span.trace_state = ""
            span.flags = _LOCAL_FLAGS
            if trace_id is None:
                ancestor = current
                while ancestor is not None and ancestor.span_id != parent_span_id:
                    ancestor = ancestor._parent
                if ancestor is None:
                    span.trace_id = current.trace_id if current is not None else _core.new_trace_id()
                else:
                    span.trace_id = ancestor.trace_id
                    span.trace_state = ancestor.trace_state
                    span.flags = (ancestor.flags & 0xFF) | _FLAG_HAS_IS_REMOTE
            else:
                span.trace_id = _check_hex_id("trace_id", trace_id, 32)
        elif current is not None:
            span.parent_span_id = current.span_id
            span.trace_id = current.trace_id
            span.trace_state = current.trace_state
            span.flags = (current.flags & 0xFF) | _FLAG_HAS_IS_REMOTE
            span.span_id = _new_span_id()
            span.start_time = _time_ns() if start_time is None else int(start_time)
            return span
        else:
            span.parent_span_id = None
            span.trace_state = ""
            span.flags = _LOCAL_FLAGS
            if trace_id is None:
                span.trace_id, span.span_id = _new_ids()
                span.start_time = _time_ns() if start_time is None else int(start_time)
                return span
            span.trace_id = _check_hex_id("trace_id", trace_id, 32)
        span.span_id = _new_span_id()
        span.start_time = _time_ns() if start_time is None else int(start_time)
        return span

    start_span = span

    @staticmethod
    def current_span() -> Optional[Span]:
        """The span current in this context, or None."""
        return _current_span.get()

    def get_spans(self) -> List[Span]:
        """The finished spans, oldest first (ended spans, not the live ones)."""
        return [Span._from_data(d) for d in self._store.snapshot()]

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
        """Writes ``traceparent`` (and ``tracestate``) for ``span`` (default: the current one) into ``headers``."""
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
        ignored (logged at debug level on the "pyveda" logger).
        """
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
        if encoding == "json":
            return _otlp_json(self._store.snapshot(), self.resource_attributes())
        if encoding == "protobuf":
            resource = self.resource_attributes()
            try:
                return self._store.encode_otlp(resource, SCOPE_NAME, __version__)
            except TypeError:  # a resource value the native encoder does not take: the protobuf runtime's path
                return _otlp_message(self._store.snapshot(), resource).SerializeToString()
        raise ValueError(f"encoding must be 'json' or 'protobuf', got {encoding!r}")

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
    if encoding not in ("json", "protobuf"):
        raise ValueError(f"encoding must be 'json' or 'protobuf', got {encoding!r}")
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
        _store_add(store, span)
    if encoding == "json":
        return _otlp_json(store.snapshot(), resource)
    try:
        return store.encode_otlp(resource, SCOPE_NAME, __version__)
    except TypeError:
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
    tags.append({"key": "otel.scope.version", "type": "string", "value": __version__})
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
    for t, name, attrs in d.events:
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
            span["events"] = [
                {"timeUnixNano": str(t), "name": name, **({"attributes": _json_attributes(a)} if a else {})}
                for t, name, a in d.events
            ]
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
                "scopeSpans": [{"scope": {"name": SCOPE_NAME, "version": __version__}, "spans": out}],
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
    scope_spans.scope.version = __version__
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
        for t, name, a in d.events:
            event = span.events.add()
            event.time_unix_nano = t
            event.name = name
            if a:
                _pb_attributes(event.attributes, a)
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
