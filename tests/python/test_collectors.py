"""Custom collectors, metric families and the registry's prometheus_client API.

Every exposition is read back with prometheus_client's own parsers, so the
samples are checked by an implementation we did not write.
"""

import os
import sys

import pytest

from prometheus_proto import parse_delimited

from pyveda.telemetry import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    CounterMetricFamily,
    Exemplar,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
    SummaryMetricFamily,
    Timestamp,
    UnknownMetricFamily,
    generate_latest,
    write_to_textfile,
)

parser = pytest.importorskip("prometheus_client.parser")
om_parser = pytest.importorskip("prometheus_client.openmetrics.parser")


class Every:
    """A collector yielding one family of each kind, counting its calls."""

    def __init__(self):
        self.calls = 0

    def collect(self):
        self.calls += 1
        c = CounterMetricFamily("jobs_total", "Jobs done.", labels=["queue"])
        c.add_metric(["fast"], 7, created=1700000000.5, exemplar=Exemplar({"trace_id": "ab"}, 1.0, 1700000001.0))
        c.add_metric(["slow"], 2)
        yield c
        yield GaugeMetricFamily("temperature", "Degrees.", value=21.5, unit="celsius")
        s = SummaryMetricFamily("rpc_seconds", "RPC time.", labels=["method"])
        s.add_metric(["get"], count_value=4, sum_value=2.5)
        yield s
        h = HistogramMetricFamily("size_bytes", "Sizes.", labels=["route"])
        h.add_metric(["/a"], [("10.0", 1), ("100.0", 3, Exemplar({"id": "x"}, 50.0)), ("+Inf", 4)], sum_value=260.0)
        yield h
        yield GaugeHistogramMetricFamily("queue_wait", "Waits.", buckets=[("1.0", 2), ("+Inf", 5)], gsum_value=9.0)
        yield InfoMetricFamily("build", "Build.", value={"version": "1.2.3", "commit": "abc"})
        yield StateSetMetricFamily("mode", "Mode.", value={"on": True, "off": False})
        yield UnknownMetricFamily("mystery", "Who knows.", value=3.0)


def text_samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in parser.text_string_to_metric_families(text) for s in family.samples}


def om_families(text):
    return {f.name: f for f in om_parser.text_string_to_metric_families(text)}


@pytest.fixture
def every():
    registry = CollectorRegistry()
    collector = Every()
    registry.register(collector)
    return registry, collector


def test_a_collector_is_called_at_each_scrape_and_rendered_after_the_metrics(every):
    registry, collector = every
    Counter("native", "A native counter.", registry=registry).inc(5)
    text = registry.generate_prometheus()
    assert collector.calls == 1
    assert text.index("native_total 5") < text.index("# HELP jobs_total")
    registry.generate_openmetrics()
    registry.generate_protobuf()
    assert collector.calls == 3


def test_text_format_0_0_4_reads_back_with_prometheus_clients_parser(every):
    registry, _ = every
    samples = text_samples(registry.generate_prometheus())
    assert samples[("jobs_total", (("queue", "fast"),))] == 7
    assert samples[("jobs_created", (("queue", "fast"),))] == 1700000000.5
    assert samples[("temperature_celsius", ())] == 21.5
    assert samples[("rpc_seconds_count", (("method", "get"),))] == 4
    assert samples[("size_bytes_bucket", (("le", "100.0"), ("route", "/a")))] == 3
    assert samples[("size_bytes_sum", (("route", "/a"),))] == 260
    assert samples[("queue_wait_gsum", ())] == 9
    assert samples[("build_info", (("commit", "abc"), ("version", "1.2.3")))] == 1
    assert samples[("mode", (("mode", "off"),))] == 0
    assert samples[("mystery", ())] == 3
    text = registry.generate_prometheus()
    assert "# TYPE mystery untyped\n" in text and "# TYPE build_info gauge\n" in text
    assert "# TYPE queue_wait histogram\n" in text and "# TYPE jobs_created gauge\n" in text


def test_openmetrics_keeps_types_units_timestamps_and_exemplars(every):
    registry, _ = every
    families = om_families(registry.generate_openmetrics())
    assert {name: f.type for name, f in families.items()} == {
        "jobs": "counter", "temperature_celsius": "gauge", "rpc_seconds": "summary", "size_bytes": "histogram",
        "queue_wait": "gaugehistogram", "build": "info", "mode": "stateset", "mystery": "unknown",
    }
    assert families["temperature_celsius"].unit == "celsius"
    total = families["jobs"].samples[0]
    assert (total.name, total.value, total.exemplar.labels, total.exemplar.value) == ("jobs_total", 7, {"trace_id": "ab"}, 1)
    assert float(total.exemplar.timestamp) == 1700000001.0
    bucket = [s for s in families["size_bytes"].samples if s.exemplar][0]
    assert bucket.labels["le"] == "100.0" and bucket.exemplar.value == 50.0
    assert families["build"].samples[0].labels == {"version": "1.2.3", "commit": "abc"}


