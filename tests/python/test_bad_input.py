"""Out-of-range and mistyped arguments get an exception that names the argument,
the value and the rule: never a raw binding signature dump or an OverflowError."""

import math
import time

import pytest

import pyveda as veda
from pyveda.telemetry import CollectorRegistry, Counter, Gauge, Histogram, TracingSystem

BIG = 10**400  # an int no float can hold


def builder():
    return veda.Config.builder()


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: builder().queue_size(2**64).build(), ValueError,
         r"^Config\.queue_size must be at most 2\*\*62, got 18446744073709551616$"),
        (lambda: builder().max_snapshots(2**64).build(), ValueError,
         r"^Config\.max_snapshots must be at most 2\*\*62, got 18446744073709551616$"),
        (lambda: builder().queue_size(-1).build(), ValueError, r"^Config\.queue_size must be >= 0, got -1$"),
        (lambda: builder().collect_interval(BIG).build(), ValueError,
         r"^Config\.collect_interval must be a finite number of seconds > 0, got an int of 401 digits \(at most 1e9\)$"),
        (lambda: builder().collect_interval(2e9).build(), ValueError,
         r"^Config\.collect_interval must be a finite number of seconds > 0, got 2000000000\.0 \(at most 1e9\)$"),
    ],
)
def test_config_ranges(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_config_limits_come_from_the_core():
    from pyveda import _core

    options = _core.RuntimeOptions()
    options.queue_size = _core.RuntimeOptions.max_queue_size + 1
    with pytest.raises(ValueError, match=r"queue_size must be at most 2\*\*62"):
        options.validate()
    assert builder().queue_size(_core.RuntimeOptions.max_queue_size).build().queue_size == 2**62


def test_shutdown_wait_must_be_a_bool():
    runtime = veda.Runtime(builder().threads(1).build())
    try:
        with pytest.raises(TypeError, match=r"^shutdown\(\): wait must be True or False, got str \('no'\)$"):
            runtime.shutdown(wait="no")
        assert not runtime.is_shutdown
        with pytest.raises(TypeError, match=r"^shutdown\(\): wait must be True or False, got int \(0\)$"):
            veda.shutdown(wait=0)
    finally:
        runtime.shutdown()


def test_result_timeout_type_nan_and_huge():
    runtime = veda.Runtime(builder().threads(1).build())
    try:
        slow = runtime.spawn(time.sleep, 0.5)
        with pytest.raises(TypeError, match=r"^timeout must be a number of seconds or None, got str \('x'\)$"):
            slow.result(timeout="x")
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # NaN waits not at all, as concurrent.futures
            slow.result(timeout=math.nan)
        with pytest.raises(TimeoutError):
            slow.exception(timeout=-1)
        assert time.monotonic() - started < 0.45  # both returned before the task ended
        assert slow.result(timeout=BIG) is None  # no limit, not an OverflowError
        assert runtime.try_spawn(BIG, int, 3).result() == 3
    finally:
        runtime.shutdown()


def test_histogram_scale_range():
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match=r"^histogram scale must be an integer in \[0, 8\], got 1099511627776$"):
        Histogram("h", "x", scale=2**40, registry=registry)
    with pytest.raises(ValueError, match=r"^histogram scale must be an integer in \[0, 8\], got -1$"):
        Histogram("h", "x", scale=-1, registry=registry)
    with pytest.raises(TypeError, match=r"^Histogram: scale must be an int in \[0, 8\], got float$"):
        Histogram("h", "x", scale=2.0, registry=registry)


def test_tracing_capacity_and_limits_range():
    with pytest.raises(ValueError, match=r"^capacity must be a positive int below 2\*\*64, got 1180591620717411303424$"):
        TracingSystem(capacity=2**70)
    with pytest.raises(ValueError, match=r"^max_events must be a non-negative int below 2\*\*64 or None, got 18446744073709551616$"):
        TracingSystem(max_events=2**64)


