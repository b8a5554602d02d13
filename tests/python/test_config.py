"""pyveda.Config and its fluent builder: defaults, values read back, validation messages."""

import math
import os

import pytest

import pyveda as veda


def test_defaults():
    config = veda.Config.builder().build()
    assert config.num_threads == os.cpu_count()
    assert config.enable_telemetry is False
    assert config.enable_gpu is False
    assert config.enable_tracing is False
    assert config.queue_size == 0
    assert config.collect_interval == 1.0
    assert config.latency_window == 60.0
    assert config.max_snapshots == 3600
    assert veda.Config() == config


def test_builder_is_fluent_and_sets_every_field():
    builder = veda.Config.builder()
    assert isinstance(builder, veda.ConfigBuilder)
    config = (
        builder.threads(3)
        .telemetry(True)
        .gpu(True)
        .tracing(True)
        .queue_size(16)
        .collect_interval(0.25)
        .latency_window(5)
        .max_snapshots(7)
        .build()
    )
    assert isinstance(config, veda.Config)
    assert config.num_threads == 3
    assert config.enable_telemetry is True
    assert config.enable_gpu is True
    assert config.enable_tracing is True
    assert config.queue_size == 16
    assert config.collect_interval == 0.25
    assert config.latency_window == 5
    assert config.max_snapshots == 7


def test_every_builder_method_returns_the_builder():
    builder = veda.Config.builder()
    calls = [
        ("threads", 2),
        ("telemetry", True),
        ("gpu", False),
        ("tracing", False),
        ("queue_size", 0),
        ("collect_interval", 1),
        ("latency_window", 30),
        ("max_snapshots", 1),
    ]
    for name, value in calls:
        assert getattr(builder, name)(value) is builder, name


def test_build_returns_an_independent_copy():
    builder = veda.Config.builder().threads(2)
    first = builder.build()
    second = builder.threads(5).build()
    assert first.num_threads == 2
    assert second.num_threads == 5
    assert first is not second


def test_attributes_are_settable_after_build():
    config = veda.Config.builder().build()
    config.enable_telemetry = True
    config.enable_gpu = True
    config.num_threads = 2
    config.max_snapshots = 10
    assert config.enable_telemetry is True
    assert config.enable_gpu is True
    assert config.num_threads == 2
    assert config.max_snapshots == 10
    assert config.validate() is config


def test_unknown_attribute_is_rejected():
    # A typo such as `config.enable_telemtry = True` must not pass silently.
    config = veda.Config.builder().build()
    with pytest.raises(AttributeError):
        config.enable_telemtry = True


def test_integer_interval_is_accepted():
    assert veda.Config.builder().collect_interval(2).build().collect_interval == 2


def test_repr_names_fields():
    text = repr(veda.Config.builder().threads(2).telemetry(True).build())
    assert "num_threads=2" in text and "enable_telemetry=True" in text


