"""Registration rules and the exposition of a whole registry."""

import pytest

from pyveda.telemetry import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_prometheus


def test_same_definition_returns_shared_series(registry):
    a = Counter("jobs_total", "Jobs", registry=registry)
    b = Counter("jobs_total", "Jobs", registry=registry)
    a.inc()
    b.inc(2)
    assert a.get() == b.get() == 3
    assert registry.names() == ["jobs"]


def test_same_name_other_type_is_an_error(registry):
    Counter("jobs", "Jobs", registry=registry)
    with pytest.raises(ValueError, match=r"metric 'jobs' is already registered as a counter with label names \(\); "
                                         r"cannot register it again as a gauge"):
        Gauge("jobs", "Jobs", registry=registry)


def test_same_name_other_labels_is_an_error(registry):
    Counter("jobs", "Jobs", ("queue",), registry=registry)
    with pytest.raises(ValueError, match=r"already registered as a counter with label names \('queue'\)"):
        Counter("jobs", "Jobs", ("kind",), registry=registry)


def test_same_name_other_help_is_an_error(registry):
    Gauge("depth", "Queue depth", registry=registry)
    with pytest.raises(ValueError, match=r"already registered with help 'Queue depth'"):
        Gauge("depth", "Depth", registry=registry)


def test_exposed_names_must_not_clash(registry):
    Counter("requests", "Requests", registry=registry)
    with pytest.raises(ValueError, match=r"metric 'requests_total' would expose the sample name 'requests_total', "
                                         r"which metric 'requests' already uses"):
        Gauge("requests_total", "Requests", registry=registry)
    Histogram("latency", "Latency", registry=registry)
    with pytest.raises(ValueError, match=r"'latency_count'"):
        Gauge("latency_count", "n", registry=registry)


def test_unregister(registry):
    c = Counter("c", "h", registry=registry)
    c.inc()
    registry.unregister(c)
    assert registry.generate_prometheus() == ""
    c.inc()  # the handle keeps working
    assert c.get() == 2
    with pytest.raises(ValueError, match=r"metric 'c' is not registered in this registry"):
        registry.unregister(c)
    with pytest.raises(TypeError, match=r"unregister\(\) takes a metric or a collector, got str"):
        registry.unregister("c")


def test_registries_are_independent():
    a, b = CollectorRegistry(), CollectorRegistry()
    Counter("x", "h", registry=a).inc()
    Counter("x", "h", registry=b).inc(5)
    assert "x_total 1\n" in a.generate_prometheus()
    assert "x_total 5\n" in b.generate_prometheus()


def test_default_registry_and_generate_prometheus():
    g = Gauge("pyveda_test_default_gauge", "A gauge in the default registry")
    try:
        g.set(7)
        assert "pyveda_test_default_gauge 7\n" in generate_prometheus()
        assert "pyveda_test_default_gauge" in REGISTRY.names()
    finally:
        REGISTRY.unregister(g)


def test_a_labelled_child_has_the_metric_class_and_cannot_be_relabelled():
    from pyveda.telemetry import CollectorRegistry, Counter

    registry = CollectorRegistry()
    requests = Counter("requests", "Requests.", ["route"], registry=registry)
    child = requests.labels("/a")
    assert type(child) is Counter  # so the facade's Python methods work on children too
    child.inc()
    assert requests.labels("/a").get() == 1.0
    with pytest.raises(ValueError, match=r"counter 'requests': this is already one labelled series .* cannot be called on it again"):
        child.labels("/b")


def test_labels_without_values_on_an_unlabelled_metric_is_an_error():
    from pyveda.telemetry import CollectorRegistry, Counter

    plain = Counter("plain", "No labels.", registry=CollectorRegistry())
    with pytest.raises(ValueError, match=r"counter 'plain' has no label names, so it has no labelled series to select: record on it directly"):
        plain.labels()


def test_a_unit_is_declared_in_openmetrics_and_protobuf_like_prometheus_client():
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    from prometheus_proto import parse_delimited
    from pyveda.telemetry import CollectorRegistry, Histogram

    registry = CollectorRegistry()
    Histogram("request", "Request time.", unit="seconds", registry=registry, buckets=(0.1, 1.0)).observe(0.5)
    (family,) = text_string_to_metric_families(registry.generate_openmetrics())
    assert (family.name, family.unit) == ("request_seconds", "seconds")
    (message,) = parse_delimited(registry.generate_protobuf())
    assert message.unit == "seconds"
