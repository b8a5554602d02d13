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

This module is the API. Its neighbours hold one concept each:
:mod:`pyveda.telemetry.propagation` (W3C ``traceparent``/``tracestate``,
behind :meth:`TracingSystem.inject`/:meth:`~TracingSystem.extract`),
:mod:`pyveda.telemetry.jaeger` (the Jaeger JSON model) and
:mod:`pyveda.telemetry.otlp_json` (the OTLP/JSON dict, read back from the
protobuf bytes the core encodes, so both encodings are one message).
"""

from __future__ import annotations

import contextvars
import enum
import os
import warnings
import weakref
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple, Union

from pyveda import _core
from pyveda.telemetry import propagation
from pyveda.telemetry.otlp import SCOPE_NAME, SCOPE_VERSION

__all__ = [
    "Span",
    "encode_spans",
    "SpanContext",
    "SpanEvent",
    "SpanKind",
    "SpanLink",
    "StatusCode",
    "TracingSystem",
    "get_current_span",
]

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


class SpanLink(NamedTuple):
    """A link from a span to another span (``context``: the linked span's :class:`SpanContext`)."""

    context: SpanContext
    attributes: Dict[str, Any]
    dropped_attributes_count: int = 0  # past the tracing system's max_link_attributes


def _links(raw: Any) -> List[SpanLink]:
    return [
        SpanLink(SpanContext(trace_id, span_id, flags & 0xFF, state, bool(flags & 0x200)), attrs, dropped)
        for trace_id, span_id, state, flags, attrs, dropped in raw
    ]


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
    ``duration_ms``, ``attributes``, ``events``, ``links``, ``status``,
    ``status_description``.

    ``set_attribute``, ``set_attributes``, ``add_event``, ``add_link``,
    ``update_name``, ``end`` and the
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
    def links(self) -> List[SpanLink]:
        return _links(self._links)

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


_SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
             "parentbased_traceidratio")


def _sampler_settings(sampler: Optional[str], sampler_arg: Optional[Union[float, str]]) -> Dict[str, str]:
    """The core's sampler name and ratio text: the arguments (checked), else the OTEL_TRACES_SAMPLER variables."""
    if sampler is not None:
        if not isinstance(sampler, str):
            raise TypeError(f"sampler must be a str (one of: {', '.join(_SAMPLERS)}), got {type(sampler).__name__}")
        if sampler_arg is None:
            arg = ""
        elif isinstance(sampler_arg, bool) or not isinstance(sampler_arg, (int, float, str)):
            raise TypeError(f"sampler_arg must be a ratio in [0, 1], got {type(sampler_arg).__name__}")
        else:
            arg = repr(float(sampler_arg)) if not isinstance(sampler_arg, str) else sampler_arg
        return {"sampler": sampler, "sampler_arg": arg}
    if sampler_arg is not None:
        raise ValueError("sampler_arg needs sampler= (traceidratio or parentbased_traceidratio)")
    name = os.environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    arg = os.environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if not name:
        return {}
    if name not in _SAMPLERS:
        warnings.warn(f"pyveda: ignoring OTEL_TRACES_SAMPLER={name!r}: expected one of {', '.join(_SAMPLERS)}; "
                      "using parentbased_always_on", RuntimeWarning, stacklevel=3)
        return {}
    if "traceidratio" in name and arg:
        try:
            ratio = float(arg)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            warnings.warn(f"pyveda: ignoring OTEL_TRACES_SAMPLER_ARG={arg!r}: expected a ratio in [0, 1]; using 1.0",
                          RuntimeWarning, stacklevel=3)
            arg = ""
    return {"sampler": name, "sampler_arg": arg if "traceidratio" in name else ""}


