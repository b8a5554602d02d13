"""Every exposition we render, read back by prometheus_client's own parsers with exact values.

One registry holds every kind of metric prometheus_client code makes
(Counter, Gauge, Histogram with and without buckets, Summary with and
without quantiles, Info, Enum) and a custom collector of every family type;
the 0.0.4 text goes through ``prometheus_client.parser`` and OpenMetrics
through ``prometheus_client.openmetrics.parser``, and each sample's value is
compared with what was recorded.
"""

import math

import pytest

from pyveda.telemetry import (
    CollectorRegistry,
    Counter,
    CounterMetricFamily,
    Enum,
    Exemplar,
    Gauge,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Histogram,
    HistogramMetricFamily,
    Info,
    StateSetMetricFamily,
    Summary,
    SummaryMetricFamily,
    UnknownMetricFamily,
    disable_legacy_validation,
    get_legacy_validation,
)

text_parser = pytest.importorskip("prometheus_client.parser")
om_parser = pytest.importorskip("prometheus_client.openmetrics.parser")


class Everything:
    def collect(self):
        yield CounterMetricFamily("c_jobs", "Jobs.", value=11, created=1700000000.0)
        yield GaugeMetricFamily("c_depth", "Depth.", value=-2.5)
        yield SummaryMetricFamily("c_rpc", "RPC.", count_value=3, sum_value=0.75)
        yield HistogramMetricFamily("c_size", "Size.", buckets=[("1.0", 1), ("+Inf", 2, Exemplar({"id": "7"}, 3.0))],
                                    sum_value=4.0)
        yield GaugeHistogramMetricFamily("c_wait", "Wait.", buckets=[("0.5", 4), ("+Inf", 6)], gsum_value=2.0)
        yield StateSetMetricFamily("c_mode", "Mode.", value={"fast": True, "slow": False})
        yield UnknownMetricFamily("c_thing", "Thing.", value=42)


@pytest.fixture
def everything():
    registry = CollectorRegistry()
    requests = Counter("requests_total", "Requests.", ["route"], registry=registry)
    requests.labels("/a").inc(3)
    requests.labels("/b").inc(1.5, exemplar={"trace_id": "abc"})
    Gauge("temperature", "Degrees.", unit="celsius", registry=registry).set(-4.25)
    latency = Histogram("latency", "Latency.", unit="seconds", buckets=(0.1, 1.0), registry=registry)
    for value in (0.05, 0.5, 0.5, 2.0):
        latency.observe(value)
    exponential = Histogram("sizes", "Sizes.", registry=registry)
    for value in range(1, 101):
        exponential.observe(value)
    payload = Summary("payload_bytes", "Payloads.", registry=registry)
    payload.observe(100)
    payload.observe(300)
    Summary("wait", "Waits.", quantiles=(0.5,), registry=registry).observe(8)
    Info("build", "Build.", registry=registry).info({"version": "1.2.3"})
    Enum("state", "State.", states=["idle", "busy"], registry=registry).state("busy")
    registry.register(Everything())
    return registry


EXPECTED_TEXT = {
    ("requests_total", (("route", "/a"),)): 3,
    ("requests_total", (("route", "/b"),)): 1.5,
    ("temperature_celsius", ()): -4.25,
    ("latency_seconds_bucket", (("le", "0.1"),)): 1,
    ("latency_seconds_bucket", (("le", "1.0"),)): 3,
    ("latency_seconds_bucket", (("le", "+Inf"),)): 4,
    ("latency_seconds_count", ()): 4,
    ("latency_seconds_sum", ()): 3.05,
    ("sizes_count", ()): 100,
    ("sizes_sum", ()): 5050,
    ("payload_bytes_count", ()): 2,
    ("payload_bytes_sum", ()): 400,
    ("wait", (("quantile", "0.5"),)): 8,
    ("wait_count", ()): 1,
    ("build_info", (("version", "1.2.3"),)): 1,
    ("state", (("state", "idle"),)): 0,
    ("state", (("state", "busy"),)): 1,
    ("c_jobs_total", ()): 11,
    ("c_jobs_created", ()): 1700000000.0,
    ("c_depth", ()): -2.5,
    ("c_rpc_count", ()): 3,
    ("c_rpc_sum", ()): 0.75,
    ("c_size_bucket", (("le", "+Inf"),)): 2,
    ("c_size_sum", ()): 4,
    ("c_wait_gsum", ()): 2,
    ("c_mode", (("c_mode", "fast"),)): 1,
    ("c_thing", ()): 42,
}


def by_key(families):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_text_format_reads_back_exactly(everything):
    samples = by_key(text_parser.text_string_to_metric_families(everything.generate_prometheus()))
    for key, value in EXPECTED_TEXT.items():
        assert samples[key] == pytest.approx(value, rel=1e-12), key
    # The exponential histogram's summary quantiles: within the histogram's 0.54% relative error.
    assert samples[("sizes", (("quantile", "0.5"),))] == pytest.approx(50, rel=0.011)
    types = {f.name: f.type for f in text_parser.text_string_to_metric_families(everything.generate_prometheus())}
    assert types["requests"] == "counter" and types["latency_seconds"] == "histogram"
    assert types["payload_bytes"] == "summary" and types["c_thing"] == "unknown"


