"""pyveda.otel: the OpenTelemetry API (and its contrib instrumentations) on PyVeda's tracer.

The API's documented behaviour is checked against PyVeda: the current span,
context attach/detach, use_span(end_on_exit=...), non-recording and invalid
parents, status, exceptions, events, kinds; one current span shared with
TracingSystem.span(); W3C propagation; and the contrib WSGI middleware and
requests instrumentation across a real HTTP hop on 127.0.0.1.
"""

from __future__ import annotations

import threading
import wsgiref.simple_server

import pytest

trace = pytest.importorskip("opentelemetry.trace")
from opentelemetry import context as otel_context  # noqa: E402
from opentelemetry import propagate  # noqa: E402
from opentelemetry.trace import Status, StatusCode  # noqa: E402

import pyveda as veda  # noqa: E402
import pyveda.otel  # noqa: E402
from pyveda.telemetry import SpanKind as VedaKind  # noqa: E402


@pytest.fixture
def provider():
    return pyveda.otel.TracerProvider(service_name="otel-test")


@pytest.fixture
def tracer(provider):
    return provider.get_tracer("tests")


def spans_by_name(provider):
    return {s.name: s for s in provider.tracing.get_spans()}


def test_start_as_current_span_nests_and_records(provider, tracer):
    with tracer.start_as_current_span("outer", attributes={"k": 1}, kind=trace.SpanKind.SERVER) as outer:
        assert trace.get_current_span() is outer
        assert outer.is_recording()
        with tracer.start_as_current_span("inner") as inner:
            assert trace.get_current_span() is inner
            inner.add_event("step", {"n": 2})
            inner.set_status(Status(StatusCode.OK))
        assert trace.get_current_span() is outer
    assert not trace.get_current_span().get_span_context().is_valid
    assert not outer.is_recording()
    spans = spans_by_name(provider)
    assert spans["inner"].parent_span_id == spans["outer"].span_id
    assert spans["inner"].trace_id == spans["outer"].trace_id
    assert spans["outer"].attributes == {"k": 1}
    assert spans["outer"].kind == VedaKind.SERVER
    assert spans["inner"].kind == VedaKind.INTERNAL
    assert [e.name for e in spans["inner"].events] == ["step"]
    assert spans["inner"].status == StatusCode.OK.value
    context = outer.get_span_context()
    assert format(context.trace_id, "032x") == spans["outer"].trace_id
    assert format(context.span_id, "016x") == spans["outer"].span_id
    assert context.trace_flags.sampled and not context.is_remote


def test_exceptions_are_recorded_and_set_the_status(provider, tracer):
    with pytest.raises(KeyError):
        with tracer.start_as_current_span("fails"):
            raise KeyError("missing")
    with pytest.raises(ValueError):
        with tracer.start_as_current_span("quiet", record_exception=False, set_status_on_exception=False):
            raise ValueError("x")
    spans = spans_by_name(provider)
    assert spans["fails"].status == StatusCode.ERROR.value
    event = spans["fails"].events[0]
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "KeyError"
    assert event.attributes["exception.escaped"] == "True"
    assert spans["quiet"].status == StatusCode.UNSET.value and spans["quiet"].events == []


def test_use_span_and_detach(provider, tracer):
    span = tracer.start_span("manual")
    assert not trace.get_current_span().get_span_context().is_valid  # start_span does not make it current
    with trace.use_span(span, end_on_exit=False):
        assert trace.get_current_span() is span
    assert span.is_recording()  # not ended
    token = otel_context.attach(trace.set_span_in_context(span))
    assert trace.get_current_span() is span
    otel_context.detach(token)
    assert not trace.get_current_span().get_span_context().is_valid
    with trace.use_span(span, end_on_exit=True):
        pass
    assert not span.is_recording()
    assert "manual" in spans_by_name(provider)


def test_invalid_and_explicit_root_contexts_start_new_traces(provider, tracer):
    with tracer.start_as_current_span("current") as current:
        invalid = trace.set_span_in_context(trace.INVALID_SPAN)
        root = tracer.start_span("root", context=invalid)
        empty = tracer.start_span("empty", context=otel_context.Context())
        child = tracer.start_span("child")
        for s in (root, empty, child):
            s.end()
    spans = spans_by_name(provider)
    assert spans["root"].parent_span_id is None and spans["root"].trace_id != spans["current"].trace_id
    assert spans["empty"].parent_span_id is None
    assert spans["child"].parent_span_id == spans["current"].span_id
    assert current.get_span_context().is_valid


