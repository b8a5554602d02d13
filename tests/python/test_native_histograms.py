"""Native histograms over the protobuf exposition: the bytes, the content
negotiation, and the real Prometheus (Debian's 2.42, started here with
``--enable-feature=native-histograms``) as the judge of both."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from prometheus_proto import METRIC_TYPES, native_buckets, parse_delimited
from pyveda.telemetry import (
    CONTENT_TYPE_PROTOBUF,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_protobuf,
    start_http_server,
)
from pyveda.telemetry.http import choose_exposition
from servers import binary, fetch, query, start_prometheus, stop_server, values, wait_until

# What Prometheus 2.42 sends with and without --enable-feature=native-histograms.
PROMETHEUS_NATIVE_ACCEPT = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
    "application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_DEFAULT_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    "accept, chosen",
    [
        (PROMETHEUS_NATIVE_ACCEPT, "protobuf"),
        (PROMETHEUS_DEFAULT_ACCEPT, "openmetrics"),
        (None, "text"),
        ("", "text"),
        ("*/*", "text"),
        ("application/json, image/png", "text"),  # unknown types fall back to text
        ("application/vnd.google.protobuf", "text"),  # no proto/encoding: not the exposition
        ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", "text"),
        ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0,"
         "text/plain", "text"),
        ("text/plain;q=0.9, application/openmetrics-text;q=0.5", "text"),
        ('application/vnd.google.protobuf; proto="io.prometheus.client.MetricFamily"; encoding=delimited;q=0.2,'
         "application/openmetrics-text;q=0.1", "protobuf"),
        ("application/openmetrics-text;q=bogus, text/plain;q=0.1", "text"),
    ],
)
def test_choose_exposition(accept, chosen):
    assert choose_exposition(accept) == chosen


def bucket_of(value, schema):
    """Prometheus' native bucket index for a positive value: base^(i-1) < value <= base^i."""
    return math.ceil(math.log2(value) * 2**schema - 1e-9)


def test_protobuf_carries_every_family_and_agrees_with_the_text(registry):
    jobs = Counter("nh_jobs_total", "Jobs.", ["queue"], registry=registry)
    jobs.labels("fast").inc(3)
    jobs.labels("slow").inc(0.5)
    Gauge("nh_temperature", "Temperature.", registry=registry).set(-4.25)
    sizes = Histogram("nh_size_bytes", "Sizes.", ["op"], registry=registry)
    observed = [0.0, 1.0, 3.0, 3.0, 1000.0, 1e-6, 12345.678]
    for v in observed:
        sizes.labels("read").observe(v)
    sizes.labels("write")  # a series with no observations

    families = {f.name: f for f in parse_delimited(registry.generate_protobuf())}
    assert set(families) == {"nh_jobs_total", "nh_temperature", "nh_size_bytes"}

    jobs_family = families["nh_jobs_total"]
    assert jobs_family.type == METRIC_TYPES["COUNTER"] and jobs_family.help == "Jobs."
    by_queue = {m.label[0].value: m.counter for m in jobs_family.metric}
    assert by_queue["fast"].value == 3 and by_queue["slow"].value == 0.5
    assert abs(by_queue["fast"].created_timestamp.seconds - time.time()) < 600

    gauge = families["nh_temperature"]
    assert gauge.type == METRIC_TYPES["GAUGE"] and gauge.metric[0].gauge.value == -4.25

    hist_family = families["nh_size_bytes"]
    assert hist_family.type == METRIC_TYPES["HISTOGRAM"]
    series = {m.label[0].value: m.histogram for m in hist_family.metric}
    read = series["read"]
    assert read.schema == 6 and read.zero_count == 1 and read.zero_threshold > 0
    assert read.sample_count == len(observed) and read.sample_sum == pytest.approx(sum(observed))
    expected = {}
    for v in observed:
        if v > 0:
            expected[bucket_of(v, 6)] = expected.get(bucket_of(v, 6), 0) + 1
    assert native_buckets(read) == expected
    assert series["write"].sample_count == 0 and not series["write"].positive_span

    # The text exposition describes the same histogram: _count and _sum agree.
    text = registry.generate_prometheus()
    assert f'nh_size_bytes_count{{op="read"}} {len(observed)}' in text
    assert generate_protobuf(registry) == registry.generate_protobuf()