def test_timestamps_in_each_format():
    registry = CollectorRegistry()

    class Stamped:
        def collect(self):
            g = GaugeMetricFamily("reading", "A reading.", labels=["sensor"])
            g.add_metric(["a"], 1.5, timestamp=1700000000.25)
            g.add_metric(["b"], 2.5, timestamp=Timestamp(1700000000, 500000000))
            yield g

    registry.register(Stamped())
    text = registry.generate_prometheus()
    assert 'reading{sensor="a"} 1.5 1700000000250\n' in text  # milliseconds in 0.0.4
    assert 'reading{sensor="b"} 2.5 1700000000500\n' in text
    families = om_families(registry.generate_openmetrics())
    assert [float(s.timestamp) for s in families["reading"].samples] == [1700000000.25, 1700000000.5]
    (family,) = parse_delimited(registry.generate_protobuf())
    assert [m.timestamp_ms for m in family.metric] == [1700000000250, 1700000000500]


def test_protobuf_regroups_samples_into_metrics(every):
    registry, _ = every
    families = {f.name: f for f in parse_delimited(registry.generate_protobuf())}
    jobs = families["jobs_total"]
    assert [m.counter.value for m in jobs.metric] == [7, 2]
    assert jobs.metric[0].counter.created_timestamp.seconds == 1700000000
    assert jobs.metric[0].counter.exemplar.value == 1.0
    size = families["size_bytes"].metric[0].histogram
    assert (size.sample_count, size.sample_sum) == (4, 260.0)
    assert [(b.upper_bound, b.cumulative_count) for b in size.bucket] == [(10.0, 1), (100.0, 3)]
    rpc = families["rpc_seconds"].metric[0].summary
    assert (rpc.sample_count, rpc.sample_sum) == (4, 2.5)
    assert families["build_info"].metric[0].gauge.value == 1
    assert len(families["mode"].metric) == 2
    assert families["mystery"].metric[0].untyped.value == 3.0


def test_prometheus_clients_own_families_are_accepted():
    from prometheus_client.core import CounterMetricFamily as TheirCounter
    from prometheus_client.core import GaugeMetricFamily as TheirGauge

    registry = CollectorRegistry()

    class Theirs:
        def collect(self):
            yield TheirCounter("their_requests", "Requests.", value=3)
            g = TheirGauge("their_depth", "Depth.", labels=["q"])
            g.add_metric(["x"], 4)
            yield g

    registry.register(Theirs())
    samples = text_samples(registry.generate_prometheus())
    assert samples[("their_requests_total", ())] == 3
    assert samples[("their_depth", (("q", "x"),))] == 4


def test_describe_or_auto_describe_catches_duplicate_names():
    registry = CollectorRegistry()
    Counter("requests", "Requests.", registry=registry)

    class Described:
        def describe(self):
            return [CounterMetricFamily("requests", "Clashes with the native counter.")]

        def collect(self):
            return []

    with pytest.raises(ValueError, match=r"Duplicated timeseries in CollectorRegistry: \['requests_created', 'requests_total'\]"):
        registry.register(Described())

    class Undescribed:
        def collect(self):
            return [GaugeMetricFamily("depth", "Depth.", value=1)]

    registry.register(Undescribed())
    registry.register(Undescribed())  # without describe() nothing is checked, as prometheus_client
    checking = CollectorRegistry(auto_describe=True)
    checking.register(Undescribed())
    with pytest.raises(ValueError, match=r"Duplicated timeseries in CollectorRegistry: \['depth'\]"):
        checking.register(Undescribed())


def test_register_and_unregister_errors():
    registry = CollectorRegistry()
    collector = Every()
    registry.register(collector)
    with pytest.raises(ValueError, match=r"collector .* is already registered in this registry"):
        registry.register(collector)
    with pytest.raises(TypeError, match=r"register\(\) takes a collector \(an object with a collect\(\) method"):
        registry.register(object())
    registry.unregister(collector)
    assert registry.generate_prometheus() == ""
    with pytest.raises(ValueError, match=r"collector .* is not registered in this registry"):
        registry.unregister(collector)


