"""OTLP/JSON derived from the native protobuf bytes (pyveda.telemetry.otlp_json).

The oracle here is independent of the module under test: the bytes are parsed
with opentelemetry-proto and every field is turned into its OTLP/JSON form by
hand, from the OTLP specification's rules (lowerCamelCase names, hex ids,
enums as integers, 64-bit integers as decimal strings, non-finite doubles as
"NaN"/"Infinity"/"-Infinity", proto3 defaults left out), without json_format.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from pyveda.telemetry import SpanKind, TracingSystem
from pyveda.telemetry.otlp_json import request_dict
from pyveda.telemetry.tracing import encode_spans

trace_pb2 = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
metrics_pb2 = pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")

NAN, INF = float("nan"), float("inf")

# every attribute type the core takes, with the edge values of each
ATTRIBUTES = {
    "str": "text",
    "str.empty": "",
    "str.unicode": "naïve ✓",
    "bool.true": True,
    "bool.false": False,
    "int": 7,
    "int.zero": 0,
    "int.beyond_2_53": 2**53 + 1,
    "int.max": 2**63 - 1,
    "int.min": -(2**63),
    "float": 0.25,
    "float.zero": 0.0,
    "float.nan": NAN,
    "float.inf": INF,
    "float.-inf": -INF,
    "list.str": ["a", ""],
    "list.bool": [True, False],
    "list.int": [1, 2**60, -1],
    "list.float": [0.5, NAN, -INF],
    "list.empty": [],
}
RESOURCE = {"service.name": "svc", "host.count": 2**62, "ratio": INF, "zones": ["eu", "us"], "on": True}


def json_double(x):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def json_any(value):
    which = value.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": value.string_value}
    if which == "bool_value":
        return {"boolValue": value.bool_value}
    if which == "int_value":
        return {"intValue": str(value.int_value)}
    if which == "double_value":
        return {"doubleValue": json_double(value.double_value)}
    if which == "array_value":
        items = [json_any(v) for v in value.array_value.values]
        return {"arrayValue": {"values": items} if items else {}}
    raise AssertionError(f"unexpected AnyValue {which}")


def json_attributes(kvs):
    return [{"key": kv.key, "value": json_any(kv.value)} for kv in kvs]


def present(**fields):
    """The fields that are not proto3 defaults (0, "", empty list or message)."""
    return {k: v for k, v in fields.items() if v not in (0, "", [], {})}


def json_span(s):
    return present(
        traceId=s.trace_id.hex(),
        spanId=s.span_id.hex(),
        traceState=s.trace_state,
        parentSpanId=s.parent_span_id.hex(),
        flags=s.flags,
        name=s.name,
        kind=s.kind,
        startTimeUnixNano=str(s.start_time_unix_nano) if s.start_time_unix_nano else "",
        endTimeUnixNano=str(s.end_time_unix_nano) if s.end_time_unix_nano else "",
        attributes=json_attributes(s.attributes),
        droppedAttributesCount=s.dropped_attributes_count,
        events=[
            present(
                timeUnixNano=str(e.time_unix_nano),
                name=e.name,
                attributes=json_attributes(e.attributes),
                droppedAttributesCount=e.dropped_attributes_count,
            )
            for e in s.events
        ],
        droppedEventsCount=s.dropped_events_count,
        links=[
            present(traceId=link.trace_id.hex(), spanId=link.span_id.hex(), traceState=link.trace_state)
            for link in s.links
        ],
        droppedLinksCount=s.dropped_links_count,
        status=present(message=s.status.message, code=s.status.code),
    )


def json_trace_request(message):
    return {
        "resourceSpans": [
            present(
                resource=present(attributes=json_attributes(rs.resource.attributes)),
                scopeSpans=[
                    present(
                        scope=present(name=ss.scope.name, version=ss.scope.version),
                        spans=[json_span(s) for s in ss.spans],
                    )
                    for ss in rs.scope_spans
                ],
            )
            for rs in message.resource_spans
        ]
    }


def python_value(value):
    which = value.WhichOneof("value")
    if which == "array_value":
        return [python_value(v) for v in value.array_value.values]
    return getattr(value, which)


def same(a, b):
    """Equality that takes NaN as equal to NaN (recursively through lists)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def same_attributes(kvs, expected):
    decoded = {kv.key: python_value(kv.value) for kv in kvs}
    return list(decoded) == list(expected) and all(same(decoded[k], expected[k]) for k in expected)


