"""Telemetry: custom metrics and their Prometheus exposition.

>>> from pyveda.telemetry import Counter
>>> requests_total = Counter('http_requests_total', 'Total HTTP requests')
>>> requests_total.inc()
"""

from pyveda.telemetry.metrics import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_prometheus,
)
from pyveda.telemetry.gpu import GpuDevice, GpuMonitor, GpuSample
from pyveda.telemetry.system import MetricsSnapshot, TelemetrySystem

__all__ = [
    "CONTENT_TYPE_LATEST",
    "REGISTRY",
    "CollectorRegistry",
    "Counter",
    "Gauge",
    "GpuDevice",
    "GpuMonitor",
    "GpuSample",
    "Histogram",
    "MetricsSnapshot",
    "TelemetrySystem",
    "generate_prometheus",
]
