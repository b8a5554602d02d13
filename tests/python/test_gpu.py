"""GPU telemetry: ``runtime.gpu``, the snapshots' GPU fields and their exports.

Without a GPU the tests run against the scripted fake NVML and CUDA drivers
of the C++ tests (tests/cpp/probes/fake_nvml.c, fake_cuda.c), compiled here
with ``cc`` and loaded through the real dlopen path (``PYVEDA_NVML_LIBRARY``,
``PYVEDA_CUDA_LIBRARY``). Their environment switches are read at call time.

Scripted values of fake device i: name "Fake NVML GPU <i>", uuid
GPU-fa4e0000-0000-0000-0000-00000000000<i>, utilization 40+10i %, memory
utilization 20+5i %, total 16384 MiB, reserved 256, v2 used 4096+1024i, free
total-reserved-used, 50+i C, 150+25i W, enforced limit 300 W (management
limit 350 W), SM clock 1410+100i MHz, this process 256 MiB on device 0 only.
The fake CUDA driver gives CUDA device 0 compute capability 9.0, others 8.6.

Tests marked ``gpu`` compare with pynvml / nvidia-smi on a real device and
skip where there is no NVIDIA driver.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

import pyveda as veda
from conftest import UNIT_LINT
from pyveda.telemetry import GpuDevice, GpuSample, generate_prometheus

FAKES = Path(__file__).resolve().parents[1] / "cpp" / "probes"

FAKE_ENV = (
    "FAKE_NVML_DEVICE_COUNT",
    "FAKE_NVML_INIT_ERROR",
    "FAKE_NVML_COUNT_ERROR",
    "FAKE_NVML_HANDLE_ERROR",
    "FAKE_NVML_NOT_SUPPORTED",
    "FAKE_NVML_EXTRA_PROCESSES",
    "FAKE_NVML_PROCESS_MEMORY_NA",
    "FAKE_CUDA_INIT_ERROR",
    "FAKE_CUDA_DEVICE_COUNT",
    "FAKE_CUDA_CONTEXT",
    "FAKE_CUDA_REVERSE_ORDER",
)

GPU_FAMILIES = (
    "pyveda_gpu_utilization_percent",
    "pyveda_gpu_memory_used_mb",
    "pyveda_gpu_memory_total_mb",
    "pyveda_gpu_temperature_celsius",
    "pyveda_gpu_power_watts",
)


def expected(i: int) -> dict:
    """The fake NVML's scripted sample of device i (v2 memory, enforced power limit)."""
    used = 4096.0 + 1024.0 * i
    return {
        "index": i,
        "name": f"Fake NVML GPU {i}",
        "uuid": f"GPU-fa4e0000-0000-0000-0000-00000000000{i}",
        "utilization_percent": 40.0 + 10 * i,
        "memory_utilization_percent": 20.0 + 5 * i,
        "memory_used_mb": used,
        "memory_free_mb": 16384.0 - 256.0 - used,
        "memory_total_mb": 16384.0,
        "memory_reserved_mb": 256.0,
        "temperature_c": 50.0 + i,
        "power_w": 150.0 + 25 * i,
        "power_limit_w": 300.0,
        "sm_clock_mhz": 1410.0 + 100 * i,
        "process_memory_mb": 256.0 if i == 0 else 0.0,
    }


