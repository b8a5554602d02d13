"""Counter, Gauge and Histogram: behaviour, labels, concurrency, accuracy."""

import math
import threading

import pytest

from pyveda import _core
from pyveda.telemetry import REGISTRY, Counter, Gauge, Histogram


def test_guide_custom_metrics_example_runs_as_written():
    # The "Custom Metrics" section of the telemetry guide, verbatim.
    requests_total = Counter('http_requests_total', 'Total HTTP requests')
    requests_total.inc()
    requests_total.inc(5)

    active_connections = Gauge('active_connections', 'Active connections')
    active_connections.set(42)
    active_connections.inc()
    active_connections.dec()

    request_duration = Histogram('request_duration_ms', 'Request duration')
    request_duration.observe(12.5)
    request_duration.observe(45.2)

    p95 = request_duration.get_percentile(95)
    mean = request_duration.get_mean()

    assert requests_total.get() >= 6  # the default registry may be shared with other tests
    assert active_connections.get() == 42
    assert p95 == pytest.approx(45.2, rel=0.006)
    assert request_duration.get_count() >= 2
    assert mean > 0
    for name in ("http_requests", "active_connections", "request_duration_ms"):
        REGISTRY._core.unregister(name)


class TestCounter:
    def test_inc_get_reset(self, registry):
        c = Counter("jobs_total", "Jobs", registry=registry)
        assert c.get() == 0
        c.inc()
        c.inc(5)
        c.inc(2.5)
        c.inc(True)
        assert c.get() == 9.5
        c.reset()
        assert c.get() == 0
        c.inc(3)
        assert c.get() == 3

    def test_name_drops_and_exposes_total(self, registry):
        c = Counter("http_requests_total", "Total HTTP requests", registry=registry)
        assert c.name == "http_requests"
        c.inc(2)
        assert "http_requests_total 2\n" in registry.generate_prometheus()

    @pytest.mark.parametrize("amount", [-1, -0.5, float("nan"), float("inf"), float("-inf")])
    def test_rejects_bad_amount(self, registry, amount):
        c = Counter("c", "h", registry=registry)
        with pytest.raises(ValueError, match=r"counter increment must be a finite number >= 0, got"):
            c.inc(amount)
        assert c.get() == 0

    def test_non_number_amount(self, registry):
        c = Counter("c", "h", registry=registry)
        with pytest.raises(TypeError, match=r"amount must be a number \(int or float\), got str"):
            c.inc("5")

    def test_created_time_is_now(self, registry):
        import time

        c = Counter("c", "h", registry=registry)
        assert abs(c.created_unix_nano / 1e9 - time.time()) < 60

    def test_exact_total_with_8_threads(self, registry):
        c = Counter("c", "h", registry=registry)
        labelled = Counter("l", "h", ("worker",), registry=registry)
        per_thread = 100_000

        def work(i):
            child = labelled.labels(str(i % 2))
            for _ in range(per_thread):
                c.inc()
                child.inc()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert c.get() == 8 * per_thread
        assert labelled.labels("0").get() == 4 * per_thread
        assert labelled.labels("1").get() == 4 * per_thread


class TestGauge:
    def test_set_inc_dec(self, registry):
        g = Gauge("active_connections", "Active connections", registry=registry)
        g.set(42)
        g.inc()
        g.inc(2.5)
        g.dec()
        g.dec(0.5)
        assert g.get() == 44
        g.set(-3)
        assert g.get() == -3
        g.set(float("nan"))  # the Prometheus data model allows any float
        assert math.isnan(g.get())

    def test_set_to_current_time(self, registry):
        import time

        g = Gauge("last_run", "Unix time of the last run", registry=registry)
        g.set_to_current_time()
        assert abs(g.get() - time.time()) < 5

    def test_rejects_non_number(self, registry):
        g = Gauge("g", "h", registry=registry)
        with pytest.raises(TypeError, match=r"value must be a number \(int or float\), got NoneType"):
            g.set(None)


