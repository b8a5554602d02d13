"""Runtime telemetry: snapshots, background collection and their exports."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from pyveda import _core

if TYPE_CHECKING:
    from pyveda.telemetry.gpu import GpuSample

__all__ = ["MetricsSnapshot", "TelemetrySystem"]


def _core_gpu_sample(sample: Any) -> Any:
    """A core GpuDeviceSample from a GpuSample or its to_dict() form."""
    from pyveda.telemetry.gpu import _SAMPLE_FIELDS, GpuSample

    if isinstance(sample, GpuSample):
        sample = {name: getattr(sample, name) for name in _SAMPLE_FIELDS}
    if not isinstance(sample, dict):
        raise TypeError(f"MetricsSnapshot: gpus must hold GpuSample objects or their dicts, got {type(sample).__name__}")
    unknown = sorted(set(sample) - set(_SAMPLE_FIELDS) - {"compute_capability"})
    if unknown:
        raise ValueError(f"MetricsSnapshot: unknown GPU sample field(s) {unknown}; allowed: {list(_SAMPLE_FIELDS)}")
    core = _core.GpuDeviceSample()
    for name in _SAMPLE_FIELDS:
        value = sample.get(name)
        if name in ("name", "uuid"):
            if not isinstance(value, str):
                raise TypeError(f"MetricsSnapshot: GPU sample {name} must be a str, got {value!r}")
        elif name == "index":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 31:
                raise ValueError(f"MetricsSnapshot: GPU sample index must be an int >= 0, got {value!r}")
        elif value is not None:
            value = _figure(f"GPU sample {name}", value)
        setattr(core, name, value)
    return core


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


_COUNT_FIELDS = ("tasks_executed", "tasks_failed", "tasks_pending", "tasks_running")
_FIGURE_FIELDS = (
    "avg_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "throughput_tasks_per_sec",
    "window_seconds",
    "cpu_utilization_percent",
    "memory_used_mb",
    "memory_total_mb",
    "process_rss_mb",
)
_GPU_FIELDS = ("gpu_utilization_percent", "gpu_memory_used_mb")
# export_json()'s key path -> field, in the guide's order; from_json() reads
# the same table back.
_JSON_FIELDS = (
    (("tasks", "executed"), "tasks_executed"),
    (("tasks", "failed"), "tasks_failed"),
    (("tasks", "pending"), "tasks_pending"),
    (("latency", "avg_ms"), "avg_latency_ms"),
    (("latency", "p50_ms"), "p50_latency_ms"),
    (("latency", "p95_ms"), "p95_latency_ms"),
    (("latency", "p99_ms"), "p99_latency_ms"),
    (("system", "cpu_percent"), "cpu_utilization_percent"),
    (("system", "memory_mb"), "memory_used_mb"),
    (("system", "throughput_tasks_per_sec"), "throughput_tasks_per_sec"),
)
_JSON_GPU_FIELDS = ((("system", "gpu_percent"), "gpu_utilization_percent"), (("system", "gpu_memory_mb"), "gpu_memory_used_mb"))


def _count(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"MetricsSnapshot: {name} must be an int >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"MetricsSnapshot: {name} must be an int >= 0, got {value!r}")
    if value >= 1 << 64:
        raise ValueError(f"MetricsSnapshot: {name} must be an int in [0, 2**64), got {value!r}")
    return value


def _figure(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"MetricsSnapshot: {name} must be a finite number >= 0, got {value!r}")
    value = float(value)
    if not 0.0 <= value < math.inf:
        raise ValueError(f"MetricsSnapshot: {name} must be a finite number >= 0, got {value!r}")
    return value


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

    Runtimes make snapshots (``runtime.telemetry.snapshot()``); code that
    tests its alerting or replays stored figures can build one from keyword
    fields, and :meth:`from_json` reads back what :meth:`export_json` wrote::

        MetricsSnapshot(timestamp=1699564800.0, tasks_executed=100, tasks_failed=2,
                        tasks_pending=5, avg_latency_ms=10.5, p99_latency_ms=40.0)

    Every field is optional: counts default to 0, figures to 0.0, the GPU
    figures to None, ``p90_latency_ms`` to NaN (unknown) and ``timestamp``
    to now. Counts are ints >= 0 (with
    ``tasks_failed <= tasks_executed``), figures finite numbers >= 0.
    ``latency_count`` defaults to ``tasks_executed`` and ``latency_sum_ms``
    to ``avg_latency_ms * latency_count``; ``gpus`` takes
    :class:`~pyveda.telemetry.gpu.GpuSample` objects or their ``to_dict()``
    dicts. A built snapshot has no ``latency_histogram``.
    """

    __slots__ = ("_s",)

    def __init__(
        self,
        *,
        timestamp: Optional[float] = None,
        tasks_executed: int = 0,
        tasks_failed: int = 0,
        tasks_pending: int = 0,
        tasks_running: int = 0,
        avg_latency_ms: float = 0.0,
        p50_latency_ms: float = 0.0,
        p90_latency_ms: Optional[float] = None,
        p95_latency_ms: float = 0.0,
        p99_latency_ms: float = 0.0,
        throughput_tasks_per_sec: float = 0.0,
        window_seconds: float = 0.0,
        cpu_utilization_percent: float = 0.0,
        memory_used_mb: float = 0.0,
        memory_total_mb: float = 0.0,
        process_rss_mb: float = 0.0,
        gpu_utilization_percent: Optional[float] = None,
        gpu_memory_used_mb: Optional[float] = None,
        gpus: Iterable[Any] = (),
        latency_count: Optional[int] = None,
        latency_sum_ms: Optional[float] = None,
        start_unix_nano: int = 0,
    ) -> None:
        given = locals()
        core = _core.MetricsSnapshot()
        if timestamp is None:
            timestamp = time.time()
        elif not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool) or not math.isfinite(timestamp):
            raise TypeError(f"MetricsSnapshot: timestamp must be a finite number of Unix seconds, got {timestamp!r}")
        core.timestamp = float(timestamp)
        for name in _COUNT_FIELDS:
            setattr(core, name, _count(name, given[name]))
        if tasks_failed > tasks_executed:
            raise ValueError(
                f"MetricsSnapshot: tasks_failed ({tasks_failed}) cannot exceed tasks_executed ({tasks_executed}), "
                "which counts failed tasks too"
            )
        for name in _FIGURE_FIELDS:
            setattr(core, name, _figure(name, given[name]))
        for name in _GPU_FIELDS:
            value = given[name]
            setattr(core, name, None if value is None else _figure(name, value))
        # Not in export_json() (nor the guide's field list): unknown unless given.
        core.p90_latency_ms = math.nan if p90_latency_ms is None else _figure("p90_latency_ms", p90_latency_ms)
        count = tasks_executed if latency_count is None else _count("latency_count", latency_count)
        core.latency_count = count
        core.latency_sum_ms = (
            core.avg_latency_ms * count if latency_sum_ms is None else _figure("latency_sum_ms", latency_sum_ms)
        )
        if not isinstance(start_unix_nano, int) or isinstance(start_unix_nano, bool) or not 0 <= start_unix_nano < 1 << 63:
            raise ValueError(
                f"MetricsSnapshot: start_unix_nano must be an int of ns since the epoch in [0, 2**63), "
                f"got {start_unix_nano!r}"
            )
        core.start_unix_nano = start_unix_nano
        core.system_ok = True
        core.gpus = [_core_gpu_sample(g) for g in gpus]
        self._s = core

    @classmethod
    def _wrap(cls, core_snapshot: _core.MetricsSnapshot) -> "MetricsSnapshot":
        snapshot = cls.__new__(cls)
        snapshot._s = core_snapshot
        return snapshot

    @classmethod
    def from_json(cls, data: Union[Dict[str, Any], str, bytes]) -> "MetricsSnapshot":
        """The snapshot that :meth:`export_json` described (a dict, or its JSON text).

        ``from_json(s.export_json()).export_json() == s.export_json()``. Fields
        that the JSON form does not carry (``tasks_running``, ``window_seconds``,
        the host's total memory, the latency histogram) read as their defaults.
        """
        if isinstance(data, (str, bytes, bytearray)):
            import json  # only here: import pyveda stays fast

            try:
                data = json.loads(data)
            except ValueError as error:
                raise ValueError(f"MetricsSnapshot.from_json: not JSON ({error})") from None
        if not isinstance(data, dict):
            raise TypeError(
                f"MetricsSnapshot.from_json takes the dict export_json() returns (or its JSON text), "
                f"got {type(data).__name__}"
            )

        def read(path: Tuple[str, ...], required: bool) -> Any:
            node: Any = data
            for key in path:
                if not isinstance(node, dict) or key not in node:
                    if not required:
                        return None
                    raise ValueError(f"MetricsSnapshot.from_json: missing {'.'.join(path)!r}")
                node = node[key]
            return node

        fields: Dict[str, Any] = {"timestamp": read(("timestamp",), True)}
        for path, name in _JSON_FIELDS:
            fields[name] = read(path, True)
        for path, name in _JSON_GPU_FIELDS:
            fields[name] = read(path, False)
        gpus = data.get("gpus", [])
        if not isinstance(gpus, list):
            raise TypeError(f"MetricsSnapshot.from_json: 'gpus' must be a list of device dicts, got {type(gpus).__name__}")
        fields["gpus"] = gpus
        return cls(**fields)

    timestamp = property(lambda self: self._s.timestamp, doc="Unix time of the snapshot, seconds.")
    tasks_executed = property(lambda self: self._s.tasks_executed, doc="Tasks finished (failed ones included).")
    tasks_failed = property(lambda self: self._s.tasks_failed, doc="Tasks that raised.")
    tasks_pending = property(lambda self: self._s.tasks_pending, doc="Tasks queued, not yet started.")
    tasks_running = property(lambda self: self._s.tasks_running, doc="Tasks running at the time.")
    avg_latency_ms = property(lambda self: self._s.avg_latency_ms, doc="Mean task latency, ms.")
    p50_latency_ms = property(lambda self: self._s.p50_latency_ms, doc="Median task latency, ms.")
    p90_latency_ms = property(
        lambda self: self._s.p90_latency_ms,
        doc="90th percentile latency, ms (NaN on a built snapshot that was not given one).",
    )
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

    def export_openmetrics(self) -> str:
        """The same families as :meth:`export_prometheus` in OpenMetrics 1.0 text (ends in ``# EOF``)."""
        return self._s.export_openmetrics()

    def export_json(self) -> Dict[str, Any]:
        """The snapshot as the guide's nested dict; ``json.dumps`` accepts it as is.

        With GPU data (only then) it also has ``system.gpu_percent`` (mean
        utilization), ``system.gpu_memory_mb`` (summed used memory) and a
        top-level ``"gpus"`` list with one dict per device (the fields of
        :class:`~pyveda.telemetry.gpu.GpuSample`).
        """
        s = self._s
        data: Dict[str, Any] = {"timestamp": s.timestamp}
        for (section, key), name in _JSON_FIELDS:  # the one key map, shared with from_json()
            data.setdefault(section, {})[key] = getattr(s, name)
        for (section, key), name in _JSON_GPU_FIELDS:
            value = getattr(s, name)
            if value is not None:
                data[section][key] = value
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
        return MetricsSnapshot._wrap(core_snapshot)

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
        return [MetricsSnapshot._wrap(s) for s in self._core.snapshots()]

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
        limit = _core.RuntimeOptions.max_snapshots_limit
        if not 1 <= n <= limit:
            raise ValueError(f"max_snapshots must be an int between 1 and 2**{limit.bit_length() - 1}, got {n}")
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
        return self._core.add_callback(lambda s: callback(MetricsSnapshot._wrap(s)))

    def remove_callback(self, callback_id: int) -> None:
        self._core.remove_callback(callback_id)
