"""GPU telemetry: ``runtime.gpu`` and the per-device records of snapshots.

>>> import pyveda as veda
>>> runtime = veda.init(veda.Config.builder().telemetry(True).gpu(True).build())
>>> if runtime.gpu.is_available():
...     print(runtime.gpu.get_utilization(), runtime.gpu.get_memory_stats())
... else:
...     print(runtime.gpu.unavailable_reason)

``runtime.gpu`` is None unless the runtime was built with ``gpu(True)``
(``Config.enable_gpu``). NVML (``libnvidia-ml.so.1``, or the library named
by ``$PYVEDA_NVML_LIBRARY``) is loaded with dlopen when the runtime starts;
a missing library, driver or device is a state, not an error:
``is_available()`` is False, ``unavailable_reason`` says why, a warning goes
to the ``"pyveda"`` logger once per runtime, and every reading is None.
Readings come from the native core with the GIL released.

Device indexes are NVML's (PCI bus order, the numbers nvidia-smi shows);
``CUDA_VISIBLE_DEVICES`` does not renumber them. Memory is in MiB. Memory
"used" is NVML's v2 ``used``: it excludes the memory the driver reserves and
matches the "Used" column of ``nvidia-smi``, so ``used + free`` is less than
``total`` by ``memory_reserved_mb``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional, Tuple

from pyveda import _core

__all__ = ["GpuDevice", "GpuMonitor", "GpuSample"]

_logger = logging.getLogger("pyveda")


@dataclass(frozen=True)
class GpuSample:
    """One NVIDIA device as NVML reported it at one instant.

    A field is None when the driver does not report it on this board (NVML
    "not supported", no permission, an older driver), never a made-up 0.
    """

    index: int
    """NVML device index (PCI bus order, as nvidia-smi)."""
    name: str
    """Product name; empty if NVML did not give one."""
    uuid: str
    """``"GPU-..."``; empty if NVML did not give one."""
    utilization_percent: Optional[float]
    """Percent of the last sample period (1/6 s to 1 s) in which a kernel ran."""
    memory_utilization_percent: Optional[float]
    """Percent of that period in which device memory was read or written."""
    memory_used_mb: Optional[float]
    """Allocated memory, MiB: NVML v2 ``used`` (excludes driver-reserved memory; nvidia-smi's "Used")."""
    memory_free_mb: Optional[float]
    """Unallocated memory, MiB."""
    memory_total_mb: Optional[float]
    """Physical memory, MiB."""
    memory_reserved_mb: Optional[float]
    """Memory the driver reserves, MiB (None on drivers without NVML's v2 memory call)."""
    temperature_c: Optional[float]
    """GPU core temperature, degrees Celsius."""
    power_w: Optional[float]
    """Board power draw, watts."""
    power_limit_w: Optional[float]
    """Enforced power limit, watts."""
    sm_clock_mhz: Optional[float]
    """Current SM clock, MHz."""
    process_memory_mb: Optional[float]
    """Device memory used by this process, MiB (0 inside most containers: NVML lists host PIDs)."""

    @classmethod
    def _from_core(cls, core: Any) -> "GpuSample":
        return cls(**{name: getattr(core, name) for name in _SAMPLE_FIELDS})

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a plain dict (``json.dumps`` accepts it)."""
        return asdict(self)


_SAMPLE_FIELDS = tuple(f.name for f in fields(GpuSample))


@dataclass(frozen=True)
class GpuDevice(GpuSample):
    """A :class:`GpuSample` plus the device's CUDA compute capability."""

    compute_capability: Optional[Tuple[int, int]] = None
    """``(major, minor)``, e.g. ``(9, 0)`` for an H100, from the CUDA driver
    (``libcuda.so.1`` or ``$PYVEDA_CUDA_LIBRARY``) matched by UUID; None when
    the CUDA driver is unavailable or does not see this device."""

    @classmethod
    def _from_core(cls, core: Any) -> "GpuDevice":
        capability = core.compute_capability
        return cls(
            **{name: getattr(core, name) for name in _SAMPLE_FIELDS},
            compute_capability=None if capability is None else (capability.major, capability.minor),
        )


def _check_device(device: Optional[int]) -> Optional[int]:
    if device is None:
        return None
    if not isinstance(device, int) or isinstance(device, bool):
        raise TypeError(f"device must be an int GPU index or None, got {type(device).__name__} ({device!r})")
    return device


class GpuMonitor:
    """The GPUs of this machine: ``runtime.gpu`` when GPU telemetry is enabled.

    Each reading takes a fresh NVML sample of every device (the GIL is
    released meanwhile). A device index that does not exist raises
    IndexError naming the indexes that do.
    """

    __slots__ = ("_core",)

    def __init__(self, core: _core.GpuMonitor) -> None:
        self._core = core

    @classmethod
    def _for_runtime(cls, core: _core.GpuMonitor) -> "GpuMonitor":
        """Wraps a runtime's monitor, logging once if the GPU is unavailable."""
        monitor = cls(core)
        if not core.is_available():
            _logger.warning(
                "pyveda: GPU telemetry is enabled but unavailable, GPU metrics will be absent: %s",
                core.unavailable_reason(),
            )
        return monitor

    def is_available(self) -> bool:
        """True when NVML loaded and reported at least one device."""
        return self._core.is_available()

    @property
    def unavailable_reason(self) -> Optional[str]:
        """Why the GPU is unavailable (e.g. ``"GPU not available: cannot load NVML: ..."``); None when available."""
        reason = self._core.unavailable_reason()
        return reason or None

    def device_count(self) -> int:
        """Number of devices (0 when unavailable)."""
        return self._core.device_count()

    def devices(self) -> List[GpuDevice]:
        """One :class:`GpuDevice` per device, in index order; empty when unavailable.

        The first call loads the CUDA driver (``cuInit``, no context) to read
        compute capabilities. CUDA cannot be used in a process fork()ed after
        that, so a program that forks CUDA workers should call this after forking.
        """
        return [GpuDevice._from_core(d) for d in self._core.devices()]

    def get_utilization(self, device: Optional[int] = None) -> Optional[float]:
        """Utilization (0-100) of ``device``, or the mean over all devices when None.

        None when there is no reading (GPU unavailable, or not supported).
        """
        return self._core.utilization(_check_device(device))

    def get_memory_stats(self, device: Optional[int] = None) -> Dict[str, Optional[float]]:
        """``{"used_mb", "free_mb", "total_mb"}`` of ``device``, or summed over all devices when None.

        ``used_mb`` excludes driver-reserved memory (as nvidia-smi's "Used").
        Values are None when not reported (and when the GPU is unavailable).
        """
        stats = self._core.memory_stats(_check_device(device))
        return {"used_mb": stats.used_mb, "free_mb": stats.free_mb, "total_mb": stats.total_mb}

    def __repr__(self) -> str:
        if self._core.is_available():
            return f"<pyveda GpuMonitor: {self._core.device_count()} device(s)>"
        return f"<pyveda GpuMonitor: unavailable ({self._core.unavailable_reason()})>"