class TestHistogram:
    def test_statistics(self, registry):
        h = Histogram("request_duration_ms", "Request duration", registry=registry)
        assert h.get_count() == 0
        assert math.isnan(h.get_mean())
        assert math.isnan(h.get_percentile(50))
        assert math.isnan(h.get_min()) and math.isnan(h.get_max())
        for v in (12.5, 45.2, 3, 0):
            h.observe(v)
        assert h.get_count() == 4
        assert h.get_sum() == pytest.approx(60.7)
        assert h.get_mean() == pytest.approx(60.7 / 4)
        assert h.get_min() == 0
        assert h.get_max() == 45.2
        assert h.get_percentile(0) == 0
        assert h.get_percentile(100) == 45.2
        assert h.get_percentile(50) == pytest.approx(3, rel=0.006)
        assert h.get_percentile(75) == pytest.approx(12.5, rel=0.006)

    @pytest.mark.parametrize("value", [-1, -1e-9, float("nan"), float("inf"), float("-inf")])
    def test_rejects_bad_observation(self, registry, value):
        h = Histogram("h", "d", registry=registry)
        with pytest.raises(ValueError, match=r"histogram observation must be a finite number >= 0, got"):
            h.observe(value)
        assert h.get_count() == 0

    @pytest.mark.parametrize("p", [-0.1, 100.5, float("nan"), 1000])
    def test_percentile_out_of_range(self, registry, p):
        h = Histogram("h", "d", registry=registry)
        h.observe(1)
        with pytest.raises(ValueError, match=r"percentile must be in \[0, 100\], got"):
            h.get_percentile(p)

    def test_percentile_accuracy_lognormal(self, registry):
        np = pytest.importorskip("numpy")
        rng = np.random.default_rng(20261127)
        samples = rng.lognormal(mean=3.0, sigma=1.0, size=1_000_000)
        h = Histogram("latency_ms", "d", registry=registry)
        observe = h.observe
        for v in samples.tolist():
            observe(v)
        assert h.get_count() == samples.size
        assert h.get_sum() == pytest.approx(float(samples.sum()), rel=1e-9)
        for p in (50, 95, 99, 99.9, 10):
            truth = float(np.percentile(samples, p))
            assert h.get_percentile(p) == pytest.approx(truth, rel=0.01), p

    def test_snapshot_is_exponential_layout(self, registry):
        h = Histogram("h", "d", registry=registry, scale=3)
        for v in (1.0, 1.5, 2.0, 0.0, 100.0):
            h.observe(v)
        s = h.snapshot()
        assert s.scale == 3 and h.scale == 3
        assert s.zero_count == 1
        assert s.count == 5 and sum(s.counts) == 4
        base = 2 ** (2 ** -3)
        # Every non-zero value v lies in (base**i, base**(i+1)] of its bucket i.
        for v in (1.0, 1.5, 2.0, 100.0):
            i = math.ceil(math.log(v, base) - 1e-12) - 1
            assert s.counts[i - s.offset] >= 1
            assert base**i < v <= base ** (i + 1) * (1 + 1e-12)
        assert s.bucket_lower(s.offset) == pytest.approx(base**s.offset)

    def test_bad_scale(self, registry):
        with pytest.raises(ValueError, match=r"histogram scale must be an integer in \[0, 8\], got 9"):
            Histogram("h", "d", registry=registry, scale=9)
        with pytest.raises(TypeError, match=r"scale must be an int in \[0, 8\], got float"):
            Histogram("h", "d", registry=registry, scale=6.0)

    def test_memory_is_bounded(self):
        # The sketch keeps a fixed window of counters however many samples it sees.
        assert _core.HISTOGRAM_MAX_BUCKETS * 8 <= 32 * 1024