def test_a_metric_made_elsewhere_can_join_another_registry():
    first, second = CollectorRegistry(), CollectorRegistry()
    c = Counter("shared", "Shared.", registry=first)
    c.inc(2)
    second.register(c)
    second.register(c)  # again: nothing (re-registration returns the existing metric, by design)
    assert second.get_sample_value("shared_total") == 2.0
    Counter("other", "Other.", registry=second)
    clash = Counter("other", "Another help.", registry=CollectorRegistry())
    with pytest.raises(ValueError, match=r"Duplicated timeseries in CollectorRegistry: .*'other'"):
        second.register(clash)


@pytest.mark.parametrize(
    "family, message",
    [
        (type("F", (), {"name": "x", "documentation": "", "type": "histogramm", "unit": "", "samples": []})(),
         r"metric family 'x' has type 'histogramm'; allowed: counter, gauge, summary, histogram, gaugehistogram, info, stateset, unknown"),
        (type("F", (), {"name": "x"})(), r"metric family 'x' has no attribute 'documentation'"),
        (type("F", (), {"name": "x", "documentation": "", "type": "gauge", "unit": "",
                        "samples": [("x", {}, "high")]})(),
         r"metric family 'x', sample 0 \('x'\): value must be a number, got str \('high'\)"),
        (type("F", (), {"name": "x", "documentation": "", "type": "gauge", "unit": "",
                        "samples": [("x", {"k": 1}, 1.0)]})(),
         r"metric family 'x', sample 0 \('x'\): labels: a label value must be a str, got int \(1\)"),
        (type("F", (), {"name": "x", "documentation": "", "type": "gauge", "unit": "",
                        "samples": [("x", {}, 1.0, None, ({"a": "b"}, 1.0))]})(),
         r"metric family 'x' has an exemplar on sample 'x'; exemplars are allowed only on a counter's _total and a histogram's _bucket samples"),
        (type("F", (), {"name": "x", "documentation": "", "type": "gauge", "unit": "", "samples": [42]})(),
         r"metric family 'x', sample 0 must be a Sample \(name, labels, value\[, timestamp, exemplar\]\), got int"),
    ],
)
def test_bad_collector_output_is_a_clear_error(family, message):
    registry = CollectorRegistry()

    class Bad:
        def collect(self):
            return [family]

    registry.register(Bad())
    for render in (registry.generate_prometheus, registry.generate_openmetrics, registry.generate_protobuf):
        with pytest.raises((TypeError, ValueError), match=message):
            render()


def test_family_constructor_errors(legacy_names):
    with pytest.raises(ValueError, match=r"invalid metric type 'bogus' for 'x'; allowed: counter, gauge"):
        Metric("x", "", "bogus")
    with pytest.raises(ValueError, match=r"GaugeMetricFamily: invalid metric name .1x.: a metric name must match"):
        GaugeMetricFamily("1x", "")
    with pytest.raises(ValueError, match=r"GaugeMetricFamily 'g': give either value .* or labels"):
        GaugeMetricFamily("g", "", value=1, labels=["a"])
    with pytest.raises(ValueError, match=r"GaugeMetricFamily 'g': add_metric\(\) got 2 label value\(s\) for the label names \('a',\)"):
        GaugeMetricFamily("g", "", labels=["a"]).add_metric(["x", "y"], 1)
    with pytest.raises(ValueError, match=r"SummaryMetricFamily 's': give count_value and sum_value together"):
        SummaryMetricFamily("s", "", count_value=1)
    with pytest.raises(ValueError, match=r"histogram family 'h': the last bucket must be '\+Inf' \(the count\), got '1.0'"):
        HistogramMetricFamily("h", "", buckets=[("1.0", 2)])
    with pytest.raises(ValueError, match=r"Timestamp: nsec must be in \[0, 1e9\)"):
        Timestamp(1, 1e9)
    assert Metric("x", "", "untyped").type == "unknown"
    assert CounterMetricFamily("c_total", "").name == "c"
    assert GaugeMetricFamily("t_celsius", "", unit="celsius").name == "t_celsius"


def test_collect_and_get_sample_value_cover_metrics_and_collectors(every):
    registry, _ = every
    c = Counter("native", "Native.", ["k"], registry=registry)
    c.labels("v").inc(3)
    names = [m.name for m in registry.collect()]
    assert names[0] == "native" and "jobs" in names
    assert registry.get_sample_value("native_total", {"k": "v"}) == 3
    assert registry.get_sample_value("jobs_total", {"queue": "slow"}) == 2
    assert registry.get_sample_value("jobs_total", {"queue": "none"}) is None


