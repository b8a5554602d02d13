"""Tracing: spans, context propagation, W3C trace context, Jaeger and OTLP exports."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import gc
import logging
import re
import threading

import pytest

import pyveda
from pyveda import _core
from pyveda.telemetry import Span, SpanKind, StatusCode, TracingSystem, generate_prometheus
from pyveda.telemetry.tracing import SpanContext, encode_spans, get_current_span

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


@pytest.fixture
def tracing():
    return TracingSystem(service_name="etl")


def by_name(spans):
    return {s.name: s for s in spans}


# --- the guide's example --------------------------------------------------------------------------


def load_data():
    return [1, 2, 3]


def transform(data):
    return [x * 2 for x in data]


def save_results(data):
    return len(data)


def test_guide_example_runs_as_written():
    tracing = TracingSystem()

    # Create a traced operation
    with tracing.span('data_processing', attributes={'batch_id': 123}) as span:
        # Process data
        data = load_data()

        with tracing.span('transform', parent_span_id=span.span_id) as child_span:
            transformed = transform(data)

        with tracing.span('save', parent_span_id=span.span_id) as child_span:
            save_results(transformed)

    # Export traces
    spans = tracing.get_spans()
    jaeger_format = tracing.export_jaeger()
    otlp_format = tracing.export_otlp()

    assert [s.name for s in spans] == ["transform", "save", "data_processing"]
    root = spans[2]
    assert HEX16.fullmatch(root.span_id) and HEX32.fullmatch(root.trace_id)
    assert root.parent_span_id is None
    assert root.attributes == {"batch_id": 123}
    for child in spans[:2]:
        assert child.parent_span_id == root.span_id
        assert child.trace_id == root.trace_id  # the explicit parent's trace
        assert root.start_time <= child.start_time <= child.end_time <= root.end_time
    assert child_span.name == "save" and child_span.end_time is not None
    assert len(jaeger_format["data"]) == 1 and len(jaeger_format["data"][0]["spans"]) == 3
    assert len(otlp_format["resourceSpans"][0]["scopeSpans"][0]["spans"]) == 3


# --- span fields and nesting ------------------------------------------------------------------------


def test_span_fields_while_live_and_after(tracing):
    with tracing.span("op", kind=SpanKind.SERVER) as span:
        assert span.end_time is None and span.is_recording
        assert get_current_span() is span
        assert span.duration_ms >= 0
        span.set_attribute("a", "x").set_attributes({"b": 2.5, "c": [1, 2], "d": True})
        span.add_event("checkpoint", {"n": 1})
        span.set_status("ok")
    assert get_current_span() is None
    assert span.end_time >= span.start_time > 1_600_000_000 * 10**9
    assert span.duration_ms == (span.end_time - span.start_time) / 1e6
    (done,) = tracing.get_spans()
    assert done.span_id == span.span_id and done.kind is SpanKind.SERVER
    assert done.attributes == {"a": "x", "b": 2.5, "c": [1, 2], "d": True}
    assert [(e.name, e.attributes) for e in done.events] == [("checkpoint", {"n": 1})]
    assert done.status is StatusCode.OK and done.status_description is None
    assert done.start_time == span.start_time and done.end_time == span.end_time
    span.set_attribute("late", 1)  # ignored after the end
    assert "late" not in span.attributes


def test_implicit_parent_is_the_current_span(tracing):
    with tracing.span("outer") as outer:
        with tracing.span("inner") as inner:
            assert get_current_span() is inner
        assert get_current_span() is outer
    with tracing.span("other") as other:
        pass
    spans = by_name(tracing.get_spans())
    assert spans["inner"].parent_span_id == outer.span_id
    assert spans["inner"].trace_id == outer.trace_id
    assert other.parent_span_id is None and other.trace_id != outer.trace_id


def test_explicit_parent_and_trace_id(tracing):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with tracing.span("remote-child", parent_span_id="00f067aa0ba902b7", trace_id=trace_id) as span:
        pass
    assert span.trace_id == trace_id and span.parent_span_id == "00f067aa0ba902b7"
    with pytest.raises(ValueError, match="parent_span_id"):
        tracing.span("bad", parent_span_id="00F067AA0BA902B7")
    with pytest.raises(ValueError, match="trace_id"):
        tracing.span("bad", trace_id="0" * 32)


def test_context_follows_copied_context_into_threads(tracing):
    results = {}

    def worker(key):
        with tracing.span(f"thread-{key}") as span:
            results[key] = span

    with tracing.span("parent") as parent:
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(worker, i)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        plain = threading.Thread(target=worker, args=("plain",))
        plain.start()
        plain.join()
    for i in range(4):
        assert results[i].parent_span_id == parent.span_id
        assert results[i].trace_id == parent.trace_id
    # A thread started without the context starts its own trace.
    assert results["plain"].parent_span_id is None and results["plain"].trace_id != parent.trace_id


def test_context_follows_asyncio_tasks(tracing):
    async def child(i):
        with tracing.span(f"task-{i}") as span:
            await asyncio.sleep(0)
            assert get_current_span() is span
            return span

    async def main():
        with tracing.span("root") as root:
            children = await asyncio.gather(*(child(i) for i in range(3)))
        return root, children

    root, children = asyncio.run(main())
    for span in children:
        assert span.parent_span_id == root.span_id and span.trace_id == root.trace_id
    assert len({s.span_id for s in children}) == 3


def test_exception_sets_error_records_event_and_reraises(tracing):
    with pytest.raises(KeyError):
        with tracing.span("failing"):
            raise KeyError("missing")
    (span,) = tracing.get_spans()
    assert span.status is StatusCode.ERROR
    assert span.status_description == "KeyError: 'missing'"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "KeyError"
    assert event.attributes["exception.message"] == "'missing'"
    assert "Traceback" in event.attributes["exception.stacktrace"]
    assert "KeyError: 'missing'" in event.attributes["exception.stacktrace"]


def test_record_exception_and_status_rules(tracing):
    with tracing.span("op") as span:
        try:
            raise ValueError("bad input")
        except ValueError as exc:
            span.record_exception(exc)
        span.set_status(StatusCode.ERROR, "handled")
        span.set_status(StatusCode.OK)  # OK wins over ERROR and is final
        span.set_status(StatusCode.ERROR, "ignored")
    assert span.status is StatusCode.OK and span.status_description is None
    assert span.events[0].attributes["exception.type"] == "ValueError"
    with pytest.raises(ValueError, match="status"):
        span.set_status("broken")


def test_attribute_validation_names_the_key(tracing):
    with tracing.span("op") as span:
        with pytest.raises(TypeError, match=r"attribute 'obj': value must be str, bool, int, float or a list"):
            span.set_attribute("obj", object())
        with pytest.raises(TypeError, match=r"attribute 'mixed': list items must all have one type, got int and str"):
            span.set_attribute("mixed", [1, "a"])
        with pytest.raises(TypeError, match=r"attribute 'nested': value must be"):
            span.set_attributes({"ok": 1, "nested": {"a": 1}})
        with pytest.raises(TypeError, match=r"attribute 'big': int value .* does not fit in 64 bits"):
            span.set_attribute("big", 2**64)
        with pytest.raises(TypeError, match="attribute keys must be str"):
            span.set_attribute(3, "x")
        with pytest.raises(TypeError, match=r"attribute 'none': value must be"):
            span.add_event("e", {"none": None})
        span.set_attribute("tuple", ("a", "b"))
        span.set_attribute("kind", SpanKind.SERVER)  # IntEnum -> int
    with pytest.raises(TypeError, match=r"attribute 'x'"):
        tracing.span("bad", attributes={"x": b"bytes"})
    (done,) = tracing.get_spans()
    assert done.attributes == {"tuple": ["a", "b"], "kind": 2}
    assert "ok" not in done.attributes  # the failed set_attributes changed nothing


def test_span_arguments_by_position_and_keyword(tracing):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with tracing.span("a", {"k": 1}, None, trace_id, SpanKind.PRODUCER, None, 1_700_000_000_000_000_000) as a:
        with tracing.start_span("b", parent_span_id=a) as b:  # a Span as the parent
            pass
    assert a.trace_id == trace_id and a.parent_span_id is None  # a root in a known trace
    assert a.kind is SpanKind.PRODUCER and a.start_time == 1_700_000_000_000_000_000
    assert a.attributes == {"k": 1}
    assert b.parent_span_id == a.span_id and b.trace_id == trace_id
    with tracing.span(name="c", kind=3) as c:
        c.end(c.start_time + 5_000_000)  # an explicit end wins over the block's
    assert c.kind is SpanKind.CLIENT and c.duration_ms == 5.0


def test_ancestor_parent_keeps_the_ancestors_trace(tracing):
    with tracing.span("root") as root:
        with tracing.span("middle"):
            with tracing.span("leaf", parent_span_id=root.span_id) as leaf:
                pass
    assert leaf.parent_span_id == root.span_id and leaf.trace_id == root.trace_id
    with tracing.span("unrelated"):
        with tracing.span("orphan", parent_span_id="00f067aa0ba902b7") as orphan:
            pass
    # An id that is not an ancestor: the current trace.
    assert orphan.parent_span_id == "00f067aa0ba902b7" and orphan.trace_id == get_spans_by(tracing, "unrelated").trace_id


def get_spans_by(tracing, name):
    return by_name(tracing.get_spans())[name]


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda t: t.span(), TypeError, r"span\(\) missing required argument 'name'"),
        (lambda t: t.span(b"op"), TypeError, "span name must be a str, got bytes"),
        (lambda t: t.span("op", colour="red"), TypeError, "unexpected keyword argument 'colour'"),
        (lambda t: t.span("op", None, name="x"), TypeError, "multiple values for argument 'name'"),
        (lambda t: t.span("op", None, None, None, 1, None, None, None, 9), TypeError, "at most 8 arguments"),
        (lambda t: t.span("op", kind=7), ValueError, r"kind must be a SpanKind \(0\.\.5\), got 7"),
        (lambda t: t.span("op", kind="server"), ValueError, "kind must be a SpanKind"),
        (lambda t: t.span("op", attributes=[("a", 1)]), TypeError, "attributes must be a mapping, got list"),
        (lambda t: t.span("op", context=("a", "b")), TypeError, "context must be a SpanContext"),
        (lambda t: t.span("op", context=SpanContext("0" * 32, "1" * 16)), ValueError,
         "context trace_id must be 32 lowercase hex characters"),
        (lambda t: t.span("op", parent_span_id=12), ValueError,
         "parent_span_id must be 16 lowercase hex characters, not all zero; got 12"),
        (lambda t: t.span("op", start_time="soon"), TypeError, "start_time must be an int"),
        (lambda t: t.span("op", start_time=-1), ValueError,
         r"start_time must be an int of ns since the epoch in \[0, 2\*\*63\), got -1"),
        (lambda t: t.span("op", start_time=2**70), ValueError,
         r"start_time must be an int of ns since the epoch in \[0, 2\*\*63\), got 1180591620717411303424"),
        (lambda t: t.span("op").end(end_time=-5), ValueError,
         r"end_time must be an int of ns since the epoch in \[0, 2\*\*63\), got -5"),
        (lambda t: t.span("op").add_event(3), TypeError, "event name must be a str, got int"),
        (lambda t: t.span("op").set_attributes(5), TypeError, "attributes must be a mapping, got int"),
        (lambda t: _core.Span(), TypeError, "constructor"),
    ],
)
def test_bad_span_calls_say_what_is_allowed(tracing, call, error, message):
    with pytest.raises(error, match=message):
        call(tracing)
    assert get_current_span() is None and tracing.get_spans() == []


def test_set_attribute_replaces_a_key_in_place(tracing):
    with tracing.span("op", attributes={"a": 1, "b": 2}) as span:
        span.set_attribute("a", "again")
        span.set_attributes({"c": 3.0, "b": False})
    assert list(span.attributes.items()) == [("a", "again"), ("b", False), ("c", 3.0)]


def test_an_error_while_recording_the_exception_still_ends_the_span(tracing, monkeypatch):
    def broken(self, exc, attributes=None):
        raise RuntimeError("recorder broke")

    monkeypatch.setattr(Span, "record_exception", broken)
    with pytest.raises(RuntimeError, match="recorder broke"):
        with tracing.span("op") as span:
            raise KeyError("original")
    assert not span.is_recording and get_current_span() is None
    assert span.status is StatusCode.ERROR and span.status_description == "KeyError: 'original'"
    assert [s.name for s in tracing.get_spans()] == ["op"]


def test_exception_whose_str_fails_is_still_recorded(tracing):
    class Unprintable(Exception):
        def __str__(self):
            raise ValueError("no str")

    with pytest.raises(Unprintable):
        with tracing.span("op"):
            raise Unprintable()
    (span,) = tracing.get_spans()
    assert span.status is StatusCode.ERROR and span.status_description == "Unprintable"
    assert span.events[0].attributes["exception.message"] == "<exception str() failed>"


def test_a_span_entered_and_never_exited_is_collected(tracing):
    def abandon():
        span = tracing.span("abandoned")
        span.__enter__()  # its token and context now refer to each other

    contextvars.Context().run(abandon)
    gc.collect()
    assert not [o for o in gc.get_objects() if type(o) is Span and o.name == "abandoned"]
    assert get_current_span() is None


def test_encode_spans_matches_the_systems_export(tracing):
    root = make_trace(tracing)
    spans = tracing.get_spans()
    resource = tracing.resource_attributes()
    assert encode_spans(spans, resource) == tracing.export_otlp("protobuf")
    assert encode_spans(spans, resource, encoding="json") == tracing.export_otlp("json")
    with tracing.span("live") as live:
        with pytest.raises(ValueError, match=r"spans\[1\] \('live'\) has not ended"):
            encode_spans([root, live])
    with pytest.raises(TypeError, match=r"spans\[0\] must be a pyveda Span, got dict"):
        encode_spans([{}])
    with pytest.raises(ValueError, match="encoding must be 'json' or 'protobuf'"):
        encode_spans(spans, encoding="xml")


def test_ring_buffer_drops_oldest_and_counts_in_prometheus():
    def dropped_total():
        match = re.search(r"^pyveda_spans_dropped_total (\S+)$", generate_prometheus(), re.M)
        return float(match.group(1)) if match else 0.0

    before = dropped_total()
    tracing = TracingSystem(capacity=3)
    for i in range(5):
        with tracing.span(f"s{i}"):
            pass
    assert [s.name for s in tracing.get_spans()] == ["s2", "s3", "s4"]
    assert tracing.dropped == 2 and len(tracing) == 3
    assert dropped_total() - before == 2.0
    assert "# TYPE pyveda_spans_dropped_total counter" in generate_prometheus()
    tracing.clear()
    assert tracing.get_spans() == [] and len(tracing) == 0
    with pytest.raises(ValueError, match="capacity"):
        TracingSystem(capacity=0)


# --- W3C trace context ----------------------------------------------------------------------------


def test_inject_extract_round_trip(tracing):
    headers = {}
    with tracing.span("client", kind=SpanKind.CLIENT) as client:
        tracing.inject(headers)
    assert headers == {"traceparent": f"00-{client.trace_id}-{client.span_id}-01"}

    context = tracing.extract({"TraceParent": headers["traceparent"], "tracestate": "vendor=a, other=b"})
    assert context == SpanContext(client.trace_id, client.span_id, 1, "vendor=a,other=b", True)
    with tracing.span("server", context=context, kind=SpanKind.SERVER) as server:
        out = tracing.inject({})
    assert server.trace_id == client.trace_id and server.parent_span_id == client.span_id
    assert server.flags == 0x301  # sampled, parent is remote
    assert out == {"traceparent": f"00-{server.trace_id}-{server.span_id}-01", "tracestate": "vendor=a,other=b"}
    assert tracing.inject({}) == {}  # no current span


def test_extract_known_example_and_future_version(tracing):
    ctx = tracing.extract({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"})
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and ctx.span_id == "00f067aa0ba902b7"
    assert ctx.trace_flags == 0
    future = tracing.extract({"traceparent": "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"})
    assert future is not None and future.trace_flags & 1
    with tracing.span("s", context=future) as span:
        assert tracing.inject({})["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert span.parent_span_id == "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "value",
    [
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",  # uppercase parent
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # trace id too short
        "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",  # trace id too long
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",  # parent id too short
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  # flags too short
        "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version too short
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 with more
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902zz-01",  # non-hex
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.extra",  # future version, bad separator
        "",
    ],
)
def test_invalid_traceparent_is_ignored_with_a_debug_log(tracing, value, caplog):
    with caplog.at_level(logging.DEBUG, logger="pyveda"):
        assert tracing.extract({"traceparent": value, "tracestate": "a=b"}) is None
    assert any("invalid traceparent" in r.getMessage() for r in caplog.records)
    # A span started after a failed extract begins a new trace.
    with tracing.span("s", context=tracing.extract({"traceparent": value})) as span:
        pass
    assert span.parent_span_id is None and span.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"


def test_extract_without_header(tracing):
    assert tracing.extract({}) is None


# --- exports ----------------------------------------------------------------------------------------


def make_trace(tracing):
    with pytest.raises(RuntimeError):
        with tracing.span("root", attributes={"batch_id": 123, "big": 2**60}, kind=SpanKind.SERVER) as root:
            with tracing.span("ok-child", attributes={"tags": ["a", "b"], "ratio": 0.5}) as ok:
                ok.add_event("loaded", {"rows": 10, "event": "custom"})
                ok.set_status(StatusCode.OK)
            with tracing.span("client", kind=SpanKind.CLIENT):
                pass
            raise RuntimeError("boom")
    return root


def test_jaeger_structure(tracing):
    root = make_trace(tracing)
    exported = tracing.export_jaeger()
    assert exported["total"] == 0 and exported["limit"] == 0 and exported["offset"] == 0
    assert exported["errors"] is None
    (trace,) = exported["data"]
    assert trace["traceID"] == root.trace_id
    assert trace["processes"]["p1"]["serviceName"] == "etl"
    process_tags = {t["key"]: t for t in trace["processes"]["p1"]["tags"]}
    assert process_tags["telemetry.sdk.name"]["value"] == "pyveda"
    spans = {s["operationName"]: s for s in trace["spans"]}
    r, ok, client = spans["root"], spans["ok-child"], spans["client"]
    assert r["references"] == [] and r["processID"] == "p1"
    assert ok["references"] == [{"refType": "CHILD_OF", "traceID": root.trace_id, "spanID": root.span_id}]
    assert r["startTime"] == root.start_time // 1000
    assert r["duration"] == root.end_time // 1000 - root.start_time // 1000
    assert isinstance(r["startTime"], int) and isinstance(r["duration"], int)
    tags = {t["key"]: t for t in r["tags"]}
    assert tags["batch_id"] == {"key": "batch_id", "type": "int64", "value": 123}
    assert tags["big"] == {"key": "big", "type": "int64", "value": str(2**60)}
    assert tags["span.kind"]["value"] == "server"
    assert tags["otel.status_code"]["value"] == "ERROR"
    assert tags["otel.status_description"]["value"] == "RuntimeError: boom"
    assert tags["error"] == {"key": "error", "type": "bool", "value": True}
    assert tags["otel.scope.name"]["value"] == "pyveda"
    assert r["logs"][0]["fields"][0] == {"key": "event", "type": "string", "value": "exception"}
    ok_tags = {t["key"]: t for t in ok["tags"]}
    assert ok_tags["tags"] == {"key": "tags", "type": "string", "value": '["a", "b"]'}
    assert ok_tags["ratio"] == {"key": "ratio", "type": "float64", "value": 0.5}
    assert ok_tags["otel.status_code"]["value"] == "OK" and "error" not in ok_tags
    assert "span.kind" not in ok_tags  # INTERNAL has none
    # An `event` attribute wins over the event name.
    assert ok["logs"][0]["fields"] == [
        {"key": "rows", "type": "int64", "value": 10},
        {"key": "event", "type": "string", "value": "custom"},
    ]
    assert {t["key"]: t["value"] for t in client["tags"]}["span.kind"] == "client"


def otlp_json_to_message(data):
    """OTLP/JSON -> ExportTraceServiceRequest via ParseDict, converting hex ids to base64 first."""
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    def b64(hex_id):
        return base64.b64encode(bytes.fromhex(hex_id)).decode()

    for rs in data["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = b64(span[key])
    return ParseDict(data, ExportTraceServiceRequest())


def test_otlp_protobuf_and_json_are_the_same_message(tracing):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    root = make_trace(tracing)
    raw = tracing.export_otlp(encoding="protobuf")
    assert isinstance(raw, bytes)
    message = ExportTraceServiceRequest.FromString(raw)
    as_json = tracing.export_otlp(encoding="json")
    assert message == otlp_json_to_message(as_json)

    (rs,) = message.resource_spans
    resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
    assert resource["service.name"] == "etl"
    assert resource["telemetry.sdk.name"] == "pyveda" and resource["telemetry.sdk.language"] == "python"
    (ss,) = rs.scope_spans
    assert ss.scope.name == "pyveda"
    spans = {s.name: s for s in ss.spans}
    r = spans["root"]
    assert r.trace_id.hex() == root.trace_id and r.span_id.hex() == root.span_id
    assert r.parent_span_id == b"" and spans["ok-child"].parent_span_id.hex() == root.span_id
    assert r.kind == 2 and r.status.code == 2 and r.status.message == "RuntimeError: boom"
    assert r.start_time_unix_nano == root.start_time and r.end_time_unix_nano == root.end_time
    assert r.flags == 0x101
    attrs = {kv.key: kv.value for kv in r.attributes}
    assert attrs["batch_id"].int_value == 123
    ok_attrs = {kv.key: kv.value for kv in spans["ok-child"].attributes}
    assert [v.string_value for v in ok_attrs["tags"].array_value.values] == ["a", "b"]
    assert ok_attrs["ratio"].double_value == 0.5

    # The JSON form itself: hex ids, int64 as strings, camelCase, enums as ints.
    js = {s["name"]: s for s in as_json["resourceSpans"][0]["scopeSpans"][0]["spans"]}["root"]
    assert js["kind"] == 2 and js["status"] == {"code": 2, "message": "RuntimeError: boom"}
    assert js["startTimeUnixNano"] == str(root.start_time)
    assert {"key": "batch_id", "value": {"intValue": "123"}} in js["attributes"]
    with pytest.raises(ValueError, match="encoding"):
        tracing.export_otlp(encoding="xml")


def test_resource_from_environment(monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,deployment.environment=prod%2Ceu,team=a%3Db")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    attrs = TracingSystem().resource_attributes()
    assert attrs["service.name"] == "from-attrs"
    assert attrs["deployment.environment"] == "prod,eu" and attrs["team"] == "a=b"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    assert TracingSystem().resource_attributes()["service.name"] == "from-env"
    assert TracingSystem(service_name="ctor").resource_attributes()["service.name"] == "ctor"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "good=1,bad%zz=2")
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    attrs = TracingSystem().resource_attributes()
    assert "good" not in attrs and attrs["service.name"] == "pyveda"


BAD_RESOURCE_VALUE = r"^attribute 'host\.ids': list items must all have one type, got int and str$"
BAD_RESOURCE_TYPE = (
    r"^attribute 'owner': value must be str, bool, int, float or a list of one of them, got object \(<object object"
)


def test_a_bad_resource_value_is_refused_where_it_enters_with_the_span_attribute_message(tracing):
    """One rule for every attribute: the span checker's TypeError, naming the key, in each place resources enter."""
    with tracing.span("op") as span:
        with pytest.raises(TypeError, match=BAD_RESOURCE_VALUE):  # the rule, as a span applies it
            span.set_attribute("host.ids", [1, "a"])
    for bad, message in (({"host.ids": [1, "a"]}, BAD_RESOURCE_VALUE), ({"owner": object()}, BAD_RESOURCE_TYPE)):
        with pytest.raises(TypeError, match=message):
            TracingSystem(resource_attributes=bad)
        for encoding in ("protobuf", "json"):
            with pytest.raises(TypeError, match=message):
                encode_spans([span], resource=bad, encoding=encoding)
    # nothing was str()'d on the way: a good resource keeps its types in both encodings
    good = {"service.name": "svc", "host.ids": (1, 2), "kind": SpanKind.SERVER}
    (attrs,) = [rs["resource"]["attributes"] for rs in encode_spans([span], good, "json")["resourceSpans"]]
    assert attrs == [
        {"key": "service.name", "value": {"stringValue": "svc"}},
        {"key": "host.ids", "value": {"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "2"}]}}},
        {"key": "kind", "value": {"intValue": "2"}},
    ]
    assert TracingSystem(resource_attributes=good).resource_attributes()["host.ids"] == [1, 2]


def test_matches_opentelemetry_sdk_field_by_field(tracing):
    """Same spans through the OTel SDK and its OTLP encoder: the encoded fields agree."""
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind as OtelKind
    from opentelemetry.trace import Status as OtelStatus
    from opentelemetry.trace import StatusCode as OtelStatusCode

    encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("pyveda", pyveda.__version__)

    def workload(start, kinds, set_ok):
        with pytest.raises(RuntimeError):
            with start("root", attributes={"batch_id": 123, "tags": ["a", "b"]}, kind=kinds[0]):
                with start("child", attributes={"ratio": 0.5, "flag": True}) as child:
                    child.add_event("loaded", {"rows": 10})
                    set_ok(child)
                raise RuntimeError("boom")

    workload(tracer.start_as_current_span, (OtelKind.SERVER,), lambda s: s.set_status(OtelStatus(OtelStatusCode.OK)))
    workload(tracing.span, (SpanKind.SERVER,), lambda s: s.set_status(StatusCode.OK))

    theirs = encoder.encode_spans(exporter.get_finished_spans()).resource_spans[0].scope_spans[0]
    ours = ExportTraceServiceRequest.FromString(tracing.export_otlp("protobuf")).resource_spans[0].scope_spans[0]
    assert ours.scope.name == theirs.scope.name and ours.scope.version == theirs.scope.version
    assert [s.name for s in ours.spans] == [s.name for s in theirs.spans] == ["child", "root"]

    def attrs(kvs, skip=()):
        return {kv.key: kv.value for kv in kvs if kv.key not in skip}

    for o, t in zip(ours.spans, theirs.spans):
        assert o.kind == t.kind
        assert len(o.trace_id) == len(t.trace_id) == 16 and len(o.span_id) == len(t.span_id) == 8
        assert bool(o.parent_span_id) == bool(t.parent_span_id)
        assert o.flags & 0x300 == t.flags & 0x300  # is-remote bits; we also carry the sampled bit
        assert attrs(o.attributes) == attrs(t.attributes)
        assert o.status == t.status
        assert [e.name for e in o.events] == [e.name for e in t.events]
        for oe, te in zip(o.events, t.events):
            # The SDK also writes the deprecated exception.escaped; the stack traces differ in frames.
            assert attrs(oe.attributes, {"exception.stacktrace"}) == attrs(
                te.attributes, {"exception.escaped", "exception.stacktrace"}
            )
    assert ours.spans[0].parent_span_id == ours.spans[1].span_id
    assert theirs.spans[0].parent_span_id == theirs.spans[1].span_id


# --- span limits -------------------------------------------------------------------------------------


def limited_workload(start):
    """Attributes, events and long strings past limits of 2 attributes, 2 events, 1 event attribute, 4 characters."""
    with start("op", attributes={"a": "héllo wörld", "b": ["abcdef", "x"], "c": 3}) as span:
        span.set_attribute("d", True)  # dropped: the span is full
        span.set_attribute("a", "replaced")  # an existing key: kept, cut to 4 characters
        for i in range(3):
            span.add_event(f"e{i}", {"k1": "long value", "k2": i, "k3": 0.5})


def test_span_limits_drop_count_and_export(monkeypatch):
    tracing = TracingSystem(max_attributes=2, max_events=2, max_event_attributes=1, max_attribute_length=4)
    assert tracing.span_limits == {
        "max_attributes": 2, "max_events": 2, "max_event_attributes": 1, "max_attribute_length": 4,
        "max_links": 128, "max_link_attributes": 128,
    }
    limited_workload(tracing.span)
    (span,) = tracing.get_spans()
    assert span.attributes == {"a": "repl", "b": ["abcd", "x"]}
    assert span.dropped_attributes_count == 2 and span.dropped_events_count == 1
    assert [(e.name, e.attributes, e.dropped_attributes_count) for e in span.events] == [
        ("e0", {"k1": "long"}, 2), ("e1", {"k1": "long"}, 2),
    ]
    (json_span,) = tracing.export_otlp()["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert json_span["droppedAttributesCount"] == 2 and json_span["droppedEventsCount"] == 1
    assert [e["droppedAttributesCount"] for e in json_span["events"]] == [2, 2]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    (pb_span,) = ExportTraceServiceRequest.FromString(tracing.export_otlp("protobuf")).resource_spans[0].scope_spans[0].spans
    assert (pb_span.dropped_attributes_count, pb_span.dropped_events_count) == (2, 1)
    assert [e.dropped_attributes_count for e in pb_span.events] == [2, 2]
    tags = {t["key"]: t["value"] for t in tracing.export_jaeger()["data"][0]["spans"][0]["tags"]}
    assert tags["otel.dropped_attributes_count"] == 2 and tags["otel.dropped_events_count"] == 1


def test_span_limits_match_the_opentelemetry_sdk():
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    limits = sdk_trace.SpanLimits(max_span_attributes=2, max_events=2, max_event_attributes=1, max_attribute_length=4)
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider(span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    limited_workload(provider.get_tracer("t").start_as_current_span)
    tracing = TracingSystem(max_attributes=2, max_events=2, max_event_attributes=1, max_attribute_length=4)
    limited_workload(tracing.span)

    (theirs,) = encoder.encode_spans(exporter.get_finished_spans()).resource_spans[0].scope_spans[0].spans
    (ours,) = ExportTraceServiceRequest.FromString(tracing.export_otlp("protobuf")).resource_spans[0].scope_spans[0].spans
    # Sizes, cut strings and event counts agree.
    assert len(ours.attributes) == len(theirs.attributes) == 2
    value = {kv.key: kv.value.string_value for kv in ours.attributes}["a"]
    assert value == {kv.key: kv.value.string_value for kv in theirs.attributes}["a"] == "repl"
    assert ours.dropped_events_count == theirs.dropped_events_count == 1
    assert [(len(e.attributes), e.dropped_attributes_count) for e in ours.events] == [
        (len(e.attributes), e.dropped_attributes_count) for e in theirs.events
    ] == [(1, 2), (1, 2)]
    # Which entries survive differs on purpose: the specification (common, "Attribute Limits")
    # discards the addition that would pass the limit, as the Go, JS and Ruby SDKs do, while
    # opentelemetry-sdk for Python (1.x) evicts the oldest entry instead, so the kept keys and the
    # dropped-attribute count are compared with the specification, not with the SDK.
    assert [kv.key for kv in ours.attributes] == ["a", "b"] and [e.name for e in ours.events] == ["e0", "e1"]
    assert ours.dropped_attributes_count == 2  # "c" and "d"; replacing "a" drops nothing


def test_span_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("OTEL_ATTRIBUTE_COUNT_LIMIT", "5")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "1")  # the span-specific one wins
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "0")
    tracing = TracingSystem()
    assert tracing.span_limits == {
        "max_attributes": 1, "max_events": 0, "max_event_attributes": 128, "max_attribute_length": 3,
        "max_links": 128, "max_link_attributes": 128,
    }
    with tracing.span("op", attributes={"a": "abcdef", "b": 1}) as span:
        span.add_event("dropped")
    assert span.attributes == {"a": "abc"} and span.dropped_attributes_count == 1
    assert span.events == [] and span.dropped_events_count == 1
    assert TracingSystem(max_attributes=7).span_limits["max_attributes"] == 7  # arguments beat variables

    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "many")
    monkeypatch.delenv("OTEL_ATTRIBUTE_COUNT_LIMIT")
    with pytest.warns(RuntimeWarning, match="ignoring OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT='many': not a non-negative integer"):
        assert TracingSystem().span_limits["max_attributes"] == 128


@pytest.mark.parametrize("name, value", [("max_events", -1), ("max_attributes", "3"), ("max_attribute_length", 2.5)])
def test_bad_span_limits_are_rejected(name, value):
    with pytest.raises(ValueError, match=rf"{name} must be a non-negative int below 2\*\*64 or None, got {value!r}"):
        TracingSystem(**{name: value})


# --- per-task spans on the runtime -----------------------------------------------------------------


def traced_ok(x):
    return x * 2


def traced_fail():
    raise ValueError("task failed")


class Worker:
    def run(self):
        return get_current_span().name


def test_runtime_tracing_gives_each_task_a_span():
    config = pyveda.Config.builder().threads(2).tracing(True).build()
    with pyveda.Runtime(config) as runtime:
        tracing = runtime.tracing
        assert isinstance(tracing, TracingSystem)
        assert runtime.spawn(traced_ok, 21).result() == 42
        with pytest.raises(ValueError, match="task failed"):
            runtime.spawn(traced_fail).result()
        assert runtime.spawn(Worker().run).result() == "Worker.run"
        with tracing.span("batch") as batch:
            runtime.spawn(traced_ok, 1).result()
            assert runtime.try_spawn(1.0, traced_ok, 2).result() == 4
    spans = tracing.get_spans()
    names = [s.name for s in spans]
    assert names.count("traced_ok") == 3 and "traced_fail" in names and "Worker.run" in names
    failed = by_name(spans)["traced_fail"]
    assert failed.status is StatusCode.ERROR and failed.events[0].attributes["exception.type"] == "ValueError"
    assert by_name(spans)["Worker.run"].status is StatusCode.UNSET
    in_batch = [s for s in spans if s.parent_span_id == batch.span_id]
    assert len(in_batch) == 2 and all(s.trace_id == batch.trace_id for s in in_batch)
    first = next(s for s in spans if s.name == "traced_ok")
    assert first.parent_span_id is None


def test_runtime_without_tracing_still_propagates_the_context():
    tracing = TracingSystem()

    def child():
        with tracing.span("in-task") as span:
            return span

    with pyveda.Runtime(pyveda.Config.builder().threads(1).build()) as runtime:
        assert runtime.tracing is None
        with tracing.span("spawner") as parent:
            span = runtime.spawn(child).result()
        assert runtime.spawn(get_current_span).result() is None
    assert span.parent_span_id == parent.span_id and span.trace_id == parent.trace_id


def test_span_type_is_exported():
    assert Span.__name__ == "Span" and "TracingSystem" in pyveda.telemetry.__all__


@pytest.mark.parametrize("headers", [None, [], "traceparent", 42, ("traceparent", "x")])
def test_extract_refuses_what_is_not_a_mapping(tracing, headers):
    with pytest.raises(TypeError, match=r"extract\(\) takes a mapping of header names to values .* got " + type(headers).__name__):
        tracing.extract(headers)


def test_extract_takes_a_header_message_and_inject_refuses_an_immutable_target(tracing):
    import email.message
    import types

    with tracing.span("out") as span:
        carrier = tracing.inject({})
        with pytest.raises(TypeError, match=r"inject\(\) writes into a mutable mapping .* got mappingproxy"):
            tracing.inject(types.MappingProxyType({}))
        with pytest.raises(TypeError, match=r"inject\(\) writes into a mutable mapping .* got NoneType"):
            tracing.inject(None)
    message = email.message.Message()  # what http.client and http.server give as headers
    message["Traceparent"] = carrier["traceparent"]
    context = tracing.extract(message)
    assert context is not None and context.span_id == span.span_id


def test_an_end_before_the_start_is_clamped_to_a_zero_duration(tracing):
    span = tracing.span("early", start_time=2_000_000_000)
    span.end(end_time=1_000_000_000)
    assert span.end_time == span.start_time == 2_000_000_000
    assert span.duration_ms == 0.0
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    exported = ExportTraceServiceRequest.FromString(tracing.export_otlp(encoding="protobuf"))
    (record,) = [s for rs in exported.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert record.end_time_unix_nano == record.start_time_unix_nano == 2_000_000_000


def test_the_native_tracer_takes_its_span_class_and_checks_it():
    plain = _core.Tracer(4)
    with plain.span("op") as span:
        pass
    assert type(span) is _core.Span and [s.name for s in plain.get_spans()] == ["op"]
    with pytest.raises(TypeError, match=r"span_class must be pyveda._core.Span or a subclass of it, got <class 'int'>"):
        _core.Tracer(4, span_class=int)


def test_a_span_given_as_parent_keeps_its_own_trace_outside_the_current_chain(tracing):
    with tracing.span("elsewhere") as other:
        pass
    with tracing.span("current") as current:
        with tracing.span("child", parent_span_id=other) as child:
            pass
    assert child.parent_span_id == other.span_id and child.trace_id == other.trace_id != current.trace_id


def test_record_exception_takes_only_exceptions_and_user_attributes_win(tracing):
    with tracing.span("op") as span:
        with pytest.raises(TypeError, match=r"record_exception\(\) takes an exception instance, got str \('boom'\)"):
            span.record_exception("boom")
        try:
            raise ValueError("bad")
        except ValueError as e:
            span.record_exception(e, {"exception.message": "mine", "retry": 2})
    (event,) = span.events
    assert event.name == "exception" and list(event.attributes) == [
        "exception.type", "exception.message", "exception.stacktrace", "retry"]
    assert event.attributes["exception.message"] == "mine" and "ValueError: bad" in event.attributes["exception.stacktrace"]