class TestLabels:
    def test_positional_and_named(self, registry):
        c = Counter("http_requests_total", "Total HTTP requests", labelnames=("method",), registry=registry)
        c.labels("GET").inc()
        c.labels(method="GET").inc(2)
        c.labels("POST").inc()
        assert c.labels("GET").get() == 3
        assert c.labels("GET") is c.labels("GET")
        text = registry.generate_prometheus()
        assert 'http_requests_total{method="GET"} 3\n' in text
        assert 'http_requests_total{method="POST"} 1\n' in text

    def test_values_are_converted_with_str(self, registry):
        c = Counter("responses", "h", ("code",), registry=registry)
        c.labels(200).inc()
        c.labels("200").inc()
        assert c.labels(code=200).get() == 2

    def test_multiple_labels_any_order_by_name(self, registry):
        g = Gauge("temp", "h", ("room", "floor"), registry=registry)
        g.labels(floor="1", room="a").set(20)
        assert g.labels("a", "1").get() == 20
        assert g.labels(room="a", floor=1).get() == 20

    def test_wrong_number_of_values(self, registry):
        c = Counter("c", "h", ("method", "code"), registry=registry)
        with pytest.raises(ValueError, match=r"counter 'c' expects 2 label value\(s\) for \('method', 'code'\), got 1"):
            c.labels("GET")

    def test_unknown_label_name(self, registry):
        c = Counter("c", "h", ("method",), registry=registry)
        with pytest.raises(ValueError, match=r"counter 'c' has no label named 'verb'; its label names are \('method',\)"):
            c.labels(verb="GET")

    def test_labels_on_unlabelled_metric(self, registry):
        c = Counter("c", "h", registry=registry)
        with pytest.raises(ValueError, match=r"counter 'c' has no label names, so labels\(\) takes no values; got 1"):
            c.labels("GET")

    def test_mixed_positional_and_named(self, registry):
        c = Counter("c", "h", ("a", "b"), registry=registry)
        with pytest.raises(ValueError, match=r"pass label values by position or by name, not both"):
            c.labels("x", b="y")

    def test_recording_on_labelled_parent(self, registry):
        h = Histogram("h", "d", ("route",), registry=registry)
        with pytest.raises(ValueError, match=r"histogram 'h' has label names \('route',\): select a series with \.labels\(\.\.\.\) first"):
            h.observe(1)

    def test_remove_and_clear(self, registry):
        c = Counter("c", "h", ("k",), registry=registry)
        c.labels("a").inc()
        c.labels("b").inc()
        c.remove("a")
        text = registry.generate_prometheus()
        assert 'c_total{k="a"}' not in text and 'c_total{k="b"} 1' in text
        assert c.labels("a").get() == 0  # a new series
        c.clear()
        assert "c_total{" not in registry.generate_prometheus()


class TestNamesAndTypes:
    @pytest.mark.parametrize(
        "name, message",
        [
            ("", r"metric name must not be empty"),
            ("http-requests", r"invalid metric name 'http-requests': a metric name must match \[a-zA-Z_:\]\[a-zA-Z0-9_:\]\*"),
            ("1st", r"invalid metric name '1st'"),
            ("caf\u00e9", r"invalid metric name"),
        ],
    )
    def test_invalid_metric_name(self, registry, legacy_names, name, message):
        with pytest.raises(ValueError, match=message):
            Counter(name, "h", registry=registry)

    @pytest.mark.parametrize(
        "label, message",
        [
            ("", r"label name must not be empty"),
            ("__meta", r"invalid label name '__meta': names starting with '__' are reserved for Prometheus"),
            ("http-method", r"invalid label name 'http-method': a label name must match \[a-zA-Z_\]\[a-zA-Z0-9_\]\*"),
            ("9", r"invalid label name '9'"),
        ],
    )
    def test_invalid_label_name(self, registry, legacy_names, label, message):
        with pytest.raises(ValueError, match=message):
            Gauge("g", "h", (label,), registry=registry)

    def test_reserved_histogram_labels(self, registry):
        with pytest.raises(ValueError, match=r"label name 'quantile' is reserved for histograms"):
            Histogram("h", "d", ("quantile",), registry=registry)

    def test_repeated_label_name(self, registry):
        with pytest.raises(ValueError, match=r"label name 'a' appears twice"):
            Counter("c", "h", ("a", "a"), registry=registry)

    @pytest.mark.parametrize("cls", [Counter, Gauge, Histogram])
    def test_description_must_be_str(self, registry, cls):
        with pytest.raises(TypeError, match=rf"{cls.__name__}: description must be a str, got int \(5\)"):
            cls("m", 5, registry=registry)

    def test_name_must_be_str(self, registry):
        with pytest.raises(TypeError, match=r"Counter: name must be a str, got bytes"):
            Counter(b"m", "h", registry=registry)

    def test_labelnames_must_be_a_sequence(self, registry):
        with pytest.raises(TypeError, match=r"labelnames must be a sequence of str such as \('method',\), not a single str"):
            Counter("m", "h", "method", registry=registry)
        with pytest.raises(TypeError, match=r"Counter: each label name must be a str, got int"):
            Counter("m", "h", (1,), registry=registry)

    def test_registry_must_be_a_registry(self):
        with pytest.raises(TypeError, match=r"registry must be a CollectorRegistry, got dict"):
            Counter("m", "h", registry={})