def test_the_endpoint_serves_protobuf_to_prometheus_and_text_to_others(registry):
    Histogram("nh_http_ms", "Latency.", registry=registry).observe(2.5)
    with start_http_server(port=0, registry=registry) as server:
        status, headers, body = fetch(server.url, {"Accept": PROMETHEUS_NATIVE_ACCEPT})
        assert status == 200 and headers["Content-Type"] == CONTENT_TYPE_PROTOBUF
        assert parse_delimited(body)[0].metric[0].histogram.sample_count == 1
        _, headers, _ = fetch(server.url, {"Accept": "application/x-unknown"})
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        _, headers, _ = fetch(server.url, {"Accept": PROMETHEUS_DEFAULT_ACCEPT})
        assert headers["Content-Type"].startswith("application/openmetrics-text")


# --- the real Prometheus ---------------------------------------------------------------


@pytest.fixture(scope="module")
def native_prometheus(tmp_path_factory):
    """Prometheus with native histograms, scraping a fresh registry's endpoint every second."""
    binary("prometheus", "prometheus")  # skip before starting anything
    tmp = tmp_path_factory.mktemp("native")
    registry = CollectorRegistry()
    endpoint = start_http_server(port=0, registry=registry)
    runtime_endpoint = start_http_server(port=0)  # the default registry: the runtime's pyveda_* families
    process, log, url = start_prometheus(
        tmp, {"pyveda": (endpoint.port, ()), "runtime": (runtime_endpoint.port, ())},
        ["--enable-feature=native-histograms"],
    )
    yield url, registry
    stop_server(process, log)
    endpoint.shutdown()
    runtime_endpoint.shutdown()


def test_prometheus_reads_our_native_histogram_exactly(native_prometheus):
    prom, registry = native_prometheus
    sample = np.random.default_rng(11).lognormal(mean=3.0, sigma=1.0, size=20_000)
    latency = Histogram("nh_request_ms", "Request latency.", ["route"], registry=registry)
    child = latency.labels("/api")
    for v in sample.tolist():
        child.observe(v)
    requests = Counter("nh_requests_total", "Requests.", registry=registry)
    requests.inc(20_000)

    selector = 'nh_request_ms{job="pyveda",route="/api"}'
    wait_until(lambda: values(prom, f"histogram_count({selector})") == [20_000.0], 30,
               "histogram_count == 20000 (a native histogram, scraped over protobuf)")
    assert values(prom, f"histogram_sum({selector})") == [pytest.approx(float(sample.sum()), rel=1e-9)]
    for q in (0.5, 0.99):
        (estimate,) = values(prom, f"histogram_quantile({q}, {selector})")
        truth = float(np.quantile(sample, q))
        assert abs(estimate - truth) / truth < 0.01, (q, estimate, truth)
    assert values(prom, 'nh_requests_total{job="pyveda"}') == [20_000.0]
    targets = json.loads(fetch(prom + "/api/v1/targets")[2])["data"]["activeTargets"]
    assert [t["lastError"] for t in targets] == ["", ""]

    # Two series of one name sum exactly, bucket for bucket (replicas would do the same).
    other = latency.labels("/health")
    for v in sample[:5_000].tolist():
        other.observe(v)
    wait_until(lambda: values(prom, 'histogram_count(sum(nh_request_ms{job="pyveda"}))') == [25_000.0], 30,
               "the sum of two native histograms")
    result = query(prom, 'histogram_quantile(0.5, sum(nh_request_ms{job="pyveda"}))')
    truth = float(np.quantile(np.concatenate([sample, sample[:5_000]]), 0.5))
    assert abs(float(result[0]["value"][1]) - truth) / truth < 0.01