def test_openmetrics_reads_back_exactly(everything):
    families = {f.name: f for f in om_parser.text_string_to_metric_families(everything.generate_openmetrics())}
    samples = by_key(families.values())
    for key, value in EXPECTED_TEXT.items():
        if key[0] == "c_jobs_created":
            continue  # OpenMetrics keeps _created inside the counter family, checked below
        assert samples[key] == pytest.approx(value, rel=1e-12), key
    assert {name: families[name].type for name in ("requests", "build", "state", "c_wait", "c_mode", "c_thing")} == {
        "requests": "counter", "build": "info", "state": "stateset", "c_wait": "gaugehistogram",
        "c_mode": "stateset", "c_thing": "unknown",
    }
    assert families["latency_seconds"].unit == "seconds"
    assert families["temperature_celsius"].unit == "celsius"
    exemplar = [s for s in families["requests"].samples if s.exemplar][0].exemplar
    assert exemplar.labels == {"trace_id": "abc"} and exemplar.value == 1.5
    created = [s for s in families["requests"].samples if s.name == "requests_created"]
    assert len(created) == 2 and all(s.value > 1.6e9 for s in created)
    assert [s.value for s in families["c_jobs"].samples if s.name == "c_jobs_created"] == [1700000000.0]
    quantile = [s for s in families["wait"].samples if s.name == "wait"][0]
    assert quantile.labels == {"quantile": "0.5"} and quantile.value == 8


def test_an_empty_summary_has_nan_quantiles_in_openmetrics():
    registry = CollectorRegistry()
    Summary("idle", "Nothing yet.", quantiles=(0.9,), registry=registry)
    (family,) = om_parser.text_string_to_metric_families(registry.generate_openmetrics())
    (quantile,) = [s for s in family.samples if s.name == "idle"]
    assert math.isnan(quantile.value)


def test_utf8_names_round_trip_in_each_escaping():
    assert not get_legacy_validation()  # prometheus_client 0.26's default: UTF-8 names
    disable_legacy_validation()
    registry = CollectorRegistry()
    Counter("http.requests", "Requests.", ["url.path"], registry=registry).labels("/a").inc(2)
    underscores = by_key(text_parser.text_string_to_metric_families(registry.generate_prometheus()))
    assert underscores == {("http_requests_total", (("url_path", "/a"),)): 2}
    quoted = registry.generate_prometheus(escaping="allow-utf-8")
    assert '{"http.requests_total","url.path"="/a"} 2' in quoted
    parsed = by_key(text_parser.text_string_to_metric_families(quoted))
    assert parsed == {("http.requests_total", (("url.path", "/a"),)): 2}
    values = by_key(om_parser.text_string_to_metric_families(registry.generate_openmetrics(escaping="values")))
    assert ("U__http_2e_requests__total", (("U__url_2e_path", "/a"),)) in values  # "_" doubled
    dots = by_key(text_parser.text_string_to_metric_families(registry.generate_prometheus(escaping="dots")))
    assert dots == {("http_dot_requests__total", (("url_dot_path", "/a"),)): 2}
    with pytest.raises(ValueError, match=r"unknown name escaping 'utf8'; allowed: underscores, dots, values, allow-utf-8"):
        registry.generate_prometheus(escaping="utf8")


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/openmetrics-text",
        "application/openmetrics-text; version=1.0.0; escaping=values",
        "text/plain;version=1.0.0;escaping=allow-utf-8",
        "text/plain;version=1.0.0;escaping=dots",
        "text/plain;version=1.0.0;escaping=bogus",
        "text/plain",
        "",
    ],
)
def test_negotiation_answers_as_prometheus_client(accept):
    from prometheus_client.exposition import choose_encoder as theirs

    from pyveda.telemetry import choose_encoder

    disable_legacy_validation()
    registry = CollectorRegistry()
    Gauge("queue.depth", "Depth.", registry=registry).set(3)
    encoder, content_type = choose_encoder(accept)
    assert content_type == theirs(accept)[1]
    body = encoder(registry).decode()
    escaping = content_type.partition("escaping=")[2] or "underscores"
    expected_name = {"underscores": "queue_depth", "dots": "queue_dot_depth", "values": "U__queue_2e_depth",
                     "allow-utf-8": '{"queue.depth"}'}[escaping]
    assert f"{expected_name} 3\n" in body, body


def test_a_scrape_negotiates_the_escaping(tmp_path):
    import urllib.request

    from pyveda.telemetry import start_http_server

    disable_legacy_validation()
    registry = CollectorRegistry()
    Counter("http.requests", "Requests.", registry=registry).inc()
    with start_http_server(0, registry=registry) as server:
        request = urllib.request.Request(server.url, headers={"Accept": "text/plain;version=1.0.0;escaping=allow-utf-8"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.headers["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
            assert '{"http.requests_total"} 1\n' in reply.read().decode()
        with urllib.request.urlopen(server.url, timeout=10) as reply:
            assert "\nhttp_requests_total 1\n" in reply.read().decode()
