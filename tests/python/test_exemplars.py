"""Exemplars: kept by counters and histograms inside a span or when given,
exposed in OpenMetrics and protobuf, and read back by Debian's Prometheus
started with --enable-feature=exemplar-storage."""

from __future__ import annotations

import json
import re
import time
import urllib.parse

import pytest

from prometheus_proto import parse_delimited
from pyveda.telemetry import CollectorRegistry, Counter, Histogram, TracingSystem, start_http_server
from servers import binary, fetch, start_prometheus, stop_server, wait_until

EXEMPLAR = re.compile(r' # \{(?P<labels>[^}]*)\} (?P<value>\S+) (?P<ts>\S+)$')


def exemplar_of(text, sample_prefix):
    (line,) = [x for x in text.splitlines() if x.startswith(sample_prefix)]
    match = EXEMPLAR.search(line)
    return None if match is None else match.groupdict()


def test_inside_a_span_the_span_is_the_exemplar(registry):
    tracing = TracingSystem()
    requests = Counter("ex_requests_total", "Requests.", ["route"], registry=registry)
    latency = Histogram("ex_latency_seconds", "Latency.", registry=registry, buckets=(0.1, 1.0))
    requests.labels("/a").inc()  # outside a span: no exemplar
    latency.observe(0.05)
    assert exemplar_of(registry.generate_openmetrics(), 'ex_requests_total{route="/a"}') is None
    with tracing.span("handle") as span:
        requests.labels("/a").inc(2)
        latency.observe(0.5)
    trace_id, span_id = span.context.trace_id, span.context.span_id
    text = registry.generate_openmetrics()
    counter = exemplar_of(text, 'ex_requests_total{route="/a"}')
    assert counter["labels"] == f'trace_id="{trace_id}",span_id="{span_id}"' and float(counter["value"]) == 2
    assert abs(float(counter["ts"]) - time.time()) < 600
    bucket = exemplar_of(text, 'ex_latency_seconds_bucket{le="1.0"}')
    assert bucket["labels"] == f'trace_id="{trace_id}",span_id="{span_id}"' and float(bucket["value"]) == 0.5
    assert exemplar_of(text, 'ex_latency_seconds_bucket{le="0.1"}') is None
    assert " # {" not in registry.generate_prometheus()  # 0.0.4 has no exemplars

    parser = pytest.importorskip("prometheus_client.openmetrics.parser")
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    (total,) = [s for s in families["ex_requests"].samples if s.name == "ex_requests_total"]
    assert total.exemplar.labels == {"trace_id": trace_id, "span_id": span_id}


def test_given_exemplars_and_their_rules(registry):
    jobs = Counter("ex_jobs_total", "Jobs.", registry=registry)
    jobs.inc(3, exemplar={"job_id": "j-17"})
    sizes = Histogram("ex_size_bytes", "Sizes.", registry=registry)  # native only: in protobuf
    sizes.observe(512, exemplar={"request": "r1"})
    assert exemplar_of(registry.generate_openmetrics(), "ex_jobs_total")["labels"] == 'job_id="j-17"'
    families = {f.name: f for f in parse_delimited(registry.generate_protobuf())}
    counter = families["ex_jobs_total"].metric[0].counter
    assert [(l.name, l.value) for l in counter.exemplar.label] == [("job_id", "j-17")]
    assert counter.exemplar.value == 3
    (native,) = families["ex_size_bytes"].metric[0].histogram.exemplars
    assert native.value == 512 and native.label[0].value == "r1"

    too_long = {"trace_id": "x" * 121}
    with pytest.raises(ValueError, match="exemplar labels are 129 UTF-8 characters long \\(names and values together\\); "
                                         "OpenMetrics allows at most 128"):
        jobs.inc(1, exemplar=too_long)
    with pytest.raises(ValueError, match="exemplar labels are 129"):
        sizes.observe(1, exemplar=too_long)
    assert jobs.get() == 3 and sizes.get_count() == 1  # refused calls record nothing
    with pytest.raises(TypeError, match="inc\\(\\): exemplar must be a dict of str labels such as "
                                        "\\{'trace_id': 'abc123'\\}, got list"):
        jobs.inc(1, exemplar=[("a", "b")])
    with pytest.raises(TypeError, match="observe\\(\\): exemplar labels must be str names and str values, "
                                        "got str 'n': int 5"):
        sizes.observe(1, exemplar={"n": 5})
    with pytest.raises(ValueError, match="label name"):
        jobs.inc(1, exemplar={"__reserved": "x"})
    with pytest.raises(ValueError, match="counter increment must be a finite number >= 0"):
        jobs.inc(-1, exemplar={"a": "b"})


