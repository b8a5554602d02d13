"""What GPU telemetry costs: one GPU sample, and a snapshot with GPU on vs off.

Usage: python bench/compare_gpu.py [--quick] [--markdown] [--fake | --real] [--native PATH]

The GPU is the NVML that pyveda would load: ``$PYVEDA_NVML_LIBRARY``, else
``libnvidia-ml.so.1``. Without a usable NVML (or with ``--fake``) the script
compiles the scripted fake driver of the C++ tests (tests/cpp/probes/fake_nvml.c,
2 devices) with ``cc`` and uses that: its figures are pyveda's own cost with a
driver that answers at once, not what a real driver's calls take (real NVML
calls cost microseconds to milliseconds each: run on a GPU machine for those).

Cases (best of several interleaved rounds, per call):
  * one GPU sample through Python: ``runtime.gpu.get_utilization()`` (one NVML
    sample of every device plus the mean) and ``runtime.gpu.devices()`` (the
    same plus records and CUDA compute capability);
  * ``runtime.telemetry.snapshot()`` on a runtime with GPU off and one with GPU
    on, side by side with the ratio (on / off);
  * native, when the pyveda_bench binary is found (configure with
    -DVEDA_BUILD_BENCH=ON): google-benchmark's BM_GpuProbe_Sample,
    BM_GpuMonitor_Devices and BM_Telemetry_SnapshotGpu/gpu:0 vs /gpu:1.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional

ROOT = Path(__file__).resolve().parents[1]
FAKE_SOURCE = ROOT / "tests" / "cpp" / "probes" / "fake_nvml.c"


def build_fake(directory: str) -> str:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        sys.exit("compare_gpu: no usable NVML and no C compiler to build the fake one")
    target = os.path.join(directory, "libfake_nvml.so")
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", target, str(FAKE_SOURCE)], check=True)
    return target


def per_call(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def best_interleaved(fns: List[Callable[[], float]], rounds: int) -> List[float]:
    """Runs the cases in turn, round after round, keeping each one's best."""
    results: List[List[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            gc.collect()
            results[i].append(fn())
    return [min(r) for r in results]


def native_bench(path: Optional[str], nvml: str, min_time: float) -> dict:
    candidates = [path] if path else [
        "build/ctest/bench/cpp/pyveda_bench",
        "build/bench/bench/cpp/pyveda_bench",
        "/tmp/gpu-build/bench/cpp/pyveda_bench",
    ]
    found = [p for p in candidates if p and Path(p).is_file()]
    if not found:
        return {}
    binary = max(found, key=lambda p: Path(p).stat().st_mtime)  # the freshest build
    env = dict(os.environ, PYVEDA_NVML_LIBRARY=nvml)
    out = subprocess.run(
        [binary, "--benchmark_filter=BM_GpuProbe_Sample/real_time/threads:1$|BM_GpuMonitor_Devices|BM_Telemetry_SnapshotGpu",
         f"--benchmark_min_time={min_time}", "--benchmark_repetitions=3", "--benchmark_format=json"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    if out.returncode != 0:
        return {}
    figures: dict = {}
    for b in json.loads(out.stdout)["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median":
            scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]
            figures[b["run_name"]] = b["real_time"] * scale
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--fake", action="store_true", help="always use the fake NVML")
    which.add_argument("--real", action="store_true", help="never fall back to the fake NVML")
    parser.add_argument("--native", help="path to the pyveda_bench binary")
    args = parser.parse_args()
    n, rounds = (500, 3) if args.quick else (5000, 7)

    tmp = tempfile.TemporaryDirectory(prefix="pyveda-gpu-bench-")
    if args.fake:
        os.environ["PYVEDA_NVML_LIBRARY"] = build_fake(tmp.name)

    import pyveda as veda  # after PYVEDA_NVML_LIBRARY is settled

    def gpu_runtime() -> "veda.Runtime":
        return veda.Runtime(veda.Config.builder().threads(1).telemetry(True).gpu(True).build())

    logger = logging.getLogger("pyveda")
    level = logger.level
    logger.setLevel(logging.ERROR)  # no "GPU unavailable" warning while probing for a real NVML
    try:
        on = gpu_runtime()
    finally:
        logger.setLevel(level)
    if not on.gpu.is_available():
        reason = on.gpu.unavailable_reason
        on.shutdown()
        if args.real:
            sys.exit(f"compare_gpu: no usable NVML ({reason})")
        os.environ["PYVEDA_NVML_LIBRARY"] = build_fake(tmp.name)
        on = gpu_runtime()
    off = veda.Runtime(veda.Config.builder().threads(1).telemetry(True).build())
    nvml = os.environ.get("PYVEDA_NVML_LIBRARY", "libnvidia-ml.so.1")
    fake = "fake" in os.path.basename(nvml)
    devices = on.gpu.device_count()
    gpu, t_on, t_off = on.gpu, on.telemetry, off.telemetry

    t_util, t_devices = best_interleaved(
        [lambda: per_call(gpu.get_utilization, n), lambda: per_call(gpu.devices, n)], rounds
    )
    s_off, s_on = best_interleaved([lambda: per_call(t_off.snapshot, n), lambda: per_call(t_on.snapshot, n)], rounds)
    snap = t_on.snapshot()
    assert snap.gpu_utilization_percent is not None and len(snap.gpus) == devices
    on.shutdown()
    off.shutdown()

    native = native_bench(args.native, nvml, 0.05 if args.quick else 0.3)
    tmp.cleanup()

    label = f"fake NVML ({devices} scripted devices)" if fake else f"{nvml} ({devices} devices)"
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"# compare_gpu: {label}; best of {rounds} rounds x {n} calls ({machine})")
    rows = [
        ("GPU sample, Python: gpu.get_utilization()", t_util, None),
        ("GPU sample + records, Python: gpu.devices()", t_devices, None),
        ("snapshot, Python: GPU off | on", s_off, s_on),
    ]
    if native:
        probe = native.get("BM_GpuProbe_Sample/real_time/threads:1")
        if probe is not None:
            rows.append(("GPU sample, native: GpuProbe::sample", probe, None))
        monitor = native.get("BM_GpuMonitor_Devices")
        if monitor is not None:
            rows.append(("GPU sample + CUDA, native: GpuMonitor::devices", monitor, None))
        n_off, n_on = native.get("BM_Telemetry_SnapshotGpu/gpu:0"), native.get("BM_Telemetry_SnapshotGpu/gpu:1")
        if n_off is not None and n_on is not None:
            rows.append(("snapshot, native: GPU off | on", n_off, n_on))
    if args.markdown:
        print("| case | time | GPU on | on / off |")
        print("|---|---:|---:|---:|")
    for name, first, second in rows:
        if args.markdown:
            tail = f"{second * 1e6:.2f} µs | {second / first:.2f}x" if second is not None else " | "
            print(f"| {name} | {first * 1e6:.2f} µs | {tail} |")
        elif second is None:
            print(f"{name:48s} {first * 1e6:9.2f} us")
        else:
            print(f"{name:48s} {first * 1e6:9.2f} us | {second * 1e6:9.2f} us  (on/off {second / first:.2f}x,"
                  f" +{(second - first) * 1e6:.2f} us)")
    if not native:
        print("native: pyveda_bench not found (configure with -DVEDA_BUILD_BENCH=ON, or pass --native)")
    if fake:
        print("note: the fake NVML answers at once; a real driver adds its own call latency to every GPU row")


if __name__ == "__main__":
    main()
