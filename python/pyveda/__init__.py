"""PyVeda: an observable task runtime with a native (C++17) core.

Metrics, task telemetry and traces are recorded in the core and exported to
the tools operators already run: Prometheus, OpenTelemetry collectors, Jaeger.
"""

from pyveda._version import __version__
from pyveda import telemetry

__all__ = ["__version__", "telemetry"]