class TestLabelValues:
    def test_values_are_converted_with_str_each_its_own_series(self, registry):
        c = Counter("typed_total", "t", ["v"], registry=registry)
        c.labels(1).inc(1)
        c.labels(1.0).inc(2)
        c.labels(True).inc(4)
        c.labels("1").inc(8)  # str(1) == "1": the same series as labels(1)
        assert c.labels(1).get() == 9
        assert c.labels(1.0).get() == 2
        assert c.labels(True).get() == 4
        text = registry.generate_prometheus()
        assert 'typed_total{v="1"} 9\n' in text
        assert 'typed_total{v="1.0"} 2\n' in text
        assert 'typed_total{v="True"} 4\n' in text

    def test_several_values_and_names_also_use_str(self, registry):
        c = Counter("pair_total", "t", ["a", "b"], registry=registry)
        c.labels(1, True).inc()
        c.labels(1.0, 1).inc(2)
        c.labels(a=1, b=True).inc(4)
        assert c.labels("1", "True").get() == 5
        assert c.labels("1.0", "1").get() == 2

    def test_a_nul_byte_is_kept_whole(self, registry):
        c = Counter("nul_total", "t", ["v"], registry=registry)
        c.labels("a\x00b").inc()
        c.labels("a\x00c").inc(2)
        assert c.labels("a\x00b").get() == 1 and c.labels("a\x00c").get() == 2
        samples = [s for f in registry._core.collect_samples() for s in f[3] if s[0] == "nul_total"]
        assert sorted(s[1]["v"] for s in samples) == ["a\x00b", "a\x00c"]
        c.remove("a\x00b")
        assert [s[1]["v"] for f in registry._core.collect_samples() for s in f[3] if s[0] == "nul_total"] == ["a\x00c"]

    def test_remove_through_one_object_does_not_blind_another_sharing_the_family(self, registry):
        a = Counter("shared_total", "s", ["k"], registry=registry)
        b = Counter("shared_total", "s", ["k"], registry=registry)  # re-registration: the same family
        b.labels("x").inc(7)
        a.remove("x")
        b.labels("x").inc(5)  # b's cached child was removed: it must resolve to the new series
        assert 'shared_total{k="x"} 5\n' in registry.generate_prometheus()
        a.clear()
        b.labels("x").inc(3)
        assert 'shared_total{k="x"} 3\n' in registry.generate_prometheus()


def test_labels_cache_is_bounded_by_the_series_not_the_calls(registry):
    import gc
    import tracemalloc

    class Tag:  # hashes by identity; every instance prints the same
        def __str__(self):
            return "same"

    c = Counter("bounded_total", "b", ["v"], registry=registry)
    c.labels(Tag()).inc()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100_000):
            c.labels(Tag()).inc()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert c.labels("same").get() == 100_001  # one series
    assert grown < 1024 * 1024  # keyed by str(): no entry per object (was ~30 MiB per 100,000 calls)


def test_labels_calls_str_once_per_value(registry):
    calls = []

    class Tag:
        def __str__(self):
            calls.append(1)
            return "t"

    c = Counter("once_total", "o", ["a", "b"], registry=registry)
    c.labels(Tag(), Tag()).inc()  # a miss: the key and the series text come from one str() each
    assert len(calls) == 2
    c.labels(a=Tag(), b="x").inc()
    assert len(calls) == 3
    assert c.labels("t", "t").get() == 1 and c.labels("t", "x").get() == 1