INVALID = [
    # (builder method, value, exception, message pattern)
    ("threads", 0, ValueError, r"Config\.num_threads must be between 1 and 1024, got 0"),
    ("threads", -1, ValueError, r"Config\.num_threads must be between 1 and 1024, got -1"),
    ("threads", 100_000, ValueError, r"Config\.num_threads must be between 1 and 1024, got 100000"),
    ("threads", 2.0, TypeError, r"Config\.num_threads must be an int, got float"),
    ("threads", "4", TypeError, r"Config\.num_threads must be an int, got str"),
    ("threads", [2], TypeError, r"Config\.num_threads must be an int, got list"),
    ("threads", True, TypeError, r"Config\.num_threads must be an int, got bool"),
    ("queue_size", -1, ValueError, r"Config\.queue_size must be >= 0, got -1"),
    ("queue_size", 1.5, TypeError, r"Config\.queue_size must be an int"),
    ("telemetry", 1, TypeError, r"Config\.enable_telemetry must be True or False, got int"),
    ("telemetry", "yes", TypeError, r"Config\.enable_telemetry must be True or False, got str"),
    ("gpu", None, TypeError, r"Config\.enable_gpu must be True or False, got NoneType"),
    ("tracing", 0, TypeError, r"Config\.enable_tracing must be True or False, got int"),
    ("collect_interval", 0, ValueError, r"Config\.collect_interval must be a finite number of seconds > 0, got 0"),
    ("collect_interval", -1.5, ValueError, r"Config\.collect_interval must be a finite number of seconds > 0"),
    ("collect_interval", math.nan, ValueError, r"Config\.collect_interval must be a finite number .* got nan"),
    ("collect_interval", math.inf, ValueError, r"Config\.collect_interval must be a finite number .* got inf"),
    ("collect_interval", "1", TypeError, r"Config\.collect_interval must be a number of seconds, got str"),
    ("collect_interval", True, TypeError, r"Config\.collect_interval must be a number of seconds, got bool"),
    ("latency_window", 0, ValueError, r"Config\.latency_window must be a finite number of seconds > 0, got 0"),
    ("latency_window", math.inf, ValueError, r"Config\.latency_window must be a finite number .* got inf"),
    ("latency_window", 2e9, ValueError, r"Config\.latency_window must be .* \(at most 1e9\)"),
    ("latency_window", "60", TypeError, r"Config\.latency_window must be a number of seconds, got str"),
    ("max_snapshots", 0, ValueError, r"Config\.max_snapshots must be >= 1, got 0"),
    ("max_snapshots", -3, ValueError, r"Config\.max_snapshots must be >= 1, got -3"),
    ("max_snapshots", 2.5, TypeError, r"Config\.max_snapshots must be an int, got float"),
]


@pytest.mark.parametrize(
    "method, value, error, message", INVALID, ids=[f"{m}={v!r}" for m, v, _, _ in INVALID]
)
def test_build_rejects_invalid_values(method, value, error, message):
    builder = getattr(veda.Config.builder(), method)(value)  # setting alone never raises
    with pytest.raises(error, match=message):
        builder.build()


@pytest.mark.parametrize(
    "field, value, error, message",
    [
        ("num_threads", 0, ValueError, r"Config\.num_threads must be between 1 and 1024, got 0"),
        ("enable_telemetry", "on", TypeError, r"Config\.enable_telemetry must be True or False"),
        ("collect_interval", math.nan, ValueError, r"Config\.collect_interval must be a finite number"),
        ("max_snapshots", 0, ValueError, r"Config\.max_snapshots must be >= 1, got 0"),
    ],
)
def test_init_revalidates_a_config_mutated_after_build(global_runtime, field, value, error, message):
    config = veda.Config.builder().threads(1).build()
    setattr(config, field, value)
    with pytest.raises(error, match=message):
        veda.init(config)
    # The failed init left nothing running: a valid config starts a runtime.
    setattr(config, field, getattr(veda.Config(), field))
    runtime = veda.init(config)
    assert runtime.spawn(int, "7").result(timeout=10) == 7


def test_runtime_revalidates_too():
    config = veda.Config.builder().build()
    config.num_threads = -2
    with pytest.raises(ValueError, match=r"Config\.num_threads"):
        veda.Runtime(config)


def test_init_rejects_a_non_config(global_runtime):
    with pytest.raises(TypeError, match=r"config must be a pyveda\.Config, got dict"):
        veda.init({"threads": 2})


def test_runtime_uses_the_settings(make_runtime):
    runtime = make_runtime(threads=3, telemetry=True, collect_interval=0.5, max_snapshots=4)
    assert runtime.num_threads == 3
    assert runtime.telemetry is not None
    assert runtime.telemetry.collect_interval == 0.5
    assert runtime.telemetry.max_snapshots == 4
    assert runtime.config.num_threads == 3


def test_mutated_telemetry_flag_takes_effect(global_runtime):
    # The guide's troubleshooting step: `config.enable_telemetry = True`.
    config = veda.Config.builder().threads(1).build()
    config.enable_telemetry = True
    runtime = veda.init(config)
    assert runtime.telemetry is not None
