"""Runtime telemetry: snapshots, background collection and their exports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from pyveda import _core

if TYPE_CHECKING:
    from pyveda.telemetry.gpu import GpuSample

__all__ = ["MetricsSnapshot", "TelemetrySystem"]


def _fill_from_psutil(core_snapshot: Any) -> None:
    """Host figures from psutil, for systems where the core cannot read /proc."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return
    memory = psutil.virtual_memory()
    mib = float(1 << 20)
    core_snapshot.cpu_utilization_percent = float(psutil.cpu_percent(interval=None))
    core_snapshot.memory_used_mb = (memory.total - memory.available) / mib
    core_snapshot.memory_total_mb = memory.total / mib
    core_snapshot.process_rss_mb = psutil.Process().memory_info().rss / mib


class MetricsSnapshot:
    """The runtime's figures at one moment (read-only).

    Counts cover this runtime since it started; ``tasks_executed`` counts every
    finished task, failed ones included, so ``tasks_failed / tasks_executed``
    is the failure rate. Latencies are end to end (spawn to completion) over
    all finished tasks, in milliseconds, and read 0 before the first task
    finishes. ``throughput_tasks_per_sec`` and ``cpu_utilization_percent``
    cover the latest collection window (``window_seconds`` long). Memory
    figures are MiB. The GPU fields are None (and ``gpus`` is empty) unless
    GPU telemetry is enabled (``Config.builder().gpu(True)``) and a GPU is
    present: never 0 in place of a missing reading.
    """

    __slots__ = ("_s",)

    def __init__(self, core_snapshot: _core.MetricsSnapshot) -> None:
        self._s = core_snapshot

    timestamp = property(lambda self: self._s.timestamp, doc="Unix time of the snapshot, seconds.")
    tasks_executed = property(lambda self: self._s.tasks_executed, doc="Tasks finished (failed ones included).")
    tasks_failed = property(lambda self: self._s.tasks_failed, doc="Tasks that raised.")
    tasks_pending = property(lambda self: self._s.tasks_pending, doc="Tasks queued, not yet started.")
    tasks_running = property(lambda self: self._s.tasks_running, doc="Tasks running at the time.")
    avg_latency_ms = property(lambda self: self._s.avg_latency_ms, doc="Mean task latency, ms.")
    p50_latency_ms = property(lambda self: self._s.p50_latency_ms, doc="Median task latency, ms.")
    p95_latency_ms = property(lambda self: self._s.p95_latency_ms, doc="95th percentile latency, ms.")
    p99_latency_ms = property(lambda self: self._s.p99_latency_ms, doc="99th percentile latency, ms.")
    throughput_tasks_per_sec = property(
        lambda self: self._s.throughput_tasks_per_sec, doc="Tasks finished per second over the window."
    )
    window_seconds = property(lambda self: self._s.window_seconds, doc="Length of the rate window, seconds.")
    cpu_utilization_percent = property(
        lambda self: self._s.cpu_utilization_percent, doc="Host CPU use over the window, 0-100."
    )
    memory_used_mb = property(lambda self: self._s.memory_used_mb, doc="Host memory used (total - available), MiB.")
    memory_total_mb = property(lambda self: self._s.memory_total_mb, doc="Host memory, MiB.")
    process_rss_mb = property(lambda self: self._s.process_rss_mb, doc="This process's resident memory, MiB.")
    gpu_utilization_percent = property(
        lambda self: self._s.gpu_utilization_percent,
        doc="Mean GPU utilization over the devices that report it, 0-100, or None.",
    )
    gpu_memory_used_mb = property(
        lambda self: self._s.gpu_memory_used_mb,
        doc=(
            "GPU memory used, MiB, summed over devices, or None. NVML v2 'used': excludes the memory "
            "the driver reserves, as the 'Used' column of nvidia-smi."
        ),
    )

    start_unix_nano = property(
        lambda self: self._s.start_unix_nano,
        doc="Start of the cumulative task counts (runtime start or last reset), ns since the Unix epoch.",
    )
    latency_count = property(lambda self: self._s.latency_count, doc="Finished tasks behind the latency figures.")
    latency_sum_ms = property(lambda self: self._s.latency_sum_ms, doc="Sum of all task latencies, ms.")

    @property
    def latency_histogram(self) -> Optional[_core.HistogramSnapshot]:
        """The latency buckets (OTel exponential layout: ``scale``, ``zero_count``, ``offset``, ``counts``).

        Set on snapshots taken with :meth:`TelemetrySystem.snapshot` (and those
        passed to callbacks); None on collected history snapshots, which keep
        only the summary figures.
        """
        return self._s.latency_histogram

    @property
    def gpus(self) -> List[GpuSample]:
        """One :class:`~pyveda.telemetry.gpu.GpuSample` per device, in index order (empty without GPU data)."""
        from pyveda.telemetry.gpu import GpuSample

        return [GpuSample._from_core(g) for g in self._s.gpus]

    def export_prometheus(self) -> str:
        """Prometheus text format 0.0.4 with the guide's ``pyveda_*`` names (rendered in C++).

        With GPU data it has one series per device, labelled ``gpu`` (NVML
        index) and ``name``, in ``pyveda_gpu_utilization_percent``,
        ``pyveda_gpu_memory_used_mb``, ``pyveda_gpu_memory_total_mb``,
        ``pyveda_gpu_temperature_celsius`` and ``pyveda_gpu_power_watts``
        (aggregate with ``avg``/``sum`` in PromQL).
        """
        return self._s.export_prometheus()

    def export_json(self) -> Dict[str, Any]:
        """The snapshot as the guide's nested dict; ``json.dumps`` accepts it as is.

        With GPU data (only then) it also has ``system.gpu_percent`` (mean
        utilization), ``system.gpu_memory_mb`` (summed used memory) and a
        top-level ``"gpus"`` list with one dict per device (the fields of
        :class:`~pyveda.telemetry.gpu.GpuSample`).
        """
        s = self._s
        data: Dict[str, Any] = {
            "timestamp": s.timestamp,
            "tasks": {"executed": s.tasks_executed, "failed": s.tasks_failed, "pending": s.tasks_pending},
            "latency": {
                "avg_ms": s.avg_latency_ms,
                "p50_ms": s.p50_latency_ms,
                "p95_ms": s.p95_latency_ms,
                "p99_ms": s.p99_latency_ms,
            },
            "system": {
                "cpu_percent": s.cpu_utilization_percent,
                "memory_mb": s.memory_used_mb,
                "throughput_tasks_per_sec": s.throughput_tasks_per_sec,
            },
        }
        if s.gpu_utilization_percent is not None:
            data["system"]["gpu_percent"] = s.gpu_utilization_percent
        if s.gpu_memory_used_mb is not None:
            data["system"]["gpu_memory_mb"] = s.gpu_memory_used_mb
        gpus = self.gpus
        if gpus:
            data["gpus"] = [g.to_dict() for g in gpus]
        return data

    def __repr__(self) -> str:
        return (
            f"MetricsSnapshot(timestamp={self.timestamp:.3f}, tasks_executed={self.tasks_executed}, "
            f"tasks_failed={self.tasks_failed}, tasks_pending={self.tasks_pending}, "
            f"avg_latency_ms={self.avg_latency_ms:.3f}, throughput_tasks_per_sec={self.throughput_tasks_per_sec:.1f})"
        )


