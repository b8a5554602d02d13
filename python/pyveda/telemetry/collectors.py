"""The process, platform and garbage-collector collectors, with prometheus_client's sample names.

All three are registered in :data:`~pyveda.telemetry.REGISTRY` when it is
first imported, as prometheus_client registers them; unregister them with
``REGISTRY.unregister(PROCESS_COLLECTOR)`` and so on.

* :class:`ProcessCollector`: ``process_cpu_seconds_total``,
  ``process_virtual_memory_bytes``, ``process_resident_memory_bytes``,
  ``process_start_time_seconds``, ``process_open_fds``, ``process_max_fds``,
  read from ``/proc`` (nothing where there is no ``/proc``);
* :class:`PlatformCollector`: ``python_info`` (implementation, version);
* :class:`GCCollector`: ``python_gc_objects_collected_total``,
  ``python_gc_objects_uncollectable_total``, ``python_gc_collections_total``
  per generation (CPython).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any, Callable, Iterator, List, Optional, Union

from pyveda.telemetry.metrics_core import CounterMetricFamily, GaugeMetricFamily
from pyveda.telemetry.registry import REGISTRY, CollectorRegistry

__all__ = [
    "GC_COLLECTOR",
    "GCCollector",
    "PLATFORM_COLLECTOR",
    "PROCESS_COLLECTOR",
    "PlatformCollector",
    "ProcessCollector",
]


def _register(collector: Any, registry: Optional[CollectorRegistry]) -> None:
    if registry is not None:
        registry.register(collector)


class ProcessCollector:
    """CPU time, memory, start time and file descriptors of a process, from ``/proc/<pid>``.

    ``pid`` is a callable giving the pid (or ``"self"``, the default);
    ``namespace`` prefixes the names (``<namespace>_process_...``).
    """

    def __init__(self, namespace: str = "", pid: Callable[[], Union[int, str]] = lambda: "self",
                 proc: str = "/proc", registry: Optional[CollectorRegistry] = REGISTRY) -> None:
        self._prefix = f"{namespace}_process_" if namespace else "process_"
        self._pid = pid
        self._proc = proc
        self._ticks = 100.0
        self._page = 4096
        if hasattr(os, "sysconf"):
            try:
                self._ticks = float(os.sysconf("SC_CLK_TCK"))
                self._page = os.sysconf("SC_PAGE_SIZE")
            except (ValueError, OSError):
                pass
        self._boot: Optional[float] = None
        _register(self, registry)

    def _boot_time(self) -> float:
        if self._boot is None:
            with open(os.path.join(self._proc, "stat"), "rb") as f:
                for line in f:
                    if line.startswith(b"btime "):
                        self._boot = float(line.split()[1])
                        break
                else:
                    self._boot = 0.0
        return self._boot

    def collect(self) -> Iterator[Any]:
        where = os.path.join(self._proc, str(self._pid()))
        try:
            with open(os.path.join(where, "stat"), "rb") as f:
                stat = f.read()
        except OSError:
            return  # no /proc here (macOS, Windows) or the process is gone
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat[stat.rindex(b")") + 2:].split()
        p = self._prefix
        yield GaugeMetricFamily(p + "virtual_memory_bytes", "Virtual memory size in bytes.", value=float(fields[20]))
        yield GaugeMetricFamily(p + "resident_memory_bytes", "Resident memory size in bytes.",
                                value=float(fields[21]) * self._page)
        yield GaugeMetricFamily(p + "start_time_seconds", "Start time of the process since unix epoch in seconds.",
                                value=float(fields[19]) / self._ticks + self._boot_time())
        yield CounterMetricFamily(p + "cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                                  value=(float(fields[11]) + float(fields[12])) / self._ticks)
        try:
            yield GaugeMetricFamily(p + "open_fds", "Number of open file descriptors.",
                                    value=float(len(os.listdir(os.path.join(where, "fd")))))
            with open(os.path.join(where, "limits"), "rb") as f:
                for line in f:
                    if line.startswith(b"Max open files"):
                        yield GaugeMetricFamily(p + "max_fds", "Maximum number of open file descriptors.",
                                                value=float(line.split()[3]))
                        break
        except OSError:
            pass


class PlatformCollector:
    """``python_info``: the interpreter's implementation and version as labels (value 1)."""

    def __init__(self, registry: Optional[CollectorRegistry] = REGISTRY, platform: Any = None) -> None:
        self._platform = platform
        self._labels: Optional[List[str]] = None
        _register(self, registry)

    def collect(self) -> Iterator[Any]:
        if self._labels is None:
            import platform as standard_platform

            source = self._platform or standard_platform
            major, minor, patch = source.python_version_tuple()
            self._labels = [source.python_implementation(), major, minor, patch, source.python_version()]
        info = GaugeMetricFamily("python_info", "Python platform information",
                                 labels=["implementation", "major", "minor", "patchlevel", "version"])
        info.add_metric(self._labels, 1)
        yield info


class GCCollector:
    """Objects collected, uncollectable objects and collections per garbage-collector generation (CPython only)."""

    def __init__(self, registry: Optional[CollectorRegistry] = REGISTRY) -> None:
        if sys.implementation.name != "cpython" or not hasattr(gc, "get_stats"):
            return
        _register(self, registry)

    def collect(self) -> Iterator[Any]:
        collected = CounterMetricFamily("python_gc_objects_collected", "Objects collected during gc",
                                        labels=["generation"])
        uncollectable = CounterMetricFamily("python_gc_objects_uncollectable", "Uncollectable objects found during GC",
                                            labels=["generation"])
        collections = CounterMetricFamily("python_gc_collections", "Number of times this generation was collected",
                                          labels=["generation"])
        for generation, stats in enumerate(gc.get_stats()):
            label = [str(generation)]
            collected.add_metric(label, stats["collected"])
            uncollectable.add_metric(label, stats["uncollectable"])
            collections.add_metric(label, stats["collections"])
        yield collected
        yield uncollectable
        yield collections


PROCESS_COLLECTOR = ProcessCollector()
PLATFORM_COLLECTOR = PlatformCollector()
GC_COLLECTOR = GCCollector()
