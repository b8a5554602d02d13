"""PyVeda behind the OpenTelemetry API: code written against ``opentelemetry-api``
(and the contrib instrumentations) records into PyVeda's span store.

>>> from opentelemetry import trace
>>> import pyveda.otel
>>> provider = pyveda.otel.TracerProvider()
>>> trace.set_tracer_provider(provider)
>>> tracer = trace.get_tracer("shop")
>>> with tracer.start_as_current_span("checkout", attributes={"items": 3}):
...     pass
>>> [s.name for s in provider.tracing.get_spans()]
['checkout']

Spans are PyVeda's (made by ``provider.tracing``, a
:class:`~pyveda.telemetry.TracingSystem`), so they are exported with it
(OTLP, Jaeger) and cost what PyVeda's spans cost. There is one current span:
making the provider installs a runtime context (OpenTelemetry's
``_RuntimeContext`` interface, :class:`RuntimeContext`) that keeps
OpenTelemetry's current span and PyVeda's the same. Inside ``tracing.span(...)`` the API's
``get_current_span()`` is that span (same ids), a PyVeda span opened inside
an API span is its child, and tasks spawned inside either carry it.

Links (at the start or with ``add_link``) and ``update_name`` are recorded
as the SDK records them; a link to an invalid span context is left out, as
the SDK leaves one out that has no attributes and no trace state.

:class:`MeterProvider` (from :mod:`pyveda.otel_metrics`) is the metrics
API's provider on a PyVeda registry.

Needs ``opentelemetry-api`` (the ``otel`` extra).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Mapping, Optional, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.context import Context, _RuntimeContext
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.propagation import _SPAN_KEY

from pyveda import _core
from pyveda.otel_metrics import Meter, MeterProvider  # the metrics API: see pyveda.otel_metrics
from pyveda.telemetry.tracing import TracingSystem

__all__ = ["Meter", "MeterProvider", "RuntimeContext", "Span", "Tracer", "TracerProvider"]

_current_core_span = _core.current_span  # PyVeda's current span (a ContextVar)
_core_span_type = _core.Span


def _as_api_span(core_span: Any) -> "Span":
    return Span(core_span, None)


class RuntimeContext(_RuntimeContext):
    """OpenTelemetry's runtime context, kept in step with PyVeda's current span.

    ``attach()`` of a context whose span is one of PyVeda's also makes it
    PyVeda's current span; ``get_current()`` inside a PyVeda span opened with
    ``TracingSystem.span()`` returns a context holding that span.
    """

    def __init__(self) -> None:
        self._inner = ContextVarsRuntimeContext()

    def attach(self, context: Context) -> Any:
        span = context.get(_SPAN_KEY)
        core = span._span if type(span) is Span else None
        return self._inner.attach(context), _current_core_span.set(core)

    def get_current(self) -> Context:
        context = self._inner.get_current()
        core = _current_core_span.get()
        if core is None:
            return context
        span = context.get(_SPAN_KEY)
        if type(span) is Span and span._span is core:
            return context
        return trace.set_span_in_context(_as_api_span(core), context)

    def detach(self, token: Any) -> None:
        inner, core = token
        _current_core_span.reset(core)
        self._inner.detach(inner)


_install_lock = threading.Lock()
_RUNTIME = RuntimeContext()
_otel_current = _RUNTIME._inner._current_context  # the ContextVar behind OpenTelemetry's current Context


def _install_runtime_context() -> None:
    """Makes OpenTelemetry's context functions use :class:`RuntimeContext` (once)."""
    with _install_lock:
        if otel_context._RUNTIME_CONTEXT is not _RUNTIME:
            otel_context._RUNTIME_CONTEXT = _RUNTIME


# OpenTelemetry's SpanKind (INTERNAL=0 ... CONSUMER=4) is OTLP's minus one.
_KINDS = {kind: kind.value + 1 for kind in trace.SpanKind}
_INTERNAL = trace.SpanKind.INTERNAL  # the usual kind, told by identity (an Enum hashes in Python)