def test_a_remote_parent_from_the_w3c_propagator(provider, tracer):
    carrier = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "k=v"}
    context = propagate.extract(carrier)
    with tracer.start_as_current_span("server", context=context, kind=trace.SpanKind.SERVER) as span:
        out = {}
        propagate.inject(out)
    record = spans_by_name(provider)["server"]
    assert record.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert record.parent_span_id == "00f067aa0ba902b7"
    assert out["traceparent"] == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{record.span_id}-01"
    assert span.get_span_context().trace_state.get("k") == "v"


def test_one_current_span_with_tracing_system_and_tasks(provider, tracer, global_runtime):
    tracing = provider.tracing
    with tracing.span("native") as native:
        current = trace.get_current_span()
        assert format(current.get_span_context().span_id, "016x") == native.span_id
        with tracer.start_as_current_span("api") as api:
            with tracing.span("native-child") as native_child:
                pass
            # Spawned tasks carry the current span.
            veda.init()
            seen = veda.spawn(lambda: trace.get_current_span().get_span_context().span_id).result(timeout=30)
            assert seen == api.get_span_context().span_id
    spans = spans_by_name(provider)
    assert spans["api"].parent_span_id == native.span_id
    assert spans["native-child"].parent_span_id == spans["api"].span_id
    assert native_child.trace_id == native.trace_id


def test_bad_input_says_what_is_allowed(provider, tracer):
    with pytest.raises(TypeError, match="set_status\\(\\) takes a Status or a StatusCode, got str"):
        tracer.start_span("x").set_status("ok")
    with pytest.raises(ValueError, match="kind must be an opentelemetry.trace.SpanKind, got 7"):
        tracer.start_span("x", kind=7)
    with pytest.raises(TypeError, match="tracing must be a pyveda.telemetry.TracingSystem, got dict"):
        pyveda.otel.TracerProvider(tracing={})
    with pytest.raises(TypeError, match="attribute"):
        tracer.start_span("x", attributes={"k": object()})


def test_links_and_update_name_are_recorded_and_exported(provider, tracer):
    other = tracer.start_span("other")
    other.end()
    remote = trace.SpanContext(0xABC, 0xDEF, True, trace.TraceFlags(1), trace.TraceState([("k", "v")]))
    span = tracer.start_span("linked", links=[trace.Link(other.get_span_context(), {"why": "batch"}),
                                              trace.Link(trace.INVALID_SPAN_CONTEXT)])  # invalid: left out
    span.add_link(remote, {"n": 2})
    span.update_name("renamed")
    span.end()
    span.update_name("after the end")  # ignored, as the SDK ignores it
    record = spans_by_name(provider)["renamed"]
    assert [(link.context.trace_id, link.context.span_id, link.attributes) for link in record.links] == [
        (other.pyveda_span.trace_id, other.pyveda_span.span_id, {"why": "batch"}),
        (format(0xABC, "032x"), format(0xDEF, "016x"), {"n": 2}),
    ]
    assert record.links[1].context.trace_state == "k=v" and record.links[1].context.is_remote
    assert not record.links[0].context.is_remote
    assert record.dropped_links_count == 0

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(provider.tracing.export_otlp(encoding="protobuf"))
    exported = {s.name: s for s in request.resource_spans[0].scope_spans[0].spans}["renamed"]
    assert [link.span_id.hex() for link in exported.links] == [other.pyveda_span.span_id, format(0xDEF, "016x")]
    assert exported.links[1].trace_state == "k=v" and exported.links[1].flags == 0x301
    assert exported.links[0].attributes[0].key == "why"
    jaeger = [s for t in provider.tracing.export_jaeger()["data"] for s in t["spans"]]
    refs = {s["operationName"]: s["references"] for s in jaeger}
    assert refs["renamed"][0] == {"refType": "FOLLOWS_FROM", "traceID": other.pyveda_span.trace_id,
                                  "spanID": other.pyveda_span.span_id}


