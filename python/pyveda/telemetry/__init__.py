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
    generate_openmetrics,
    generate_prometheus,
)
from pyveda.telemetry.exporters import ExportResult, OTLPExporter, create_exporter
from pyveda.telemetry.gpu import GpuDevice, GpuMonitor, GpuSample
from pyveda.telemetry.system import MetricsSnapshot, TelemetrySystem
from pyveda.telemetry.tracing import Span, SpanContext, SpanKind, StatusCode, TracingSystem
# Serving: scrape endpoint, prometheus_client bridge, Pushgateway, alerts.
from pyveda.telemetry import alerts
from pyveda.telemetry.alerts import Alert, AlertRule
from pyveda.telemetry.http import MetricsServer, start_http_server
from pyveda.telemetry.openmetrics import CONTENT_TYPE_OPENMETRICS, to_openmetrics
from pyveda.telemetry.promclient import register_prometheus_collector
from pyveda.telemetry.push import delete_from_gateway, push_to_gateway, pushadd_to_gateway

__all__ = [
    # serving
    "Alert",
    "AlertRule",
    "CONTENT_TYPE_OPENMETRICS",
    "MetricsServer",
    "alerts",
    "delete_from_gateway",
    "push_to_gateway",
    "pushadd_to_gateway",
    "register_prometheus_collector",
    "start_http_server",
    "to_openmetrics",
    # metrics and runtime telemetry
    "CONTENT_TYPE_LATEST",
    "REGISTRY",
    "CollectorRegistry",
    "Counter",
    "ExportResult",
    "Gauge",
    "GpuDevice",
    "GpuMonitor",
    "GpuSample",
    "Histogram",
    "MetricsSnapshot",
    "OTLPExporter",
    "TelemetrySystem",
    # tracing
    "Span",
    "SpanContext",
    "SpanKind",
    "StatusCode",
    "TracingSystem",
    "create_exporter",
    "generate_openmetrics",
    "generate_prometheus",
]
