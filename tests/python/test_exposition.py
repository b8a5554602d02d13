"""Prometheus text format 0.0.4 rendered by the core: golden text, promtool, a real parser."""

import pytest

from conftest import UNIT_LINT

from pyveda.telemetry import CONTENT_TYPE_LATEST, CONTENT_TYPE_PLAIN_0_0_4, Counter, Gauge, Histogram


def test_content_types_have_prometheus_clients_values():
    prometheus_client = pytest.importorskip("prometheus_client")
    assert CONTENT_TYPE_PLAIN_0_0_4 == "text/plain; version=0.0.4; charset=utf-8"
    assert CONTENT_TYPE_PLAIN_0_0_4 == prometheus_client.CONTENT_TYPE_PLAIN_0_0_4
    assert CONTENT_TYPE_LATEST == prometheus_client.CONTENT_TYPE_LATEST == "text/plain; version=1.0.0; charset=utf-8"


def test_golden_text(registry):
    c = Counter("http_requests_total", "Total HTTP requests", ("method", "path"), registry=registry)
    c.labels("GET", "/").inc(3)
    c.labels("POST", 'C:\\tmp "x"\nnext').inc()
    g = Gauge("queue_depth", "Depth with a \\ backslash\nand a newline", registry=registry)
    g.set(0.1)
    h = Histogram("latency_seconds", "Latency", registry=registry)
    for _ in range(4):
        h.observe(2.5)
    assert registry.generate_prometheus() == (
        "# HELP http_requests_total Total HTTP requests\n"
        "# TYPE http_requests_total counter\n"
        'http_requests_total{method="GET",path="/"} 3\n'
        'http_requests_total{method="POST",path="C:\\\\tmp \\"x\\"\\nnext"} 1\n'
        "# HELP queue_depth Depth with a \\\\ backslash\\nand a newline\n"
        "# TYPE queue_depth gauge\n"
        "queue_depth 0.1\n"
        "# HELP latency_seconds Latency\n"
        "# TYPE latency_seconds summary\n"
        'latency_seconds{quantile="0.5"} 2.5\n'
        'latency_seconds{quantile="0.9"} 2.5\n'
        'latency_seconds{quantile="0.95"} 2.5\n'
        'latency_seconds{quantile="0.99"} 2.5\n'
        "latency_seconds_sum 10\n"
        "latency_seconds_count 4\n"
    )


def test_special_values(registry):
    g = Gauge("g", "h", ("k",), registry=registry)
    g.labels("nan").set(float("nan"))
    g.labels("pinf").set(float("inf"))
    g.labels("ninf").set(float("-inf"))
    g.labels("big").set(1e20)
    g.labels("tiny").set(1.5e-300)
    Histogram("empty", "No observations yet", registry=registry)
    text = registry.generate_prometheus()
    assert 'g{k="nan"} NaN\n' in text
    assert 'g{k="pinf"} +Inf\n' in text
    assert 'g{k="ninf"} -Inf\n' in text
    assert 'empty{quantile="0.5"} NaN\n' in text
    assert "empty_count 0\n" in text
    values = {line.split(" ")[0]: line.split(" ")[1] for line in text.splitlines() if line.startswith("g{")}
    assert float(values['g{k="big"}']) == 1e20
    assert float(values['g{k="tiny"}']) == 1.5e-300


def test_parses_back_with_prometheus_client(registry):
    parser = pytest.importorskip("prometheus_client.parser")
    c = Counter("jobs_total", "Jobs", ("queue",), registry=registry)
    c.labels('a"b').inc(41)
    c.labels("c\\d").inc(1)
    h = Histogram("size_bytes", "Sizes", registry=registry)
    for v in range(1, 101):
        h.observe(v)
    families = {f.name: f for f in parser.text_string_to_metric_families(registry.generate_prometheus())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in families["jobs"].samples}
    assert samples[("jobs_total", (("queue", 'a"b'),))] == 41
    assert samples[("jobs_total", (("queue", "c\\d"),))] == 1
    summary = {(s.name, s.labels.get("quantile")): s.value for s in families["size_bytes"].samples}
    assert summary[("size_bytes_count", None)] == 100
    assert summary[("size_bytes_sum", None)] == 5050
    assert summary[("size_bytes", "0.5")] == pytest.approx(50, rel=0.006)
    assert summary[("size_bytes", "0.99")] == pytest.approx(99, rel=0.006)
    assert families["size_bytes"].type == "summary"


def test_promtool_accepts_the_exposition(registry, check_metrics):
    c = Counter("http_requests_total", "Total HTTP requests", ("method",), registry=registry)
    c.labels("GET").inc()
    c.labels('we"ird\\value\n').inc(2)
    Gauge("active_connections", "Active connections", registry=registry).set(3)
    h = Histogram("request_duration_seconds", "Request duration", ("route",), registry=registry)
    h.labels("/a").observe(0.0125)
    h.labels("/b")  # an empty series renders NaN quantiles
    Histogram("empty_seconds", "Nothing yet", registry=registry)
    assert check_metrics(registry.generate_prometheus()) == []


def test_promtool_on_the_guides_millisecond_names(registry, check_metrics):
    # The guide's own example: only the naming lint about "_ms" may be reported.
    h = Histogram("request_duration_ms", "Request duration", registry=registry)
    h.observe(12.5)
    h.observe(45.2)
    problems = check_metrics(registry.generate_prometheus(), allow=[UNIT_LINT])
    assert problems == ["request_duration_ms " + UNIT_LINT]


def test_promtool_on_many_series(registry, check_metrics):
    g = Gauge("series", "Many series", ("i",), registry=registry)
    for i in range(2000):
        g.labels(i).set(i * 0.5)
    text = registry.generate_prometheus()
    assert text.count("\nseries{") == 2000
    assert check_metrics(text) == []