# --- the real Prometheus ---------------------------------------------------------------


def test_prometheus_stores_our_exemplars(tmp_path):
    binary("prometheus", "prometheus")
    registry = CollectorRegistry()
    tracing = TracingSystem()
    hits = Counter("ex_e2e_hits_total", "Hits.", registry=registry)
    latency = Histogram("ex_e2e_latency_seconds", "Latency.", registry=registry, buckets=(0.1, 1.0))
    with tracing.span("request") as span:
        hits.inc()
        latency.observe(0.3)
    trace_id = span.context.trace_id
    endpoint = start_http_server(port=0, registry=registry)
    process, log, prom = start_prometheus(tmp_path, {"pyveda": (endpoint.port, ())}, ["--enable-feature=exemplar-storage"])
    try:
        def exemplars(query):
            now = time.time()
            url = prom + "/api/v1/query_exemplars?" + urllib.parse.urlencode(
                {"query": query, "start": now - 300, "end": now + 60})
            status, _, body = fetch(url)
            data = json.loads(body)
            assert status == 200 and data["status"] == "success", data
            return [e for series in data["data"] for e in series["exemplars"]]

        found = wait_until(lambda: exemplars("ex_e2e_hits_total"), 30, "the counter's exemplar in Prometheus")
        assert found[0]["labels"] == {"trace_id": trace_id, "span_id": span.context.span_id}
        assert float(found[0]["value"]) == 1
        found = wait_until(lambda: exemplars("ex_e2e_latency_seconds_bucket"), 30, "the bucket's exemplar")
        assert {e["labels"]["trace_id"] for e in found} == {trace_id} and float(found[0]["value"]) == 0.3
    finally:
        stop_server(process, log)
        endpoint.shutdown()


def test_otlp_points_carry_the_exemplars(registry):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    from pyveda.telemetry.otlp import registry_request_bytes

    tracing = TracingSystem()
    hits = Counter("ex_otlp_hits_total", "Hits.", registry=registry)
    latency = Histogram("ex_otlp_latency_ms", "Latency.", registry=registry)
    with tracing.span("op") as span:
        hits.inc(4)
        latency.observe(12.5)
    hits.inc(1, exemplar={"job": "j1"})  # the latest exemplar replaces the span's
    message = ExportMetricsServiceRequest.FromString(registry_request_bytes(registry))
    metrics = {m.name: m for m in message.resource_metrics[0].scope_metrics[0].metrics}
    (counter_exemplar,) = metrics["ex_otlp_hits"].sum.data_points[0].exemplars
    assert counter_exemplar.as_double == 1 and not counter_exemplar.trace_id
    assert [(a.key, a.value.string_value) for a in counter_exemplar.filtered_attributes] == [("job", "j1")]
    (histogram_exemplar,) = metrics["ex_otlp_latency_ms"].exponential_histogram.data_points[0].exemplars
    assert histogram_exemplar.as_double == 12.5
    assert histogram_exemplar.trace_id.hex() == span.context.trace_id
    assert histogram_exemplar.span_id.hex() == span.context.span_id
    assert abs(histogram_exemplar.time_unix_nano / 1e9 - time.time()) < 600


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda c, h: c.inc(1, None, 3), TypeError, r"inc\(\) takes at most 2 arguments \(amount, exemplar\), got 3"),
        (lambda c, h: c.inc(foo=1), TypeError, r"inc\(\) got an unexpected keyword argument 'foo' \(allowed: amount, "
                                               r"exemplar\)"),
        (lambda c, h: c.inc(1, amount=2), TypeError, r"inc\(\) got multiple values for amount"),
        (lambda c, h: h.observe(), TypeError, r"observe\(\) missing its value: observe\(value, exemplar=None\)"),
        (lambda c, h: h.observe(exemplar={"a": "b"}), TypeError, r"observe\(\) missing its value"),
        (lambda c, h: h.observe("1"), TypeError, r"value must be a number \(int or float\), got str"),
        (lambda c, h: c.inc(float("nan")), ValueError, r"counter increment must be a finite number >= 0, got NaN"),
    ],
)
def test_recording_arguments_are_checked(registry, call, error, message):
    counter = Counter("ex_args_total", "Args.", registry=registry)
    histogram = Histogram("ex_args_ms", "Args.", registry=registry)
    with pytest.raises(error, match=message):
        call(counter, histogram)
    counter.inc(amount=2, exemplar=None)
    histogram.observe(value=3.0, exemplar={"k": "v"})
    assert counter.get() == 2 and histogram.get_count() == 1