def test_restricted_registry_keeps_only_the_named_families(every):
    registry, _ = every
    Counter("native", "Native.", registry=registry).inc()
    Counter("hidden", "Hidden.", registry=registry).inc()
    restricted = registry.restricted_registry(["native_total", "temperature_celsius", "jobs_total"])
    samples = text_samples(restricted.generate_prometheus())
    assert {name for name, _ in samples} == {"native_total", "temperature_celsius", "jobs_total"}
    assert "hidden" not in restricted.generate_openmetrics()
    assert {f.name for f in parse_delimited(restricted.generate_protobuf())} == {
        "native_total", "temperature_celsius", "jobs_total"}
    assert [m.name for m in restricted.collect()] == ["native", "jobs", "temperature_celsius"]
    with pytest.raises(TypeError, match=r"restricted_registry\(\) takes a collection of metric names, not one str"):
        registry.restricted_registry("native_total")


def test_target_info():
    registry = CollectorRegistry(target_info={"service": "checkout", "region": "eu"})
    assert registry.get_target_info() == {"service": "checkout", "region": "eu"}
    families = om_families(registry.generate_openmetrics())
    assert families["target"].type == "info"
    assert families["target"].samples[0].labels == {"service": "checkout", "region": "eu"}
    registry.set_target_info(None)
    assert registry.generate_prometheus() == ""
    with pytest.raises(TypeError, match=r"target_info must be a dict of str to str"):
        registry.set_target_info({"a": 1})


def test_generate_latest_and_write_to_textfile(tmp_path, every):
    registry, _ = every
    body = generate_latest(registry)
    assert isinstance(body, bytes) and body.decode() == registry.generate_prometheus()
    path = tmp_path / "pyveda.prom"
    path.write_text("stale")
    write_to_textfile(str(path), registry)
    assert path.read_bytes() == generate_latest(registry)
    assert os.listdir(tmp_path) == ["pyveda.prom"]  # no temporary file left
    with pytest.raises(FileNotFoundError):
        write_to_textfile(str(tmp_path / "missing" / "x.prom"), registry)
    with pytest.raises(TypeError, match=r"generate_latest: registry must be a pyveda.telemetry.CollectorRegistry, got dict"):
        generate_latest({})


def test_the_default_registry_has_prometheus_clients_process_platform_and_gc_collectors():
    samples = text_samples(REGISTRY.generate_prometheus())
    names = {name for name, _ in samples}
    if sys.platform.startswith("linux"):
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                     "process_start_time_seconds", "process_open_fds", "process_max_fds"):
            assert name in names
        assert samples[("process_open_fds", ())] == len(os.listdir("/proc/self/fd"))  # each listing counts its own fd
        assert samples[("process_resident_memory_bytes", ())] > 1e6
    info = [labels for name, labels in samples if name == "python_info"]
    assert dict(info[0])["major"] == str(sys.version_info.major)
    assert samples[("python_gc_collections_total", (("generation", "0"),))] >= 0


def test_the_prometheus_client_bridge_carries_collectors_info_and_enum():
    prometheus_client = pytest.importorskip("prometheus_client")
    from pyveda.telemetry import Enum, Info, register_prometheus_collector

    ours = CollectorRegistry()
    ours.register(Every())
    Info("bridge_build", "Build.", registry=ours).info({"version": "9"})
    Enum("bridge_state", "State.", states=["a", "b"], registry=ours).state("b")
    app = prometheus_client.CollectorRegistry()
    register_prometheus_collector(app, source=ours)
    assert app.get_sample_value("jobs_total", {"queue": "fast"}) == 7
    assert app.get_sample_value("bridge_build_info", {"version": "9"}) == 1
    assert app.get_sample_value("bridge_state", {"bridge_state": "b"}) == 1
    import prometheus_client.openmetrics.exposition

    text = prometheus_client.openmetrics.exposition.generate_latest(app).decode()
    assert "# TYPE temperature_celsius gauge\n" in text and "# UNIT temperature_celsius celsius\n" in text
    # The default registry's process/platform/GC collectors stay out: prometheus_client has its own.
    default = prometheus_client.CollectorRegistry()
    prometheus_client.ProcessCollector(registry=default)
    collector = register_prometheus_collector(default)
    assert default.get_sample_value("process_open_fds") is not None
    default.unregister(collector)


def test_collector_base_class_requires_collect_like_prometheus_clients():
    from pyveda.telemetry import Collector

    with pytest.raises(TypeError, match=r"abstract method"):
        Collector()

    class Depth(Collector):
        def collect(self):
            yield GaugeMetricFamily("depth", "Depth.", value=2)

    registry = CollectorRegistry()
    registry.register(Depth())
    assert registry.get_sample_value("depth") == 2