class TelemetrySystem:
    """A runtime's telemetry: ``runtime.telemetry`` when telemetry is enabled."""

    __slots__ = ("_core",)

    def __init__(self, core: _core.TelemetrySystem) -> None:
        self._core = core

    def snapshot(self) -> MetricsSnapshot:
        """The figures now. Taking one never changes what the next reader sees.

        Host CPU and memory come from ``/proc`` in the core; where that cannot
        be read (not Linux), they come from psutil instead (CPU then covers the
        time since the previous such call in the process).
        """
        core_snapshot = self._core.snapshot()
        if not core_snapshot.system_ok:
            _fill_from_psutil(core_snapshot)
        return MetricsSnapshot(core_snapshot)

    def start(self) -> None:
        """Collects a snapshot every ``collect_interval`` seconds on a background thread."""
        self._core.start()

    def stop(self) -> None:
        """Stops background collection (returns within a fraction of the interval)."""
        self._core.stop()

    @property
    def is_running(self) -> bool:
        return self._core.is_running

    @property
    def collect_interval(self) -> float:
        return self._core.collect_interval

    def get_snapshots(self) -> List[MetricsSnapshot]:
        """Collected snapshots, oldest first (at most ``max_snapshots``)."""
        return [MetricsSnapshot(s) for s in self._core.snapshots()]

    def clear_snapshots(self) -> None:
        self._core.clear_snapshots()

    @property
    def max_snapshots(self) -> int:
        """How many collected snapshots are kept; lowering it drops the oldest."""
        return self._core.max_snapshots

    @max_snapshots.setter
    def max_snapshots(self, n: int) -> None:
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"max_snapshots must be an int >= 1, got {type(n).__name__}")
        if n < 1:
            raise ValueError(f"max_snapshots must be an int >= 1, got {n}")
        self._core.max_snapshots = n

    # The guide's troubleshooting section adjusts this name.
    _max_snapshots = max_snapshots

    def add_callback(self, callback: Callable[[MetricsSnapshot], Any]) -> int:
        """Calls ``callback(snapshot)`` after each background collection; returns an id.

        Runs on the collector thread; exceptions are reported as unraisable,
        never stop collection.
        """
        if not callable(callback):
            raise TypeError(f"add_callback() takes a callable, got {type(callback).__name__}")
        return self._core.add_callback(lambda s: callback(MetricsSnapshot(s)))

    def remove_callback(self, callback_id: int) -> None:
        self._core.remove_callback(callback_id)