@pytest.fixture
def spans():
    """A remote parent with trace_state, a server span with every attribute type, events and drops, an error child."""
    tracing = TracingSystem(max_attributes=len(ATTRIBUTES), max_events=2, max_event_attributes=1)
    context = tracing.extract({
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "vendor=a,other=b",
    })
    with tracing.span("server", attributes=ATTRIBUTES, kind=SpanKind.SERVER, context=context) as server:
        server.set_attributes({"over.1": 1, "over.2": "x"})  # past max_attributes: dropped, counted
        server.add_event("loaded", {"rows": 10, "bytes": 2**40})  # one attribute kept, one dropped
        server.add_event("empty")
        server.add_event("over")  # past max_events: dropped, counted
        with tracing.span("client", kind=SpanKind.CLIENT) as client:
            client.set_status("error", "boom: 'quoted' \"text\"")
        with tracing.span("unspecified", kind=SpanKind.UNSPECIFIED):
            pass
    return tracing.get_spans()


def test_the_json_dict_is_the_protobuf_bytes_field_for_field(spans):
    data = encode_spans(spans, RESOURCE, "protobuf")
    message = trace_pb2.ExportTraceServiceRequest.FromString(data)
    as_json = encode_spans(spans, RESOURCE, "json")
    assert as_json == json_trace_request(message)
    assert request_dict(data, "traces") == as_json
    json.dumps(as_json, allow_nan=False)  # valid JSON as it stands: no bare NaN/Infinity

    # ... and the bytes carry what the spans hold, so the comparison above covers every field.
    (rs,) = message.resource_spans
    assert same_attributes(rs.resource.attributes, {**RESOURCE, "zones": ["eu", "us"]})
    (ss,) = rs.scope_spans
    assert (ss.scope.name, ss.scope.version) == ("pyveda", pyveda_version())
    assert [s.name for s in ss.spans] == [s.name for s in spans] == ["client", "unspecified", "server"]
    for ours, pb in zip(spans, ss.spans):
        assert pb.trace_id.hex() == ours.trace_id and pb.span_id.hex() == ours.span_id
        assert pb.parent_span_id.hex() == ours.parent_span_id
        assert pb.trace_state == ours.trace_state == "vendor=a,other=b"
        assert pb.flags == ours.flags and pb.kind == ours.kind
        assert (pb.start_time_unix_nano, pb.end_time_unix_nano) == (ours.start_time, ours.end_time)
        assert same_attributes(pb.attributes, ours.attributes)
        assert [(e.time_unix_nano, e.name, e.dropped_attributes_count) for e in pb.events] == [
            (e.time_unix_nano, e.name, e.dropped_attributes_count) for e in ours.events
        ]
        assert all(same_attributes(p.attributes, e.attributes) for p, e in zip(pb.events, ours.events))
        assert (pb.dropped_attributes_count, pb.dropped_events_count) == (
            ours.dropped_attributes_count, ours.dropped_events_count)
        assert (pb.status.code, pb.status.message) == (ours.status, ours.status_description or "")
    client, unspecified, server = spans
    assert server.parent_span_id == "00f067aa0ba902b7" and client.parent_span_id == server.span_id
    assert same_attributes(ss.spans[2].attributes, ATTRIBUTES)
    assert (server.dropped_attributes_count, server.dropped_events_count) == (2, 1)
    assert [e.dropped_attributes_count for e in server.events] == [1, 0]

    # The JSON form itself, spelled out for the fields the spec singles out.
    j_client, j_unspecified, j_server = as_json["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert j_server["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert j_server["parentSpanId"] == "00f067aa0ba902b7" and j_client["parentSpanId"] == server.span_id
    assert j_server["spanId"] == server.span_id and j_server["traceState"] == "vendor=a,other=b"
    assert j_server["kind"] == 2 and "kind" not in j_unspecified  # enum as int; 0 left out
    assert j_client["status"] == {"code": 2, "message": "boom: 'quoted' \"text\""}
    assert "status" not in j_server  # UNSET, no message: a default
    assert j_server["startTimeUnixNano"] == str(server.start_time)
    assert j_server["droppedAttributesCount"] == 2 and j_server["droppedEventsCount"] == 1
    assert "droppedLinksCount" not in j_server
    values = {a["key"]: a["value"] for a in j_server["attributes"]}
    assert values["int.beyond_2_53"] == {"intValue": str(2**53 + 1)}
    assert values["int.min"] == {"intValue": "-9223372036854775808"}
    assert values["float.nan"] == {"doubleValue": "NaN"} and values["float.-inf"] == {"doubleValue": "-Infinity"}
    assert values["int.zero"] == {"intValue": "0"} and values["str.empty"] == {"stringValue": ""}
    assert values["list.float"] == {"arrayValue": {"values": [
        {"doubleValue": 0.5}, {"doubleValue": "NaN"}, {"doubleValue": "-Infinity"}]}}
    assert j_server["events"][0] == {
        "timeUnixNano": str(server.events[0].time_unix_nano), "name": "loaded",
        "attributes": [{"key": "rows", "value": {"intValue": "10"}}], "droppedAttributesCount": 1,
    }


def test_export_otlp_json_is_the_dict_of_its_own_bytes(spans):
    tracing = TracingSystem(service_name="svc")
    with tracing.span("op", attributes=ATTRIBUTES) as span:
        span.add_event("e", {"k": NAN})
    data = tracing.export_otlp("protobuf")
    assert tracing.export_otlp("json") == request_dict(data, "traces")
    assert tracing.export_otlp("json") == json_trace_request(trace_pb2.ExportTraceServiceRequest.FromString(data))


def test_metrics_ids_are_hex_and_the_rules_are_the_same():
    """Exemplar ids, found from the descriptors like span ids; the other rules as for traces."""
    message = metrics_pb2.ExportMetricsServiceRequest()
    metric = message.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "latency"
    point = metric.gauge.data_points.add()
    point.time_unix_nano = 2**62
    point.as_double = NAN
    exemplar = point.exemplars.add()
    exemplar.trace_id = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    exemplar.span_id = bytes.fromhex("00f067aa0ba902b7")
    exemplar.as_int = 2**60
    total = message.resource_metrics[0].scope_metrics[0].metrics.add()
    total.name = "total"
    total.sum.aggregation_temporality = 2
    total.sum.data_points.add().as_int = 0  # a oneof member set to 0 stays
    assert request_dict(message.SerializeToString(), "metrics") == {
        "resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "latency", "gauge": {"dataPoints": [{
                "timeUnixNano": str(2**62), "asDouble": "NaN",
                "exemplars": [{"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7",
                               "asInt": str(2**60)}],
            }]}},
            {"name": "total", "sum": {"aggregationTemporality": 2, "dataPoints": [{"asInt": "0"}]}},
        ]}]}]
    }


