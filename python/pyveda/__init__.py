"""PyVeda: an observable task runtime with a native (C++17) core.

Tasks run on a work-stealing scheduler written in C++; metrics, task
telemetry and traces are recorded in the core and exported to the tools
operators already run (Prometheus, OpenTelemetry collectors, Jaeger).

>>> import pyveda as veda
>>> veda.init(veda.Config.builder().telemetry(True).build())
>>> veda.spawn(pow, 2, 10).result()
1024
"""

from pyveda._version import __version__
from pyveda import telemetry
from pyveda.telemetry import multiprocess as _multiprocess

# Before any metric exists: PYVEDA_MULTIPROC_DIR / PROMETHEUS_MULTIPROC_DIR turn multi-process mode on.
_multiprocess._enable_from_environment()
del _multiprocess
from pyveda.config import Config, ConfigBuilder
from pyveda.runtime import (
    Future,
    QueueFullError,
    Runtime,
    Scope,
    get_runtime,
    init,
    scope,
    shutdown,
    spawn,
)

__all__ = [
    "Config",
    "ConfigBuilder",
    "Future",
    "QueueFullError",
    "Runtime",
    "Scope",
    "__version__",
    "get_runtime",
    "init",
    "scope",
    "shutdown",
    "spawn",
    "telemetry",
]