def test_link_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "1")
    monkeypatch.setenv("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "1")
    provider = pyveda.otel.TracerProvider()
    assert provider.tracing.span_limits["max_links"] == 1
    tracer = provider.get_tracer("limits")
    a, b = tracer.start_span("a"), tracer.start_span("b")
    span = tracer.start_span("linked", links=[trace.Link(a.get_span_context(), {"x": 1, "y": 2}),
                                              trace.Link(b.get_span_context())])
    span.end()
    record = spans_by_name(provider)["linked"]
    assert len(record.links) == 1 and record.dropped_links_count == 1
    assert record.links[0].attributes == {"x": 1} and record.links[0].dropped_attributes_count == 1


def test_bad_links_say_what_is_allowed(provider, tracer):
    with pytest.raises(TypeError, match="links must hold opentelemetry.trace.Link objects, got str"):
        tracer.start_span("x", links=["nope"])
    with pytest.raises(TypeError, match="a link is to an opentelemetry.trace.SpanContext, got int"):
        tracer.start_span("x").add_link(5)
    with pytest.raises(TypeError, match="a link is to a Span or a SpanContext, got int"):
        provider.tracing.span("x", links=[5])
    with pytest.raises(TypeError, match="span name must be a str, got int"):
        tracer.start_span("x").update_name(3)


def test_contrib_wsgi_and_requests_across_a_real_hop(provider):
    requests = pytest.importorskip("requests")
    wsgi = pytest.importorskip("opentelemetry.instrumentation.wsgi")
    instrumentation = pytest.importorskip("opentelemetry.instrumentation.requests")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, wsgi.OpenTelemetryMiddleware(app, tracer_provider=provider),
        handler_class=type("Quiet", (wsgiref.simple_server.WSGIRequestHandler,), {"log_message": lambda *a: None}),
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    instrumentor = instrumentation.RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        response = requests.get(f"http://127.0.0.1:{server.server_port}/hello?x=1", timeout=10)
        assert response.status_code == 200 and response.text == "hello"
    finally:
        instrumentor.uninstrument()
        server.shutdown()
        server.server_close()
        thread.join(10)
    spans = provider.tracing.get_spans()
    client = [s for s in spans if s.kind == VedaKind.CLIENT]
    server_spans = [s for s in spans if s.kind == VedaKind.SERVER]
    assert len(client) == 1 and len(server_spans) == 1, [(s.name, s.kind) for s in spans]
    assert server_spans[0].parent_span_id == client[0].span_id  # traceparent crossed the hop
    assert server_spans[0].trace_id == client[0].trace_id
    # Semantic conventions as the instrumentations set them (old or new names).
    assert client[0].attributes.get("http.request.method", client[0].attributes.get("http.method")) == "GET"
    status = server_spans[0].attributes.get("http.response.status_code",
                                            server_spans[0].attributes.get("http.status_code"))
    assert status == 200
    # Both in one OTLP export.
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(provider.tracing.export_otlp("protobuf"))
    exported = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert {s.span_id.hex() for s in exported} >= {client[0].span_id, server_spans[0].span_id}
    resource = {a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "otel-test"
    assert resource["service.instance.id"]


def test_samplers_decide_at_the_start_and_unsampled_spans_are_not_stored():
    from pyveda.telemetry import TracingSystem

    provider = pyveda.otel.TracerProvider(sampler="always_off")
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("dropped", attributes={"k": 1}) as span:
        assert not span.is_recording()
        assert not span.get_span_context().trace_flags.sampled
        carrier = {}
        propagate.inject(carrier)
        assert carrier["traceparent"].endswith("-00")  # the context still propagates
        with provider.tracing.span("native child") as child:
            assert not child.is_recording  # parent-based would follow; always_off drops it anyway
    assert provider.tracing.get_spans() == []
    assert provider.tracing.sampler == "AlwaysOffSampler"
    # Parent-based (the default) follows a remote parent's flag.
    default = pyveda.otel.TracerProvider()
    assert default.tracing.sampler == "ParentBased{root:AlwaysOnSampler}"
    unsampled = propagate.extract({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"})
    assert not default.get_tracer("t").start_span("s", context=unsampled).is_recording()
    # traceidratio keeps about that share of traces.
    half = TracingSystem(sampler="traceidratio", sampler_arg=0.5)
    for _ in range(2000):
        with half.span("s"):
            pass
    assert 800 <= len(half.get_spans()) <= 1200


def test_bad_samplers_say_what_is_allowed(monkeypatch):
    from pyveda.telemetry import TracingSystem

    with pytest.raises(ValueError, match="^unknown sampler 'sometimes'; expected one of: always_on, always_off, "
                                         "traceidratio, parentbased_always_on"):
        TracingSystem(sampler="sometimes")
    with pytest.raises(ValueError, match=r"ratio must be a number in \[0, 1\], got 1.5"):
        TracingSystem(sampler="traceidratio", sampler_arg=1.5)
    with pytest.raises(TypeError, match="sampler must be a str"):
        TracingSystem(sampler=1)
    with pytest.raises(ValueError, match="sampler_arg needs sampler="):
        TracingSystem(sampler_arg=0.5)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "bogus")
    with pytest.warns(RuntimeWarning, match="ignoring OTEL_TRACES_SAMPLER='bogus': expected one of"):
        assert TracingSystem().sampler == "ParentBased{root:AlwaysOnSampler}"
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "lots")
    with pytest.warns(RuntimeWarning, match=r"ignoring OTEL_TRACES_SAMPLER_ARG='lots': expected a ratio in \[0, 1\]"):
        assert TracingSystem().sampler == "ParentBased{root:TraceIdRatioBased{1}}"
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    assert TracingSystem().sampler == "ParentBased{root:TraceIdRatioBased{0.25}}"
