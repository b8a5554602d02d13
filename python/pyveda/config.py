"""Runtime configuration: ``Config`` and its fluent builder.

>>> import pyveda as veda
>>> config = veda.Config.builder().threads(4).telemetry(True).build()
>>> config.enable_telemetry
True

A built ``Config`` has plain attributes that may still be changed
(``config.enable_gpu = True``); :func:`pyveda.init` checks them again.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from pyveda import _core
from pyveda._checks import shown

__all__ = ["Config", "ConfigBuilder"]

# The ranges RuntimeOptions::validate() enforces, read from the core.
_LIMITS = _core.RuntimeOptions


def _check_int(field: str, value: Any, minimum: int, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"Config.{field} must be an int, got {type(value).__name__} ({value!r})")
    if minimum <= value <= maximum:
        return value
    if maximum < 1 << 32:
        allowed = f"between {minimum} and {maximum}"
    elif value < minimum:
        allowed = f">= {minimum}"
    else:  # the core's practical-infinity bounds, shown as powers of two
        allowed = f"at most 2**{maximum.bit_length() - 1}"
    raise ValueError(f"Config.{field} must be {allowed}, got {shown(value)}")


def _check_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"Config.{field} must be True or False, got {type(value).__name__} ({value!r})")
    return value


_EXECUTOR_OPTIONS = {"local": (), "dask": ("address", "client")}


def _check_executor(executor: Any, options: Any) -> None:
    if executor not in _EXECUTOR_OPTIONS:
        raise ValueError(f"Config.executor must be 'local' or 'dask', got {executor!r}")
    if not isinstance(options, dict):
        raise TypeError(f"Config.executor_options must be a dict, got {type(options).__name__}")
    allowed = _EXECUTOR_OPTIONS[executor]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        what = f"allowed: {', '.join(allowed)}" if allowed else "it takes none"
        raise ValueError(f"Config.executor_options: {unknown} are not options of the {executor!r} executor ({what})")
    if executor == "dask":
        address, client = options.get("address"), options.get("client")
        if address is not None and client is not None:
            raise ValueError("Config.executor_options: give the Dask executor an address or a client, not both")
        if address is not None and not isinstance(address, str):
            raise TypeError(f"Config.executor_options['address'] must be a str such as 'tcp://127.0.0.1:8786', "
                            f"got {type(address).__name__}")


def _check_seconds(field: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"Config.{field} must be a number of seconds, got {type(value).__name__} ({value!r})")
    if not (0 < value <= _LIMITS.max_collect_interval_s):
        limit = " (at most 1e9)" if value > 0 else ""
        raise ValueError(f"Config.{field} must be a finite number of seconds > 0, got {shown(value)}{limit}")


class Config:
    """Settings of a runtime.

    Attributes:
        num_threads: worker threads (default: the CPU count).
        queue_size: most tasks queued and not started; 0 = unbounded. When the
            queue is full, ``spawn`` blocks until there is room
            (``Runtime.try_spawn`` gives up after a timeout instead).
        enable_telemetry: record per-task metrics and allow snapshots (default False).
        enable_gpu: monitor NVIDIA GPUs through NVML (``runtime.gpu``) and add
            GPU figures to snapshots (default False). Without a driver or
            device the runtime still starts; ``runtime.gpu.is_available()``
            is then False.
        enable_tracing: give every task a span (default False).
        collect_interval: seconds between background collections (default 1.0).
        latency_window: seconds of recent tasks that a snapshot's latency
            percentiles and mean (and the ``pyveda_latency_ms`` summary
            quantiles) describe (default 60.0); task counts, latency sums and
            histogram buckets stay cumulative over the runtime's life.
        max_snapshots: collected snapshots kept in history (default 3600).
        executor: where ``spawn`` runs tasks: ``"local"`` (the default: this
            runtime's worker threads) or ``"dask"`` (a Dask cluster, see
            :mod:`pyveda.dask`); ``executor_options`` holds the executor's
            settings (for Dask: ``address`` or ``client``).
    """

    __slots__ = (
        "num_threads",
        "queue_size",
        "enable_telemetry",
        "enable_gpu",
        "enable_tracing",
        "collect_interval",
        "latency_window",
        "max_snapshots",
        "executor",
        "executor_options",
    )

    def __init__(
        self,
        num_threads: Optional[int] = None,
        queue_size: int = 0,
        enable_telemetry: bool = False,
        enable_gpu: bool = False,
        enable_tracing: bool = False,
        collect_interval: float = 1.0,
        max_snapshots: int = 3600,
        latency_window: float = 60.0,
        executor: str = "local",
        executor_options: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.num_threads = (os.cpu_count() or 1) if num_threads is None else num_threads
        self.queue_size = queue_size
        self.enable_telemetry = enable_telemetry
        self.enable_gpu = enable_gpu
        self.enable_tracing = enable_tracing
        self.collect_interval = collect_interval
        self.latency_window = latency_window
        self.max_snapshots = max_snapshots
        self.executor = executor
        self.executor_options = {} if executor_options is None else executor_options

    @staticmethod
    def builder() -> "ConfigBuilder":
        """A fluent builder: ``Config.builder().threads(4).telemetry(True).build()``."""
        return ConfigBuilder()

    def validate(self) -> "Config":
        """Raises TypeError or ValueError naming the first invalid field; returns self."""
        _check_int("num_threads", self.num_threads, 1, _LIMITS.max_threads)
        _check_int("queue_size", self.queue_size, 0, _LIMITS.max_queue_size)
        _check_bool("enable_telemetry", self.enable_telemetry)
        _check_bool("enable_gpu", self.enable_gpu)
        _check_bool("enable_tracing", self.enable_tracing)
        _check_seconds("collect_interval", self.collect_interval)
        _check_seconds("latency_window", self.latency_window)
        _check_int("max_snapshots", self.max_snapshots, 1, _LIMITS.max_snapshots_limit)
        _check_executor(self.executor, self.executor_options)
        return self

    def _to_options(self) -> _core.RuntimeOptions:
        self.validate()
        options = _core.RuntimeOptions()
        options.num_threads = self.num_threads
        options.queue_size = self.queue_size
        options.enable_telemetry = self.enable_telemetry
        options.enable_gpu = self.enable_gpu
        options.collect_interval_s = float(self.collect_interval)
        options.latency_window_s = float(self.latency_window)
        options.max_snapshots = self.max_snapshots
        # enable_tracing is the facade's: Runtime wraps each task in a span of
        # its TracingSystem, so it is not passed on.
        # Where the system probe reads /proc; for tests and unusual containers.
        options.proc_root = os.environ.get("PYVEDA_PROC_ROOT", "/proc")
        return options

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Config({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)


class ConfigBuilder:
    """Collects settings; :meth:`build` checks them and returns a :class:`Config`."""

    __slots__ = ("_config",)

    def __init__(self) -> None:
        self._config = Config()

    def threads(self, n: int) -> "ConfigBuilder":
        """Worker threads (>= 1)."""
        self._config.num_threads = n
        return self

    def queue_size(self, n: int) -> "ConfigBuilder":
        """Most queued tasks (0 = unbounded); spawn blocks when the queue is full."""
        self._config.queue_size = n
        return self

    def telemetry(self, enabled: bool) -> "ConfigBuilder":
        self._config.enable_telemetry = enabled
        return self

    def gpu(self, enabled: bool) -> "ConfigBuilder":
        """GPU telemetry through NVML: ``runtime.gpu`` and GPU figures in snapshots."""
        self._config.enable_gpu = enabled
        return self

    def tracing(self, enabled: bool) -> "ConfigBuilder":
        self._config.enable_tracing = enabled
        return self

    def collect_interval(self, seconds: float) -> "ConfigBuilder":
        """Seconds between background telemetry collections (> 0)."""
        self._config.collect_interval = seconds
        return self

    def latency_window(self, seconds: float) -> "ConfigBuilder":
        """Seconds of recent tasks behind the snapshots' latency percentiles (> 0; default 60)."""
        self._config.latency_window = seconds
        return self

    def max_snapshots(self, n: int) -> "ConfigBuilder":
        """Collected snapshots kept in history (>= 1)."""
        self._config.max_snapshots = n
        return self

    def executor(self, kind: Any, **options: Any) -> "ConfigBuilder":
        """Where ``spawn`` runs tasks: ``"local"`` (the default), ``"dask"``
        (``address="tcp://host:8786"`` for a running scheduler, else a local
        cluster Dask starts) or a ``distributed.Client`` (the executor uses it)."""
        if type(kind).__name__ == "Client" and type(kind).__module__.startswith("distributed"):
            kind, options = "dask", {**options, "client": kind}
        self._config.executor = kind
        self._config.executor_options = dict(options)
        return self

    def build(self) -> Config:
        """Returns a validated copy; TypeError/ValueError name the invalid field."""
        config = Config()
        for name in Config.__slots__:
            setattr(config, name, getattr(self._config, name))
        return config.validate()
