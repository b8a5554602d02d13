"""Expose PyVeda's metrics through prometheus_client (optional integration).

>>> import prometheus_client
>>> from pyveda.telemetry import register_prometheus_collector
>>> collector = register_prometheus_collector()   # into prometheus_client.REGISTRY
>>> prometheus_client.start_http_server(8000)     # serves the app's metrics and PyVeda's
>>> prometheus_client.REGISTRY.unregister(collector)

On every ``collect()`` the collector reads the PyVeda registry's samples from
the core (the lines of its text exposition, unformatted) and hands them to the
app's registry as prometheus_client metric families, so values stay in the
C++ core and are read live. prometheus_client is imported only here, when this
function is called.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from pyveda.telemetry.registry import REGISTRY, CollectorRegistry

__all__ = ["PyVedaCollector", "register_prometheus_collector"]


def _prometheus_client() -> Any:
    try:
        import prometheus_client
        import prometheus_client.metrics_core
    except ImportError as error:
        raise ImportError(
            "register_prometheus_collector() needs the prometheus_client package: "
            "pip install prometheus-client (or pip install 'pyveda[test]')"
        ) from error
    return prometheus_client


class PyVedaCollector:
    """A prometheus_client custom collector yielding a PyVeda registry's families."""

    def __init__(self, registry: Optional[CollectorRegistry] = None) -> None:
        if registry is None:
            registry = REGISTRY
        elif not isinstance(registry, CollectorRegistry):
            raise TypeError(
                f"PyVedaCollector: registry must be a pyveda.telemetry.CollectorRegistry, got {type(registry).__name__}"
            )
        self._metric = _prometheus_client().metrics_core.Metric
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        """The registry's families now, as prometheus_client metric families.

        The metrics' families and the custom collectors' (Info, Enum and your
        own), but not the process, platform and GC collectors: the
        prometheus_client registry has its own.
        """
        from pyveda.telemetry.collectors import GCCollector, PlatformCollector, ProcessCollector

        collected = self.registry._collected(skip=(GCCollector, PlatformCollector, ProcessCollector))
        families = []
        for name, documentation, kind, samples in self.registry._core.collect_samples():
            family = self._metric(name, documentation, kind)
            for sample_name, labels, value in samples:
                family.add_sample(sample_name, labels, value)
            families.append(family)
        for metric in collected:
            family = self._metric(metric.name, metric.documentation, metric.type, metric.unit)
            for sample in metric.samples:
                family.add_sample(*sample[:5])
            families.append(family)
        return iter(families)

    def describe(self) -> Iterator[Any]:
        """The families at registration time: prometheus_client checks their names for clashes."""
        return self.collect()


def register_prometheus_collector(
    registry: Any = None, *, source: Optional[CollectorRegistry] = None
) -> PyVedaCollector:
    """Adds PyVeda's metrics (``source``, default the PyVeda REGISTRY) to a
    prometheus_client registry (default ``prometheus_client.REGISTRY``).

    Returns the collector; ``registry.unregister(collector)`` removes it.
    prometheus_client raises ValueError if a PyVeda name clashes with one it
    already exposes (names checked are those present at registration). Raises ImportError if prometheus_client is missing.
    """
    prometheus_client = _prometheus_client()
    if registry is None:
        registry = prometheus_client.REGISTRY
    elif not isinstance(registry, prometheus_client.CollectorRegistry):
        raise TypeError(
            "register_prometheus_collector: registry must be a prometheus_client.CollectorRegistry "
            f"(for a PyVeda registry pass source=), got {type(registry).__name__}"
        )
    collector = PyVedaCollector(source)
    registry.register(collector)
    return collector