# --- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_libs(tmp_path_factory):
    """Builds the fake drivers once: {variant: path of the shared library}."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler (cc) to build the fake NVML/CUDA libraries")
    out = tmp_path_factory.mktemp("fake_gpu_libs")
    variants = {
        "nvml": ("fake_nvml.c", []),
        "nvml_no_utilization": ("fake_nvml.c", ["-DFAKE_NVML_OMIT_UTILIZATION"]),
        "nvml_legacy": ("fake_nvml.c", ["-DFAKE_NVML_LEGACY"]),
        "cuda": ("fake_cuda.c", []),
        "cuda_no_uuid": ("fake_cuda.c", ["-DFAKE_CUDA_OMIT_UUID"]),
    }
    libs = {}
    for variant, (source, flags) in variants.items():
        target = out / f"lib{variant}.so"
        subprocess.run(
            [compiler, "-shared", "-fPIC", "-O1", *flags, "-o", str(target), str(FAKES / source)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        libs[variant] = str(target)
    return libs


@pytest.fixture
def fake_env(monkeypatch, fake_libs, tmp_path):
    """Points pyveda at the fake NVML; no CUDA driver unless a test sets one."""
    for name in FAKE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYVEDA_NVML_LIBRARY", fake_libs["nvml"])
    monkeypatch.setenv("PYVEDA_CUDA_LIBRARY", str(tmp_path / "no-libcuda.so"))
    return monkeypatch


@pytest.fixture
def gpu_runtime(fake_env, make_runtime):
    """A telemetry + GPU runtime on the fake NVML (2 devices)."""
    return make_runtime(threads=1, telemetry=True, gpu=True)


def lines_of(text: str, family: str) -> list:
    return [line for line in text.splitlines() if line.startswith(family + "{") or line.startswith(family + " ")]


# --- enumeration and fields ---------------------------------------------------


def test_devices_report_every_field(gpu_runtime):
    gpu = gpu_runtime.gpu
    assert gpu.is_available() is True
    assert gpu.unavailable_reason is None
    assert gpu.device_count() == 2
    devices = gpu.devices()
    assert [type(d) for d in devices] == [GpuDevice, GpuDevice]
    for i, device in enumerate(devices):
        record = device.to_dict()
        assert record.pop("compute_capability") is None  # no CUDA driver in this test
        assert record == expected(i)


def test_device_count_follows_the_driver(fake_env, make_runtime):
    fake_env.setenv("FAKE_NVML_DEVICE_COUNT", "3")
    gpu = make_runtime(gpu=True).gpu
    assert gpu.device_count() == 3
    assert [d.index for d in gpu.devices()] == [0, 1, 2]
    assert gpu.devices()[2].uuid == expected(2)["uuid"]


def test_compute_capability_is_matched_by_uuid(fake_env, fake_libs, make_runtime):
    fake_env.setenv("PYVEDA_CUDA_LIBRARY", fake_libs["cuda"])
    devices = make_runtime(gpu=True).gpu.devices()
    assert [d.compute_capability for d in devices] == [(9, 0), (8, 6)]


def test_compute_capability_follows_nvml_order_not_cuda_order(fake_env, fake_libs, make_runtime):
    # CUDA ordinal 0 (capability 9.0) is NVML device 1 here.
    fake_env.setenv("PYVEDA_CUDA_LIBRARY", fake_libs["cuda"])
    fake_env.setenv("FAKE_CUDA_REVERSE_ORDER", "1")
    devices = make_runtime(gpu=True).gpu.devices()
    assert [d.compute_capability for d in devices] == [(8, 6), (9, 0)]


def test_compute_capability_only_for_devices_cuda_sees(fake_env, fake_libs, make_runtime):
    fake_env.setenv("PYVEDA_CUDA_LIBRARY", fake_libs["cuda"])
    fake_env.setenv("FAKE_CUDA_DEVICE_COUNT", "1")  # as with CUDA_VISIBLE_DEVICES=0
    devices = make_runtime(gpu=True).gpu.devices()
    assert [d.compute_capability for d in devices] == [(9, 0), None]


def test_compute_capability_absent_without_cuda_uuid(fake_env, fake_libs, make_runtime):
    fake_env.setenv("PYVEDA_CUDA_LIBRARY", fake_libs["cuda_no_uuid"])
    devices = make_runtime(gpu=True).gpu.devices()
    assert [d.compute_capability for d in devices] == [None, None]
    assert devices[0].utilization_percent == 40.0  # NVML readings unaffected


def test_compute_capability_absent_when_cuda_fails(fake_env, fake_libs, make_runtime):
    fake_env.setenv("PYVEDA_CUDA_LIBRARY", fake_libs["cuda"])
    fake_env.setenv("FAKE_CUDA_INIT_ERROR", "100")
    devices = make_runtime(gpu=True).gpu.devices()
    assert [d.compute_capability for d in devices] == [None, None]


def test_gpu_works_without_telemetry(fake_env, make_runtime):
    runtime = make_runtime(gpu=True, telemetry=False)
    assert runtime.telemetry is None
    assert runtime.gpu.get_utilization() == 45.0


# --- utilization and memory ---------------------------------------------------


def test_get_utilization_per_device_and_mean(gpu_runtime):
    gpu = gpu_runtime.gpu
    assert gpu.get_utilization(0) == 40.0
    assert gpu.get_utilization(1) == 50.0
    assert gpu.get_utilization() == 45.0
    assert gpu.get_utilization(None) == 45.0


def test_mean_utilization_over_three_devices(fake_env, make_runtime):
    fake_env.setenv("FAKE_NVML_DEVICE_COUNT", "3")
    assert make_runtime(gpu=True).gpu.get_utilization() == pytest.approx(50.0)  # (40 + 50 + 60) / 3


def test_get_memory_stats_per_device_and_summed(gpu_runtime):
    gpu = gpu_runtime.gpu
    assert gpu.get_memory_stats(0) == {"used_mb": 4096.0, "free_mb": 12032.0, "total_mb": 16384.0}
    assert gpu.get_memory_stats(1) == {"used_mb": 5120.0, "free_mb": 11008.0, "total_mb": 16384.0}
    assert gpu.get_memory_stats() == {"used_mb": 9216.0, "free_mb": 23040.0, "total_mb": 32768.0}


def test_memory_used_excludes_reserved(gpu_runtime):
    # NVML v2 used (nvidia-smi's "Used"): used + free + reserved == total.
    for device in gpu_runtime.gpu.devices():
        assert device.memory_used_mb + device.memory_free_mb + device.memory_reserved_mb == device.memory_total_mb


@pytest.mark.parametrize("index", [2, 7, -1])
def test_unknown_device_index_names_the_valid_ones(gpu_runtime, index):
    gpu = gpu_runtime.gpu
    with pytest.raises(IndexError, match=rf"GPU device {index} does not exist: device indexes are 0, 1$"):
        gpu.get_utilization(index)
    with pytest.raises(IndexError, match=rf"GPU device {index} does not exist: device indexes are 0, 1$"):
        gpu.get_memory_stats(index)


def test_unknown_device_index_with_one_device(fake_env, make_runtime):
    fake_env.setenv("FAKE_NVML_DEVICE_COUNT", "1")
    with pytest.raises(IndexError, match=r"GPU device 1 does not exist: the device index is 0$"):
        make_runtime(gpu=True).gpu.get_utilization(1)


@pytest.mark.parametrize("bad", ["0", 1.0, True])
def test_device_must_be_an_int(gpu_runtime, bad):
    with pytest.raises(TypeError, match="device must be an int GPU index or None"):
        gpu_runtime.gpu.get_utilization(bad)
    with pytest.raises(TypeError, match="device must be an int GPU index or None"):
        gpu_runtime.gpu.get_memory_stats(bad)


def test_readings_are_fresh_each_call(gpu_runtime, fake_env):
    gpu = gpu_runtime.gpu
    assert gpu.get_utilization(0) == 40.0
    fake_env.setenv("FAKE_NVML_NOT_SUPPORTED", "utilization")
    assert gpu.get_utilization(0) is None
    assert gpu.get_utilization() is None


def test_concurrent_readers_and_snapshots(gpu_runtime):
    gpu, telemetry = gpu_runtime.gpu, gpu_runtime.telemetry
    errors = []

    def read():
        try:
            for _ in range(200):
                assert gpu.get_utilization() == 45.0
                assert gpu.get_memory_stats(1)["used_mb"] == 5120.0
                assert telemetry.snapshot().gpu_memory_used_mb == 9216.0
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


# --- snapshots and exports ------------------------------------------------------


def test_snapshot_gpu_fields(gpu_runtime):
    snapshot = gpu_runtime.telemetry.snapshot()
    assert snapshot.gpu_utilization_percent == 45.0
    assert snapshot.gpu_memory_used_mb == 9216.0
    assert [type(g) for g in snapshot.gpus] == [GpuSample, GpuSample]
    assert [g.to_dict() for g in snapshot.gpus] == [expected(0), expected(1)]


def test_collected_snapshots_carry_gpu_fields(fake_env, make_runtime):
    runtime = make_runtime(threads=1, telemetry=True, gpu=True, collect_interval=0.05)
    runtime.telemetry.start()
    deadline = time.monotonic() + 10
    while len(runtime.telemetry.get_snapshots()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    runtime.telemetry.stop()
    snapshots = runtime.telemetry.get_snapshots()
    assert len(snapshots) >= 2
    assert all(s.gpu_utilization_percent == 45.0 and len(s.gpus) == 2 for s in snapshots)


def test_prometheus_export_has_per_device_gauges(gpu_runtime, check_metrics):
    text = gpu_runtime.telemetry.snapshot().export_prometheus()
    assert lines_of(text, "pyveda_gpu_utilization_percent") == [
        'pyveda_gpu_utilization_percent{gpu="0",name="Fake NVML GPU 0"} 40',
        'pyveda_gpu_utilization_percent{gpu="1",name="Fake NVML GPU 1"} 50',
    ]
    assert lines_of(text, "pyveda_gpu_memory_used_mb") == [
        'pyveda_gpu_memory_used_mb{gpu="0",name="Fake NVML GPU 0"} 4096',
        'pyveda_gpu_memory_used_mb{gpu="1",name="Fake NVML GPU 1"} 5120',
    ]
    assert lines_of(text, "pyveda_gpu_memory_total_mb") == [
        'pyveda_gpu_memory_total_mb{gpu="0",name="Fake NVML GPU 0"} 16384',
        'pyveda_gpu_memory_total_mb{gpu="1",name="Fake NVML GPU 1"} 16384',
    ]
    assert lines_of(text, "pyveda_gpu_temperature_celsius") == [
        'pyveda_gpu_temperature_celsius{gpu="0",name="Fake NVML GPU 0"} 50',
        'pyveda_gpu_temperature_celsius{gpu="1",name="Fake NVML GPU 1"} 51',
    ]
    assert lines_of(text, "pyveda_gpu_power_watts") == [
        'pyveda_gpu_power_watts{gpu="0",name="Fake NVML GPU 0"} 150',
        'pyveda_gpu_power_watts{gpu="1",name="Fake NVML GPU 1"} 175',
    ]
    for family in GPU_FAMILIES:
        assert f"# TYPE {family} gauge" in text
    problems = check_metrics(text, allow=[UNIT_LINT])
    assert all(UNIT_LINT in p for p in problems)


def test_registry_carries_per_device_gauges(gpu_runtime, check_metrics):
    gpu_runtime.telemetry.snapshot()
    text = generate_prometheus()
    assert lines_of(text, "pyveda_gpu_utilization_percent") == [
        'pyveda_gpu_utilization_percent{gpu="0",name="Fake NVML GPU 0"} 40',
        'pyveda_gpu_utilization_percent{gpu="1",name="Fake NVML GPU 1"} 50',
    ]
    assert lines_of(text, "pyveda_gpu_power_watts") == [
        'pyveda_gpu_power_watts{gpu="0",name="Fake NVML GPU 0"} 150',
        'pyveda_gpu_power_watts{gpu="1",name="Fake NVML GPU 1"} 175',
    ]
    for family in GPU_FAMILIES:
        assert len(lines_of(text, family)) == 2, family
    problems = check_metrics(text, allow=[UNIT_LINT])
    assert all(UNIT_LINT in p for p in problems)


def test_registry_drops_series_whose_reading_goes_missing(gpu_runtime, fake_env):
    gpu_runtime.telemetry.snapshot()
    assert len(lines_of(generate_prometheus(), "pyveda_gpu_temperature_celsius")) == 2
    fake_env.setenv("FAKE_NVML_NOT_SUPPORTED", "temperature")
    gpu_runtime.telemetry.snapshot()
    text = generate_prometheus()
    assert lines_of(text, "pyveda_gpu_temperature_celsius") == []
    assert len(lines_of(text, "pyveda_gpu_power_watts")) == 2
    fake_env.delenv("FAKE_NVML_NOT_SUPPORTED")
    gpu_runtime.telemetry.snapshot()
    assert len(lines_of(generate_prometheus(), "pyveda_gpu_temperature_celsius")) == 2


def test_json_export_has_gpu_keys(gpu_runtime):
    data = gpu_runtime.telemetry.snapshot().export_json()
    assert data["system"]["gpu_percent"] == 45.0
    assert data["system"]["gpu_memory_mb"] == 9216.0
    assert data["gpus"] == [expected(0), expected(1)]
    assert json.loads(json.dumps(data)) == data


def test_guides_gpu_alert_fires_on_high_memory(gpu_runtime):
    alerts = []
    snapshot = gpu_runtime.telemetry.snapshot()
    if snapshot.gpu_memory_used_mb and snapshot.gpu_memory_used_mb > 8000:
        alerts.append(f"High GPU memory: {snapshot.gpu_memory_used_mb:.0f}MB")
    assert alerts == ["High GPU memory: 9216MB"]


# --- GPU disabled ---------------------------------------------------------------


def assert_no_gpu_data(snapshot):
    assert snapshot.gpu_utilization_percent is None
    assert snapshot.gpu_memory_used_mb is None
    assert snapshot.gpus == []
    assert "pyveda_gpu" not in snapshot.export_prometheus()
    data = snapshot.export_json()
    assert "gpus" not in data
    assert "gpu_percent" not in data["system"] and "gpu_memory_mb" not in data["system"]


def test_gpu_disabled_means_no_monitor_and_no_gpu_fields(fake_env, make_runtime):
    runtime = make_runtime(threads=1, telemetry=True)  # the fake NVML is there, but not asked for
    assert runtime.config.enable_gpu is False
    assert runtime.gpu is None
    assert_no_gpu_data(runtime.telemetry.snapshot())


def test_gpu_disabled_runtime_removes_earlier_gpu_gauges(gpu_runtime, make_runtime):
    gpu_runtime.telemetry.snapshot()
    assert "pyveda_gpu_utilization_percent{" in generate_prometheus()
    make_runtime(threads=1, telemetry=True)  # replaces the pyveda_* families, GPU ones included
    assert "pyveda_gpu" not in generate_prometheus()


def test_config_attribute_enables_gpu(fake_env):
    config = veda.Config.builder().threads(1).telemetry(True).build()
    config.enable_gpu = True  # the guide's troubleshooting step
    runtime = veda.Runtime(config)
    try:
        assert runtime.gpu.is_available()
    finally:
        runtime.shutdown()


# --- unavailable: a state, never a crash ----------------------------------------


def assert_unavailable(runtime, reason_pattern):
    gpu = runtime.gpu
    assert gpu is not None
    assert gpu.is_available() is False
    assert gpu.unavailable_reason is not None
    assert re.search(reason_pattern, gpu.unavailable_reason), gpu.unavailable_reason
    assert gpu.device_count() == 0
    assert gpu.devices() == []
    assert gpu.get_utilization() is None
    assert gpu.get_memory_stats() == {"used_mb": None, "free_mb": None, "total_mb": None}
    with pytest.raises(IndexError, match=r"GPU device 0 does not exist: no GPU is available \(GPU not available"):
        gpu.get_utilization(0)
    assert_no_gpu_data(runtime.telemetry.snapshot())


def test_init_error(fake_env, make_runtime):
    fake_env.setenv("FAKE_NVML_INIT_ERROR", "9")
    assert_unavailable(make_runtime(threads=1, telemetry=True, gpu=True), r"^GPU not available: Driver Not Loaded \(9\)$")


def test_no_devices(fake_env, make_runtime):
    fake_env.setenv("FAKE_NVML_DEVICE_COUNT", "0")
    assert_unavailable(make_runtime(threads=1, telemetry=True, gpu=True), r"NVML reports no devices")


def test_library_missing_a_required_symbol(fake_env, fake_libs, make_runtime):
    fake_env.setenv("PYVEDA_NVML_LIBRARY", fake_libs["nvml_no_utilization"])
    assert_unavailable(
        make_runtime(threads=1, telemetry=True, gpu=True),
        r"lacks required NVML symbol nvmlDeviceGetUtilizationRates$",
    )


def test_library_that_does_not_exist(fake_env, tmp_path, make_runtime):
    missing = tmp_path / "libnvidia-ml.so.1"
    fake_env.setenv("PYVEDA_NVML_LIBRARY", str(missing))
    assert_unavailable(
        make_runtime(threads=1, telemetry=True, gpu=True), r"^GPU not available: cannot load NVML: .*libnvidia-ml"
    )


def test_unavailable_is_logged_once_per_runtime(fake_env, make_runtime, caplog):
    fake_env.setenv("FAKE_NVML_INIT_ERROR", "9")
    with caplog.at_level(logging.WARNING, logger="pyveda"):
        runtime = make_runtime(threads=1, telemetry=True, gpu=True)
        for _ in range(3):
            runtime.telemetry.snapshot()
            runtime.gpu.get_utilization()
            runtime.gpu.is_available()
    records = [r for r in caplog.records if r.name == "pyveda"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "Driver Not Loaded (9)" in records[0].getMessage()


def test_available_gpu_logs_nothing(fake_env, make_runtime, caplog):
    with caplog.at_level(logging.DEBUG, logger="pyveda"):
        make_runtime(threads=1, telemetry=True, gpu=True).telemetry.snapshot()
    assert [r for r in caplog.records if r.name == "pyveda"] == []


def test_not_supported_fields_are_none(fake_env, make_runtime):
    fake_env.setenv("FAKE_NVML_NOT_SUPPORTED", "temperature,power,power_limit,clock,processes")
    runtime = make_runtime(threads=1, telemetry=True, gpu=True)
    device = runtime.gpu.devices()[0]
    for field in ("temperature_c", "power_w", "power_limit_w", "sm_clock_mhz", "process_memory_mb"):
        assert getattr(device, field) is None, field
    assert device.utilization_percent == 40.0 and device.memory_used_mb == 4096.0
    snapshot = runtime.telemetry.snapshot()
    text = snapshot.export_prometheus()
    assert "pyveda_gpu_temperature_celsius" not in text
    assert "pyveda_gpu_power_watts" not in text
    assert len(lines_of(text, "pyveda_gpu_utilization_percent")) == 2
    assert snapshot.export_json()["gpus"][0]["temperature_c"] is None


def test_utilization_not_supported_anywhere(fake_env, make_runtime):
    fake_env.setenv("FAKE_NVML_NOT_SUPPORTED", "utilization")
    runtime = make_runtime(threads=1, telemetry=True, gpu=True)
    assert runtime.gpu.get_utilization() is None
    assert runtime.gpu.get_utilization(1) is None
    snapshot = runtime.telemetry.snapshot()
    assert snapshot.gpu_utilization_percent is None
    assert snapshot.gpu_memory_used_mb == 9216.0
    assert "pyveda_gpu_utilization_percent" not in snapshot.export_prometheus()
    system = snapshot.export_json()["system"]
    assert "gpu_percent" not in system and system["gpu_memory_mb"] == 9216.0


def test_memory_not_supported_anywhere(fake_env, make_runtime):
    fake_env.setenv("FAKE_NVML_NOT_SUPPORTED", "memory,memory_v2")
    runtime = make_runtime(threads=1, telemetry=True, gpu=True)
    assert runtime.gpu.get_memory_stats() == {"used_mb": None, "free_mb": None, "total_mb": None}
    assert runtime.gpu.get_memory_stats(0) == {"used_mb": None, "free_mb": None, "total_mb": None}
    snapshot = runtime.telemetry.snapshot()
    assert snapshot.gpu_memory_used_mb is None and snapshot.gpu_utilization_percent == 45.0
    assert "gpu_memory_mb" not in snapshot.export_json()["system"]


def test_legacy_driver_falls_back_to_v1_memory(fake_env, fake_libs, make_runtime):
    # Without nvmlDeviceGetMemoryInfo_v2 "used" includes the reserved memory.
    fake_env.setenv("PYVEDA_NVML_LIBRARY", fake_libs["nvml_legacy"])
    device = make_runtime(gpu=True).gpu.devices()[0]
    assert device.memory_used_mb == 4096.0 + 256.0
    assert device.memory_reserved_mb is None
    assert device.power_limit_w == 350.0  # nvmlDeviceGetPowerManagementLimit


def test_shutdown_releases_nvml(gpu_runtime):
    gpu_runtime.shutdown()
    assert gpu_runtime.gpu.is_available() is False
    assert gpu_runtime.gpu.unavailable_reason == "GPU probe shut down"
    assert gpu_runtime.gpu.get_utilization() is None
    assert_no_gpu_data(gpu_runtime.telemetry.snapshot())


# --- a real GPU (skipped without an NVIDIA driver) -------------------------------


@pytest.fixture
def real_nvml(monkeypatch):
    """pynvml initialised against the real driver; skips where there is none."""
    for name in ("PYVEDA_NVML_LIBRARY", "PYVEDA_CUDA_LIBRARY", *FAKE_ENV):
        monkeypatch.delenv(name, raising=False)
    pynvml = pytest.importorskip("pynvml", reason="pynvml (nvidia-ml-py) not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        pytest.skip(f"no NVIDIA driver/GPU here: nvmlInit failed ({error})")
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            pytest.skip("NVIDIA driver present but no GPU")
        yield pynvml
    finally:
        pynvml.nvmlShutdown()


MIB = 1024 * 1024


@pytest.mark.gpu
def test_real_gpu_matches_pynvml(real_nvml, make_runtime):
    pynvml = real_nvml
    runtime = make_runtime(threads=1, telemetry=True, gpu=True)
    gpu = runtime.gpu
    assert gpu.is_available(), gpu.unavailable_reason
    assert gpu.device_count() == pynvml.nvmlDeviceGetCount()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    device = gpu.devices()[0]
    name = pynvml.nvmlDeviceGetName(handle)
    assert device.name == (name.decode() if isinstance(name, bytes) else name)
    uuid = pynvml.nvmlDeviceGetUUID(handle)
    assert device.uuid == (uuid.decode() if isinstance(uuid, bytes) else uuid)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
    ours = gpu.get_memory_stats(0)
    assert ours["total_mb"] == pytest.approx(memory.total / MIB, abs=1)
    assert ours["used_mb"] == pytest.approx(memory.used / MIB, abs=256)
    assert device.memory_reserved_mb == pytest.approx(memory.reserved / MIB, abs=1)
    utilization = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
    assert gpu.get_utilization(0) == pytest.approx(utilization, abs=30)
    if device.temperature_c is not None:
        temperature = pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        assert device.temperature_c == pytest.approx(temperature, abs=5)
    snapshot = runtime.telemetry.snapshot()
    assert snapshot.gpus[0].uuid == device.uuid
    assert snapshot.gpu_memory_used_mb is not None and snapshot.gpu_utilization_percent is not None


@pytest.mark.gpu
def test_real_gpu_matches_nvidia_smi(real_nvml, make_runtime):
    smi = shutil.which("nvidia-smi")
    if smi is None:
        pytest.skip("nvidia-smi not on PATH")
    result = subprocess.run(
        [smi, "--id=0", "--query-gpu=utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    utilization, used, total = (float(v) for v in result.stdout.strip().splitlines()[0].split(","))
    gpu = make_runtime(gpu=True).gpu
    ours = gpu.get_memory_stats(0)
    assert ours["total_mb"] == pytest.approx(total, rel=0.01)
    # nvidia-smi's "Used" is NVML v2 used (without reserved memory), as ours.
    assert ours["used_mb"] == pytest.approx(used, abs=256)
    assert gpu.get_utilization(0) == pytest.approx(utilization, abs=30)


def _cuda_workload():
    """(allocate(bytes) -> handle, busy(seconds), device uuid or None, name) from PyTorch or CuPy."""
    try:
        import torch

        if torch.cuda.is_available():

            def allocate(n):
                block = torch.empty(n, dtype=torch.uint8, device="cuda:0")
                block.fill_(1)
                torch.cuda.synchronize()
                return block

            def busy(seconds):
                a = torch.randn(4096, 4096, device="cuda:0")
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    for _ in range(8):
                        a = (a @ a).clamp_(-1, 1)
                    torch.cuda.synchronize()

            uuid = getattr(torch.cuda.get_device_properties(0), "uuid", None)
            return allocate, busy, (f"GPU-{uuid}" if uuid is not None else None), "torch"
    except ImportError:
        pass
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:

            def allocate(n):
                block = cupy.ones(n, dtype=cupy.uint8)
                cupy.cuda.Device(0).synchronize()
                return block

            def busy(seconds):
                a = cupy.random.random((4096, 4096), dtype=cupy.float32)
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    for _ in range(8):
                        a = cupy.clip(a @ a, -1, 1)
                    cupy.cuda.Device(0).synchronize()

            return allocate, busy, None, "cupy"
    except Exception:  # noqa: BLE001 - ImportError, or CuPy without a usable CUDA
        pass
    return None


@pytest.mark.gpu
def test_real_workload_raises_memory_and_utilization(real_nvml, make_runtime):
    workload = _cuda_workload()
    if workload is None:
        pytest.skip("neither PyTorch nor CuPy with CUDA is importable")
    allocate, busy, uuid, _name = workload
    runtime = make_runtime(threads=1, telemetry=True, gpu=True)
    gpu = runtime.gpu
    indexes = [d.index for d in gpu.devices() if uuid is None or d.uuid == uuid] or [d.index for d in gpu.devices()]

    def used():
        return sum(gpu.get_memory_stats(i)["used_mb"] for i in indexes)

    warmup = allocate(1)  # creates the CUDA context first, so it is not counted below
    before = used()
    block = allocate(1024 * MIB)
    after = used()
    assert after - before >= 900, (before, after)
    assert runtime.telemetry.snapshot().gpu_memory_used_mb >= after - 1
    del block, warmup

    peak = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            peak.append(max(gpu.get_utilization(i) or 0.0 for i in indexes))
            time.sleep(0.1)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        busy(3.0)
    finally:
        stop.set()
        poller.join(timeout=10)
    assert max(peak) >= 20, peak


def test_the_guides_missing_gpu_metrics_steps_as_written(fake_env, tmp_path):
    # Troubleshooting, "Missing GPU Metrics": 1. config.enable_gpu = True,
    # 2. runtime.gpu.is_available(); with telemetry on, snapshots then carry GPU figures.
    config = veda.Config()
    config.enable_telemetry = True
    config.enable_gpu = True
    runtime = veda.Runtime(config)
    try:
        assert runtime.gpu.is_available() is True
        snapshot = runtime.telemetry.snapshot()
        assert snapshot.gpu_memory_used_mb == 9216.0 and len(snapshot.gpus) == 2
    finally:
        runtime.shutdown()
    # Without a driver the same spelling answers False and says why.
    fake_env.setenv("PYVEDA_NVML_LIBRARY", str(tmp_path / "no-libnvidia-ml.so.1"))
    runtime = veda.Runtime(config)
    try:
        assert runtime.gpu.is_available() is False
        assert "no-libnvidia-ml.so.1" in runtime.gpu.unavailable_reason
        assert runtime.telemetry.snapshot().gpu_memory_used_mb is None
    finally:
        runtime.shutdown()