class Span(trace.Span):
    """An OpenTelemetry API span over a PyVeda span (``pyveda_span``)."""

    __slots__ = ("_span", "_provider")
    # Defaults as class attributes: a span sets only what differs (the API's Span has a __dict__).
    _context: Optional[SpanContext] = None
    _record_exception = True
    _set_status_on_exception = True

    def __init__(self, core_span: Any, provider: Optional["TracerProvider"], record_exception: bool = True,
                 set_status_on_exception: bool = True) -> None:
        self._span = core_span
        self._provider = provider
        if not record_exception:
            self._record_exception = False
        if not set_status_on_exception:
            self._set_status_on_exception = False

    @property
    def pyveda_span(self) -> Any:
        """The PyVeda span underneath."""
        return self._span

    @property
    def name(self) -> str:
        return str(self._span.name)

    @property
    def kind(self) -> trace.SpanKind:
        return trace.SpanKind(self._span._kind - 1)

    def get_span_context(self) -> SpanContext:
        context = self._context
        if context is None:
            span = self._span
            state = span.trace_state
            context = self._context = SpanContext(
                int(span.trace_id, 16), int(span.span_id, 16), False, TraceFlags(span.flags & 0xFF),
                TraceState.from_header([state]) if state else TraceState(),
            )
        return context

    def is_recording(self) -> bool:
        return bool(self._span.is_recording)

    def set_attribute(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self._span.set_attributes(attributes)

    def add_event(self, name: str, attributes: Optional[Mapping[str, Any]] = None,
                  timestamp: Optional[int] = None) -> None:
        self._span.add_event(name, attributes, timestamp)

    def add_link(self, context: SpanContext, attributes: Optional[Mapping[str, Any]] = None) -> None:
        target = _link_target(context)
        if target is not None:
            self._span.add_link(target, attributes)

    def update_name(self, name: str) -> None:
        self._span.update_name(name)

    def set_status(self, status: Any, description: Optional[str] = None) -> None:
        if isinstance(status, Status):
            code, description = status.status_code, status.description
        elif isinstance(status, StatusCode):
            code = status
        else:
            raise TypeError(f"set_status() takes a Status or a StatusCode, got {type(status).__name__}")
        self._span.set_status(code.value, description or "")

    def record_exception(self, exception: BaseException, attributes: Optional[Mapping[str, Any]] = None,
                         timestamp: Optional[int] = None, escaped: bool = False) -> None:
        extra = dict(attributes or {})
        extra.setdefault("exception.escaped", str(bool(escaped)))
        self._span.record_exception(exception, extra)

    def end(self, end_time: Optional[int] = None) -> None:
        self._span.end(end_time)

    # OpenTelemetry's span as a context manager: ends it; making it current is use_span()'s job.
    def __enter__(self) -> "Span":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None:
            self._escaped(exc_type, exc)
        self._span.end(None)

    def _escaped(self, exc_type: Any, exc: BaseException) -> None:
        """An exception left the span's block: recorded and made its status, as the start asked."""
        if self._span.is_recording:
            if self._record_exception:
                self.record_exception(exc, escaped=True)
            if self._set_status_on_exception:
                self._span.set_status(StatusCode.ERROR.value, f"{exc_type.__name__}: {exc}")

    def __repr__(self) -> str:
        return f"pyveda.otel.Span({self._span.name!r}, trace_id={self._span.trace_id}, span_id={self._span.span_id})"


def _link_target(context: Any) -> Any:
    """What the core links to for an API SpanContext: a PyVeda context tuple (None: left out)."""
    if not isinstance(context, SpanContext):
        raise TypeError(f"a link is to an opentelemetry.trace.SpanContext, got {type(context).__name__}")
    if not context.is_valid:
        return None
    return (format(context.trace_id, "032x"), format(context.span_id, "016x"), int(context.trace_flags),
            context.trace_state.to_header(), context.is_remote)


def _core_links(links: Sequence[trace.Link]) -> Any:
    """start_span(links=...) as the core takes them: (context tuple, attributes) pairs."""
    out = []
    for link in links:
        if not isinstance(link, trace.Link):
            raise TypeError(f"links must hold opentelemetry.trace.Link objects, got {type(link).__name__}")
        target = _link_target(link.context)
        if target is not None:
            out.append((target, link.attributes))
    return out


class _CurrentSpan:
    """start_as_current_span()'s context manager (and decorator): the span starts at
    ``__enter__``, is current while the block runs and ends after it."""

    __slots__ = ("_tracer", "_args", "_end_on_exit", "_span", "_token")

    def __init__(self, tracer: "Tracer", args: tuple, end_on_exit: bool) -> None:
        self._tracer = tracer
        self._args = args
        self._end_on_exit = end_on_exit

    def __enter__(self) -> Span:
        span = self._span = self._tracer.start_span(*self._args)
        if otel_context._RUNTIME_CONTEXT is _RUNTIME:
            # What attach(set_span_in_context(span)) does, without going through the API twice.
            context = Context(_otel_current.get())
            dict.__setitem__(context, _SPAN_KEY, span)  # a Context refuses item assignment; this one is new
            self._token = (_otel_current.set(context), _current_core_span.set(span._span))
        else:
            self._token = otel_context.attach(trace.set_span_in_context(span))
        return span

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        span = self._span
        try:
            if exc is not None:
                span._escaped(exc_type, exc)
        finally:
            token = self._token
            if otel_context._RUNTIME_CONTEXT is _RUNTIME and type(token) is tuple:
                _current_core_span.reset(token[1])
                _otel_current.reset(token[0])
            else:
                otel_context.detach(token)
            if self._end_on_exit:
                span._span.end(None)

    def __call__(self, fn: Any) -> Any:
        """``@tracer.start_as_current_span("name")``: a new span around each call."""
        import functools

        tracer, args, end_on_exit = self._tracer, self._args, self._end_on_exit

        @functools.wraps(fn)
        def traced(*a: Any, **k: Any) -> Any:
            with _CurrentSpan(tracer, args, end_on_exit):
                return fn(*a, **k)

        return traced


class Tracer(trace.Tracer):
    """Makes OpenTelemetry API spans that are PyVeda spans of ``provider.tracing``."""

    __slots__ = ("_provider", "_core_span")

    def __init__(self, provider: "TracerProvider") -> None:
        self._provider = provider
        self._core_span = provider.tracing.span

    def start_span(self, name: str, context: Optional[Context] = None, kind: trace.SpanKind = trace.SpanKind.INTERNAL,
                   attributes: Optional[Mapping[str, Any]] = None, links: Optional[Sequence[trace.Link]] = None,
                   start_time: Optional[int] = None, record_exception: bool = True,
                   set_status_on_exception: bool = True) -> Span:
        core_links = _core_links(links) if links else None
        otel_kind = 1 if kind is _INTERNAL else _KINDS.get(kind)
        if otel_kind is None:
            raise ValueError(f"kind must be an opentelemetry.trace.SpanKind, got {kind!r}")
        if context is None and otel_context._RUNTIME_CONTEXT is _RUNTIME:
            parent = _otel_current.get().get(_SPAN_KEY)
            if parent is None or type(parent) is Span:
                # The current span is PyVeda's (or there is none): the core finds it itself.
                return Span(self._core_span(name, attributes, None, None, otel_kind, None, start_time, core_links),
                            self._provider, record_exception, set_status_on_exception)
        else:
            parent = trace.get_current_span(context)
        if type(parent) is Span:
            core = self._core_span(name, attributes, parent._span, None, otel_kind, None, start_time, core_links)
        else:
            parent_context = parent.get_span_context()
            if parent_context.is_valid:
                remote = (
                    format(parent_context.trace_id, "032x"), format(parent_context.span_id, "016x"),
                    int(parent_context.trace_flags), parent_context.trace_state.to_header(), parent_context.is_remote,
                )
                core = self._core_span(name, attributes, None, None, otel_kind, remote, start_time, core_links)
            else:
                # No parent in the context given: a root span, whatever PyVeda's current span is.
                token = _current_core_span.set(None)
                try:
                    core = self._core_span(name, attributes, None, None, otel_kind, None, start_time, core_links)
                finally:
                    _current_core_span.reset(token)
        return Span(core, self._provider, record_exception, set_status_on_exception)

    def start_as_current_span(self, name: str, context: Optional[Context] = None,
                              kind: trace.SpanKind = trace.SpanKind.INTERNAL,
                              attributes: Optional[Mapping[str, Any]] = None,
                              links: Optional[Sequence[trace.Link]] = None, start_time: Optional[int] = None,
                              record_exception: bool = True, set_status_on_exception: bool = True,
                              end_on_exit: bool = True) -> Any:
        return _CurrentSpan(self, (name, context, kind, attributes, links, start_time, record_exception,
                                   set_status_on_exception), end_on_exit)


class TracerProvider(trace.TracerProvider):
    """``opentelemetry.trace.TracerProvider`` on PyVeda's tracer.

    ``tracing``: the :class:`~pyveda.telemetry.TracingSystem` the spans go to
    (default: a new one, with ``service_name``, ``resource_attributes`` and
    ``sampler``/``sampler_arg``, whose defaults come from ``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_TRACES_SAMPLER``/``_ARG``).
    Making one installs :class:`RuntimeContext` as OpenTelemetry's runtime
    context.

    Spans are in the store as soon as they end (``tracing.get_spans()``). To
    send them on, ``add_span_processor(BatchSpanProcessor(OTLPExporter(...)))``
    (:class:`pyveda.telemetry.BatchSpanProcessor`, with the SDK's
    ``OTEL_BSP_*`` settings); ``force_flush()`` and ``shutdown()`` flush and
    stop the processors added, as the SDK's calls do.
    """

    def __init__(self, tracing: Optional[TracingSystem] = None, *, service_name: Optional[str] = None,
                 resource_attributes: Optional[Mapping[str, Any]] = None, sampler: Optional[str] = None,
                 sampler_arg: Optional[Any] = None) -> None:
        if tracing is None:
            tracing = TracingSystem(service_name=service_name, resource_attributes=resource_attributes,
                                    sampler=sampler, sampler_arg=sampler_arg)
        elif not isinstance(tracing, TracingSystem):
            raise TypeError(f"tracing must be a pyveda.telemetry.TracingSystem, got {type(tracing).__name__}")
        elif any(v is not None for v in (service_name, resource_attributes, sampler, sampler_arg)):
            raise ValueError("give service_name, resource_attributes and the sampler to the TracingSystem, "
                             "not beside it")
        self.tracing = tracing
        self._tracer = Tracer(self)
        self._lock = threading.Lock()
        self._processors: list = []
        _install_runtime_context()

    def get_tracer(self, instrumenting_module_name: str, instrumenting_library_version: Optional[str] = None,
                   schema_url: Optional[str] = None, attributes: Optional[Mapping[str, Any]] = None) -> Tracer:
        return self._tracer

    def add_span_processor(self, span_processor: Any) -> None:
        """Adds a :class:`pyveda.telemetry.BatchSpanProcessor`; it sends the spans that end from now on.

        The OpenTelemetry SDK's own processors take SDK spans, which this
        provider does not make: passing one is a TypeError that says what to
        use instead.
        """
        from pyveda.telemetry.batch import BatchSpanProcessor

        if not isinstance(span_processor, BatchSpanProcessor):
            raise TypeError(
                "span_processor must be a pyveda.telemetry.BatchSpanProcessor (the OpenTelemetry SDK's processors "
                "and exporters take SDK spans; send PyVeda's with BatchSpanProcessor(pyveda.telemetry.OTLPExporter"
                f"(...))), got {type(span_processor).__module__}.{type(span_processor).__qualname__}"
            )
        span_processor.attach(self.tracing)
        with self._lock:
            if span_processor not in self._processors:
                self._processors.append(span_processor)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flushes each processor in turn within ``timeout_millis`` in all; True if every one finished."""
        return self._each("force_flush", timeout_millis)

    def shutdown(self) -> None:
        """Shuts each processor down (each flushes what has ended first, within its own 30 s)."""
        self._each("shutdown", None)

    def _each(self, method: str, timeout_millis: Optional[float]) -> bool:
        from pyveda.telemetry.batch import _millis

        timeout = _millis(timeout_millis, "timeout_millis")
        with self._lock:
            processors = list(self._processors)
        deadline = None if timeout is None else time.monotonic() + timeout
        done = True
        for processor in processors:
            if deadline is None:
                done = getattr(processor, method)() and done
            else:
                left = max(0.0, deadline - time.monotonic()) * 1000.0
                done = getattr(processor, method)(timeout_millis=left) and done
        return done