class TracingSystem(_core.Tracer):
    """Creates spans and keeps the finished ones (at most ``capacity``; oldest dropped first).

    ``service_name`` names the service in exports (else ``OTEL_SERVICE_NAME``,
    else ``service.name`` from ``OTEL_RESOURCE_ATTRIBUTES``, else "pyveda").
    ``resource_attributes`` are added to the export resource and win over
    ``OTEL_RESOURCE_ATTRIBUTES``.

    ``span(name, attributes=None, parent_span_id=None, trace_id=None,
    kind=SpanKind.INTERNAL, context=None, start_time=None, links=None)`` (native, from
    ``pyveda._core.Tracer``) returns a started :class:`Span`; use it as a
    context manager to make it current and end it. The parent is, first match
    wins: ``context`` (a :class:`SpanContext` from :meth:`extract`),
    ``parent_span_id`` (a Span: its own trace; a span id: its trace is found
    among the current span and its ancestors, else the current trace; pass
    ``trace_id`` for a parent from elsewhere), the current span. The rule is
    the core's (``veda::choose_parent``). With none, the span starts
    a new trace (in ``trace_id`` if given). ``start_time`` is in ns since the
    epoch (default now). ``links`` lists the spans this one is linked to:
    each a Span, a SpanContext, or a ``(Span or SpanContext, attributes)``
    pair (``span.add_link(...)`` adds one later). Bad names, ids, kinds,
    links and attributes raise TypeError or ValueError saying what is allowed.

    Span limits, as the OpenTelemetry SDK's: a span keeps at most
    ``max_attributes`` attributes, ``max_events`` events and ``max_links``
    links, an event at most ``max_event_attributes`` attributes and a link
    ``max_link_attributes`` (128 each by default), and string values at most
    ``max_attribute_length`` characters (default: whole). What goes past them
    is dropped and counted in the span's ``dropped_attributes_count`` /
    ``dropped_events_count`` / ``dropped_links_count`` (and the event's or
    link's), which the exports carry. Unset arguments come from
    ``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`` (else ``OTEL_ATTRIBUTE_COUNT_LIMIT``),
    ``OTEL_SPAN_EVENT_COUNT_LIMIT``, ``OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT``,
    ``OTEL_SPAN_LINK_COUNT_LIMIT``, ``OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`` and
    ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`` (else
    ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``); a variable that is not a
    non-negative integer is ignored with a warning.

    Sampling, as OpenTelemetry's samplers decide it at the span's start:
    ``sampler`` is ``always_on``, ``always_off``, ``traceidratio``,
    ``parentbased_always_on`` (the default), ``parentbased_always_off`` or
    ``parentbased_traceidratio``, and ``sampler_arg`` the ratio in [0, 1] of
    the ratio samplers (default 1.0); unset, they come from
    ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``. A bad argument
    raises ValueError naming what is allowed; a bad variable is ignored with a
    warning and the default used. An unsampled span keeps its ids (its
    context still propagates, with the sampled flag clear), records nothing
    and never reaches the store; ``sampler`` reads the sampler back as the
    SDK describes it.

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
        max_links: Optional[int] = None,
        max_link_attributes: Optional[int] = None,
        sampler: Optional[str] = None,
        sampler_arg: Optional[Union[float, str]] = None,
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
            max_links=_span_limit("max_links", max_links, ("OTEL_SPAN_LINK_COUNT_LIMIT",), 128),
            max_link_attributes=_span_limit(
                "max_link_attributes", max_link_attributes, ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",), 128
            ),
            **_sampler_settings(sampler, sampler_arg),
        )
        self.service_name = service_name
        self._resource_extra = _check_attributes(resource_attributes)
        _LIVE.add(self)

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
        See :func:`pyveda.telemetry.propagation.inject`.
        """
        return propagation.inject(headers, _current_span.get() if span is None else span)

    def extract(self, headers: Mapping[str, Any]) -> Optional[SpanContext]:
        """The remote parent in ``traceparent``/``tracestate`` headers, or None.

        Pass it as ``span(..., context=...)``. An invalid ``traceparent`` is
        ignored (logged at debug level on the "pyveda" logger). ``headers`` is
        a mapping (a dict, or an object with ``get()`` and ``items()`` such as
        ``http.client.HTTPMessage``); anything else is a TypeError. See
        :func:`pyveda.telemetry.propagation.extract`.
        """
        parsed = propagation.extract(headers)
        return None if parsed is None else SpanContext(*parsed, is_remote=True)

    # -- export --

    def resource_attributes(self) -> Dict[str, Any]:
        """The resource describing this process in exports (see pyveda.telemetry.otlp.resource_attributes)."""
        from pyveda.telemetry.otlp import resource_attributes

        extra = dict(self._resource_extra)
        if self.service_name:
            extra["service.name"] = self.service_name
        return resource_attributes(extra)

    def export_jaeger(self) -> Dict[str, Any]:
        """The finished spans in the Jaeger JSON model (``/api/traces`` envelope), one trace per trace id.

        See :mod:`pyveda.telemetry.jaeger`.
        """
        from pyveda.telemetry.jaeger import jaeger_json

        return jaeger_json(self._store.snapshot(), self.resource_attributes())

    def export_otlp(self, encoding: str = "json") -> Union[Dict[str, Any], bytes]:
        """An OTLP ``ExportTraceServiceRequest`` of the finished spans.

        ``"protobuf"``: the serialised bytes, encoded by the core;
        ``encoding="json"``: the OTLP/JSON dict of those same bytes (hex ids,
        64-bit ints as strings, enums as ints; see
        :mod:`pyveda.telemetry.otlp_json`).
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
    """The store's spans as one OTLP request, encoded by the core: protobuf bytes, or their OTLP/JSON dict.

    ``resource`` holds checked attribute values; the core raises the attribute
    checker's TypeError (naming the key) for any other.
    """
    data = store.encode_otlp(resource, SCOPE_NAME, SCOPE_VERSION)
    if encoding == "json":
        from pyveda.telemetry.otlp_json import request_dict

        return request_dict(data, "traces")
    return data


# --- runtime hook -------------------------------------------------------------------------------


def _traced_call(tracing: TracingSystem, name: str, fn: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    with tracing.span(name, attributes={"pyveda.task": True}):
        return fn(*args, **kwargs)


def _task_name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__qualname__


# Every TracingSystem alive, for the fork hook below.
_LIVE: "weakref.WeakSet[TracingSystem]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The parent exports its own spans: a child starts with empty stores, so
    # an exporter in the child never sends the parent's spans a second time.
    for tracing in list(_LIVE):
        tracing.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
