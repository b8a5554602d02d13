"""Telemetry: custom metrics and their Prometheus exposition.

>>> from pyveda.telemetry import Counter
>>> requests_total = Counter('http_requests_total', 'Total HTTP requests')
>>> requests_total.inc()

Every public name below is importable from here. The submodules load on the
first use of one of their names (PEP 562), so ``import pyveda`` does not pay
for HTTP, TLS or the exporters until a program asks for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict

# public name -> the submodule that defines it
_EXPORTS: Dict[str, str] = {
    # metrics and runtime telemetry
    "CONTENT_TYPE_LATEST": "registry",
    "CONTENT_TYPE_PLAIN_0_0_4": "registry",
    "CONTENT_TYPE_PLAIN_1_0_0": "registry",
    "Collector": "registry",
    "RestrictedRegistry": "registry",
    "generate_latest": "registry",
    "ESCAPING_SCHEMES": "registry",
    "disable_legacy_validation": "registry",
    "enable_legacy_validation": "registry",
    "get_legacy_validation": "registry",
    "write_to_textfile": "registry",
    "CounterMetricFamily": "metrics_core",
    "Exemplar": "metrics_core",
    "GaugeHistogramMetricFamily": "metrics_core",
    "GaugeMetricFamily": "metrics_core",
    "HistogramMetricFamily": "metrics_core",
    "InfoMetricFamily": "metrics_core",
    "Metric": "metrics_core",
    "Sample": "metrics_core",
    "StateSetMetricFamily": "metrics_core",
    "SummaryMetricFamily": "metrics_core",
    "Timestamp": "metrics_core",
    "UnknownMetricFamily": "metrics_core",
    "UntypedMetricFamily": "metrics_core",
    "Enum": "states",
    "Info": "states",
    "GC_COLLECTOR": "collectors",
    "GCCollector": "collectors",
    "PLATFORM_COLLECTOR": "collectors",
    "PROCESS_COLLECTOR": "collectors",
    "PlatformCollector": "collectors",
    "ProcessCollector": "collectors",
    "CONTENT_TYPE_PROTOBUF": "registry",
    "REGISTRY": "registry",
    "CollectorRegistry": "registry",
    "Counter": "metrics",
    "Gauge": "metrics",
    "Histogram": "metrics",
    "Summary": "metrics",
    "generate_openmetrics": "registry",
    "generate_prometheus": "registry",
    "generate_protobuf": "registry",
    "disable_created_metrics": "registry",
    "enable_created_metrics": "registry",
    "ExportResult": "exporters",
    "OTLPExporter": "exporters",
    "create_exporter": "exporters",
    "GpuDevice": "gpu",
    "GpuMonitor": "gpu",
    "GpuSample": "gpu",
    "MetricsSnapshot": "system",
    "TelemetrySystem": "system",
    # tracing
    "Span": "tracing",
    "SpanContext": "tracing",
    "SpanKind": "tracing",
    "StatusCode": "tracing",
    "TracingSystem": "tracing",
    "BatchSettings": "batch",
    "BatchSpanProcessor": "batch",
    # serving: scrape endpoint, prometheus_client bridge, Pushgateway, alerts
    "Alert": "alerts",
    "AlertRule": "alerts",
    "MetricsServer": "http",
    "choose_encoder": "http",
    "start_http_server": "http",
    "CONTENT_TYPE_OPENMETRICS": "openmetrics",
    "to_openmetrics": "openmetrics",
    "register_prometheus_collector": "promclient",
    "delete_from_gateway": "push",
    "default_handler": "push",
    "basic_auth_handler": "push",
    "tls_auth_handler": "push",
    "passthrough_redirect_handler": "push",
    "instance_ip_grouping_key": "push",
    "make_wsgi_app": "wsgi",
    "start_wsgi_server": "wsgi",
    "MetricsHandler": "wsgi",
    "make_asgi_app": "asgi",
    "push_to_gateway": "push",
    "pushadd_to_gateway": "push",
    # operators' plumbing: a Prometheus file_sd target file
    "FileSDTarget": "file_sd",
    "read_targets": "file_sd",
}

__all__ = sorted([*_EXPORTS, "alerts"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name == "alerts":
            return importlib.import_module("pyveda.telemetry.alerts")
        raise AttributeError(f"module 'pyveda.telemetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pyveda.telemetry.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, eagerly
    from pyveda.telemetry import alerts
    from pyveda.telemetry.alerts import Alert, AlertRule
    from pyveda.telemetry.batch import BatchSettings, BatchSpanProcessor
    from pyveda.telemetry.exporters import ExportResult, OTLPExporter, create_exporter
    from pyveda.telemetry.file_sd import FileSDTarget, read_targets
    from pyveda.telemetry.gpu import GpuDevice, GpuMonitor, GpuSample
    from pyveda.telemetry.http import MetricsServer, choose_encoder, start_http_server
    from pyveda.telemetry.metrics import Counter, Gauge, Histogram, Summary
    from pyveda.telemetry.collectors import (
        GC_COLLECTOR,
        PLATFORM_COLLECTOR,
        PROCESS_COLLECTOR,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
    )
    from pyveda.telemetry.metrics_core import (
        CounterMetricFamily,
        Exemplar,
        GaugeHistogramMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        InfoMetricFamily,
        Metric,
        Sample,
        StateSetMetricFamily,
        SummaryMetricFamily,
        Timestamp,
        UnknownMetricFamily,
        UntypedMetricFamily,
    )
    from pyveda.telemetry.registry import (
        CONTENT_TYPE_LATEST,
        CONTENT_TYPE_PLAIN_0_0_4,
        CONTENT_TYPE_PLAIN_1_0_0,
        CONTENT_TYPE_PROTOBUF,
        REGISTRY,
        Collector,
        CollectorRegistry,
        RestrictedRegistry,
        ESCAPING_SCHEMES,
        disable_legacy_validation,
        enable_legacy_validation,
        generate_latest,
        get_legacy_validation,
        write_to_textfile,
        disable_created_metrics,
        enable_created_metrics,
        generate_openmetrics,
        generate_prometheus,
        generate_protobuf,
    )
    from pyveda.telemetry.openmetrics import CONTENT_TYPE_OPENMETRICS, to_openmetrics
    from pyveda.telemetry.promclient import register_prometheus_collector
    from pyveda.telemetry.asgi import make_asgi_app
    from pyveda.telemetry.push import (
        basic_auth_handler,
        default_handler,
        delete_from_gateway,
        instance_ip_grouping_key,
        passthrough_redirect_handler,
        push_to_gateway,
        pushadd_to_gateway,
        tls_auth_handler,
    )
    from pyveda.telemetry.wsgi import MetricsHandler, make_wsgi_app, start_wsgi_server
    from pyveda.telemetry.states import Enum, Info
    from pyveda.telemetry.system import MetricsSnapshot, TelemetrySystem
    from pyveda.telemetry.tracing import Span, SpanContext, SpanKind, StatusCode, TracingSystem