def test_tracing_limit_from_the_environment_too_big_is_ignored(monkeypatch):
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "9" * 30)
    with pytest.warns(RuntimeWarning, match=r"ignoring OTEL_SPAN_EVENT_COUNT_LIMIT='9{30}': not a non-negative integer"):
        tracing = TracingSystem()
    assert tracing.span_limits["max_events"] == 128


def test_lone_surrogates_in_help_names_and_label_values():
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match=r"^Counter: description 'bad \\ud800' is not valid Unicode text: "
                       r"it has a lone surrogate at index 4, which UTF-8 cannot encode$"):
        Counter("c", "bad \ud800", registry=registry)
    with pytest.raises(ValueError, match=r"^Gauge: name 'g\\udc00' is not valid Unicode text"):
        Gauge("g\udc00", "x", registry=registry)
    labelled = Counter("c2", "x", ["a"], registry=registry)
    with pytest.raises(ValueError, match=r"^label value '\\ud800' is not valid Unicode text \(it has a lone surrogate, "
                       r"which UTF-8 cannot encode\); label values must be encodable as UTF-8$"):
        labelled.labels("\ud800")
    labelled.labels("fine").inc()
    assert 'c2_total{a="fine"} 1\n' in registry.generate_prometheus()


@pytest.mark.parametrize("method", ["inc", "set", "observe"])
def test_numbers_too_big_for_a_float(method):
    registry = CollectorRegistry()
    metric = {"inc": Counter, "set": Gauge, "observe": Histogram}[method]("m", "x", registry=registry)
    what = "amount" if method == "inc" else "value"
    with pytest.raises(ValueError, match=rf"^{what} must be a number within float range \(about 1\.8e308\), "
                       r"got int too large to convert to float$"):
        getattr(metric, method)(BIG)
    with pytest.raises(TypeError, match=rf"^{what} must be a number \(int or float\), got str$"):
        getattr(metric, method)("1")


def test_metric_name_with_a_nul_is_quoted_whole():
    # UTF-8 names (the default) may hold anything but control characters.
    with pytest.raises(ValueError, match=r"^invalid metric name 'a\\x00b': a metric name must be valid UTF-8 text "
                                         r"without control characters$"):
        Counter("a\x00b", "x", registry=CollectorRegistry())
    with pytest.raises(ValueError, match=r"^invalid label name 'x\\x1b\[0m': a label name must be valid UTF-8 text"):
        Counter("ok", "x", ["x\x1b[0m"], registry=CollectorRegistry())


def test_metric_name_with_a_nul_is_quoted_whole_under_legacy_validation(legacy_names):
    with pytest.raises(ValueError, match=r"^invalid metric name 'a\\x00b': a metric name must match"):
        Counter("a\x00b", "x", registry=CollectorRegistry())
    with pytest.raises(ValueError, match=r"^invalid label name 'x\\x1b\[0m': a label name must match"):
        Counter("ok", "x", ["x\x1b[0m"], registry=CollectorRegistry())


def test_labels_take_str_of_any_value_like_prometheus_client():
    counter = Counter("c", "x", ["a"], registry=CollectorRegistry())
    counter.labels(["x"]).inc()  # prometheus_client makes this the series a="['x']"
    counter.labels({"k": 1}).inc(2)
    text = counter._registry.generate_prometheus()
    assert "c_total{a=\"['x']\"} 1\n" in text and "c_total{a=\"{'k': 1}\"} 2\n" in text


def test_gauge_inc_and_dec_take_one_amount():
    gauge = Gauge("g", "x", registry=CollectorRegistry())
    with pytest.raises(TypeError, match=r"^inc\(\) takes at most 1 argument \(amount\), got 2$"):
        gauge.inc(1, 2)
    with pytest.raises(TypeError, match=r"^dec\(\) got an unexpected keyword argument 'amt' \(allowed: amount\)$"):
        gauge.dec(amt=1)
    with pytest.raises(TypeError, match=r"^value must be a number \(int or float\), got str$"):
        gauge.set("3")
    gauge.inc(amount=2)
    gauge.dec()
    assert gauge.get() == 1.0