def test_the_dashboard_and_alert_queries_read_native_histograms(native_prometheus, make_runtime):
    import importlib.resources

    prom, _ = native_prometheus
    runtime = make_runtime(threads=2, telemetry=True)
    for future in [runtime.spawn(sum, [1, 2]) for _ in range(500)]:
        future.result(timeout=10)
    wait_until(lambda: values(prom, 'histogram_count(pyveda_latency_ms{job="runtime"})') >= [500.0], 30,
               "the runtime's latency as a native histogram")
    data = importlib.resources.files("pyveda") / "data"
    dashboard = json.loads((data / "grafana-dashboard.json").read_text())
    (panel,) = [p for p in dashboard["panels"] if p["title"] == "Task latency quantiles"]
    for target in panel["targets"]:
        expr = target["expr"].replace("$__rate_interval", "1m")
        result = wait_until(lambda: query(prom, expr), 20, f"data for {expr}")
        if "quantile" in target["legendFormat"]:
            assert {r["metric"].get("quantile") for r in result if r["metric"].get("job") == "runtime"} == {
                "0.5", "0.95", "0.99"}
    alert = "max by (job, instance) (pyveda_latency_ms{quantile=\"0.99\"} or histogram_quantile(0.99, pyveda_latency_ms))"
    assert alert in (data / "alerts.yml").read_text()
    assert [r["metric"]["job"] for r in query(prom, alert)] == ["runtime"]


# --- classic buckets and _created ------------------------------------------------------


def test_classic_buckets_in_text_openmetrics_and_protobuf_agree(registry, check_metrics):
    rtt = Histogram("nh_rtt_seconds", "Round trips.", ["peer"], registry=registry, buckets=Histogram.DEFAULT_BUCKETS)
    assert rtt.buckets == list(Histogram.DEFAULT_BUCKETS[:-1])  # +Inf is implied
    observed = [0.001, 0.005, 0.006, 0.3, 0.3, 2.0, 11.0]
    for v in observed:
        rtt.labels("a").observe(v)
    text = registry.generate_prometheus()
    assert "# TYPE nh_rtt_seconds histogram" in text
    cumulative = {b: sum(v <= b for v in observed) for b in Histogram.DEFAULT_BUCKETS}
    for bound, count in cumulative.items():
        le = "+Inf" if bound == float("inf") else repr(float(bound))
        assert f'nh_rtt_seconds_bucket{{peer="a",le="{le}"}} {count}\n' in text
    assert f'nh_rtt_seconds_count{{peer="a"}} {len(observed)}\n' in text
    assert check_metrics(text) == []

    parser = pytest.importorskip("prometheus_client.openmetrics.parser")
    (family,) = parser.text_string_to_metric_families(registry.generate_openmetrics())
    assert family.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name == "nh_rtt_seconds_bucket"}
    assert buckets["+Inf"] == len(observed) and buckets["0.005"] == 2 and buckets["0.5"] == 5
    created = [s for s in family.samples if s.name == "nh_rtt_seconds_created"]
    assert len(created) == 1 and abs(created[0].value - time.time()) < 600

    (pb,) = parse_delimited(registry.generate_protobuf())
    hist = pb.metric[0].histogram
    assert [b.upper_bound for b in hist.bucket] == list(Histogram.DEFAULT_BUCKETS[:-1])
    assert [b.cumulative_count for b in hist.bucket] == [cumulative[b] for b in Histogram.DEFAULT_BUCKETS[:-1]]
    assert hist.sample_count == len(observed) and hist.schema == 6  # the native form rides along
    assert sum(native_buckets(hist).values()) + hist.zero_count == len(observed)


def test_re_registering_needs_the_same_buckets(registry):
    first = Histogram("nh_same_ms", "Same.", registry=registry, buckets=(1, 2))
    again = Histogram("nh_same_ms", "Same.", registry=registry, buckets=(1.0, 2.0, float("inf")))
    again.observe(1.5)
    assert first.get_count() == 1
    with pytest.raises(ValueError, match=r"buckets \(1, 2\).*buckets \(1, 3\)"):
        Histogram("nh_same_ms", "Same.", registry=registry, buckets=(1, 3))
    with pytest.raises(ValueError, match="no classic buckets"):
        Histogram("nh_same_ms", "Same.", registry=registry)