def test_registry_request_dict_is_its_bytes_read_back(monkeypatch):
    import time

    from google.protobuf.json_format import ParseDict

    from pyveda.telemetry import CollectorRegistry, Counter, Histogram
    from pyveda.telemetry.otlp import registry_request_bytes, registry_request_dict

    registry = CollectorRegistry()
    Counter("jobs_total", "Jobs", ["queue"], registry=registry).labels("fast").inc(3)
    Histogram("size_bytes", "Sizes", registry=registry).observe(2.5)
    resource = {"service.name": "svc", "big": 2**60}
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000_000_000)  # one timestamp for both calls
    data = registry_request_bytes(registry, resource)
    as_json = registry_request_dict(registry, resource)
    assert as_json == request_dict(data, "metrics")
    decoded = metrics_pb2.ExportMetricsServiceRequest.FromString(data)
    assert ParseDict(as_json, metrics_pb2.ExportMetricsServiceRequest()) == decoded  # no ids: plain proto3 JSON
    (rm,) = as_json["resourceMetrics"]
    assert {"key": "big", "value": {"intValue": str(2**60)}} in rm["resource"]["attributes"]
    jobs, sizes = rm["scopeMetrics"][0]["metrics"]
    assert jobs["name"] == "jobs" and jobs["sum"]["aggregationTemporality"] == 2 and jobs["sum"]["isMonotonic"]
    (point,) = jobs["sum"]["dataPoints"]
    assert point["asDouble"] == 3.0 and point["timeUnixNano"] == "1700000000000000000"
    assert point["attributes"] == [{"key": "queue", "value": {"stringValue": "fast"}}]
    (hist,) = sizes["exponentialHistogram"]["dataPoints"]
    assert hist["count"] == "1" and hist["positive"]["bucketCounts"] == ["1"] and hist["min"] == 2.5


def test_bad_kind_and_bad_bytes():
    from google.protobuf.message import DecodeError

    with pytest.raises(ValueError, match=r"^kind must be one of 'traces', 'metrics', got 'logs'$"):
        request_dict(b"", "logs")
    with pytest.raises(DecodeError):
        request_dict(b"\xff\xff\xff", "traces")
    assert request_dict(b"", "traces") == {}  # the empty message: every field a default


def test_import_pyveda_does_not_load_protobuf():
    code = (
        "import sys, pyveda\n"
        "from pyveda.telemetry import TracingSystem\n"
        "import pyveda.telemetry.otlp_json\n"
        "print(','.join(m for m in ('google.protobuf', 'opentelemetry') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == ""


def pyveda_version():
    from pyveda import __version__

    return __version__