@pytest.mark.parametrize(
    "buckets, error, message",
    [
        ((), ValueError, r"histogram buckets need at least one finite bound \(\+Inf is always added\)"),
        ((float("inf"),), ValueError, "at least one finite bound"),
        ((1, 0.5), ValueError, "histogram bucket bounds must increase: 0.5 after 1 at position 1"),
        ((1, 1), ValueError, "histogram bucket bounds must not repeat: 1 after 1 at position 1"),
        ((1, float("nan")), ValueError, r"must be finite numbers \(\+Inf only as the last\), got NaN at position 1"),
        ((float("-inf"), 1), ValueError, "got -Inf at position 0"),
        ((1, float("inf"), 2), ValueError, r"got \+Inf at position 1"),
        ("0.1,1", TypeError, "buckets must be a sequence of numbers, got str"),
        (5, TypeError, "buckets must be a sequence of numbers, got int"),
        ((1, "2"), TypeError, "each bucket bound must be a number, got str"),
        ((True, 2), TypeError, "each bucket bound must be a number, got bool"),
    ],
)
def test_bad_buckets_name_the_rule(registry, buckets, error, message):
    with pytest.raises(error, match=message):
        Histogram("nh_bad_ms", "Bad.", registry=registry, buckets=buckets)
    assert "nh_bad_ms" not in registry.generate_prometheus()


def test_created_series_can_be_turned_off_like_prometheus_client(registry):
    from pyveda.telemetry import disable_created_metrics, enable_created_metrics

    Counter("nh_made_total", "C.", registry=registry).inc()
    assert "nh_made_created " in registry.generate_openmetrics()
    disable_created_metrics()
    try:
        assert "_created" not in registry.generate_openmetrics()
    finally:
        enable_created_metrics()
    assert "nh_made_created " in registry.generate_openmetrics()
    assert "_created" not in registry.generate_prometheus()  # 0.0.4 never has them


def test_the_environment_variable_turns_created_off_at_import():
    import subprocess
    import sys

    code = (
        "from pyveda.telemetry import CollectorRegistry, Counter\n"
        "r = CollectorRegistry(); Counter('x_total', 'x', registry=r).inc()\n"
        "print('_created' in r.generate_openmetrics())\n"
    )
    for value, expected in (("true", "False"), ("True", "False"), ("false", "True"), ("", "True")):
        env = {**__import__("os").environ, "PROMETHEUS_DISABLE_CREATED_SERIES": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == expected, (value, out.stderr)


# --- a recent window for a Histogram's percentiles -------------------------------------


def test_max_age_seconds_gives_recent_percentiles_and_summary_quantiles(registry):
    h = Histogram("nh_recent_ms", "Recent.", registry=registry, max_age_seconds=0.3)
    assert h.max_age_seconds == 0.3
    for _ in range(10_000):
        h.observe(1.0)
    assert h.get_percentile(99, recent=True) == pytest.approx(1.0, rel=0.01)  # younger than the window
    time.sleep(0.35)
    for _ in range(20):
        h.observe(250.0)
    assert h.get_percentile(50, recent=True) == pytest.approx(250.0, rel=0.01)
    assert h.get_percentile(50) == pytest.approx(1.0, rel=0.01)  # get_percentile keeps its meaning
    assert h.recent().count == 20 and h.get_count() == 10_020
    text = registry.generate_prometheus()
    line = next(x for x in text.splitlines() if x.startswith('nh_recent_ms{quantile="0.5"}'))
    assert float(line.split()[1]) == pytest.approx(250.0, rel=0.01)
    assert "nh_recent_ms_count 10020\n" in text
    plain = Histogram("nh_plain_ms", "Plain.", registry=registry)
    assert plain.max_age_seconds is None
    with pytest.raises(ValueError, match="get_percentile\\(recent=True\\) needs a histogram made with max_age_seconds; "
                                         "'nh_plain_ms' has none"):
        plain.get_percentile(50, recent=True)
    with pytest.raises(ValueError, match="max_age_seconds 0.3.*cannot register it again.*max_age_seconds 1"):
        Histogram("nh_recent_ms", "Recent.", registry=registry, max_age_seconds=1)


@pytest.mark.parametrize(
    "value, error, message",
    [
        (0, ValueError, r"max_age_seconds must be in \(0, 1e9\] seconds, got 0"),
        (-5, ValueError, r"max_age_seconds must be in \(0, 1e9\] seconds, got -5"),
        (float("nan"), ValueError, "got nan"),
        (float("inf"), ValueError, "got inf"),
        ("60", TypeError, "max_age_seconds must be a number of seconds or None, got str"),
        (True, TypeError, "got bool"),
    ],
)
def test_bad_max_age_seconds(registry, value, error, message):
    with pytest.raises(error, match=message):
        Histogram("nh_bad_age_ms", "Bad.", registry=registry, max_age_seconds=value)
