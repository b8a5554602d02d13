"""Threshold alerts evaluated on each collected snapshot.

>>> from pyveda.telemetry import alerts
>>> watch = alerts.watch(runtime.telemetry,
...                      rules=[alerts.failure_rate(0.05), alerts.p99_latency(100),
...                             *alerts.resource_exhaustion(cpu_percent=90, gpu_memory_mb=8000)],
...                      on_alert=lambda alert: print(alert.message))
>>> runtime.telemetry.start()        # rules run after every background collection
>>> ...
>>> watch.stop()

These are the guide's three alerting examples; ``data/alerts.yml`` holds the
same rules for Prometheus. A rule reads one value from a snapshot and fires
when it is above the threshold. By default ``on_alert`` is called when a rule
starts firing and again only after it has recovered (``repeat=True`` calls
it on every snapshot while firing). Rules whose value is None (no GPU, no
finished task yet) neither fire nor recover.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

from pyveda.telemetry.system import MetricsSnapshot, TelemetrySystem

__all__ = [
    "Alert",
    "AlertRule",
    "AlertWatch",
    "cpu_utilization",
    "evaluate",
    "failure_rate",
    "gpu_memory",
    "p99_latency",
    "resource_exhaustion",
    "watch",
]

_logger = logging.getLogger("pyveda")


@dataclass(frozen=True)
class Alert:
    """A rule that fired: which, why, the value read and the threshold it passed."""

    name: str
    message: str
    value: float
    threshold: float
    timestamp: float
    """The snapshot's Unix time, seconds."""


class AlertRule:
    """Fires when ``value(snapshot) > threshold``.

    ``value`` returns a float, or None when the figure is not available.
    ``message`` is a ``str.format`` template with ``{name}``, ``{value}`` and
    ``{threshold}``. Immutable, so one rule may serve several watches.
    """

    __slots__ = ("name", "value", "threshold", "message")

    def __init__(
        self,
        name: str,
        value: Callable[[MetricsSnapshot], Optional[float]],
        threshold: float,
        message: str = "{name}: {value:.4g} > {threshold:.4g}",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"AlertRule: name must be a non-empty str, got {name!r}")
        if not callable(value):
            raise TypeError(f"AlertRule: value must be a callable taking a snapshot, got {type(value).__name__}")
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or math.isnan(threshold):
            raise TypeError(f"AlertRule: threshold must be a number, got {threshold!r}")
        if not isinstance(message, str):
            raise TypeError(f"AlertRule: message must be a str template, got {type(message).__name__}")
        try:
            message.format(name=name, value=float(threshold), threshold=float(threshold))
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as error:
            raise ValueError(
                f"AlertRule {name!r}: message {message!r} is not a valid template "
                f"({type(error).__name__}: {error}); it may use {{name}}, {{value}} and {{threshold}}"
            ) from None
        self.name = name
        self.value = value
        self.threshold = float(threshold)
        self.message = message

    def evaluate(self, snapshot: MetricsSnapshot) -> Optional[Alert]:
        """The :class:`Alert` if the rule fires on ``snapshot``, else None."""
        return self._judge(snapshot, self.value(snapshot))

    def _judge(self, snapshot: MetricsSnapshot, value: Optional[float]) -> Optional[Alert]:
        if value is None:
            return None
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f"alert rule {self.name!r}: value() must return a number or None, got {value!r}")
        if not value > self.threshold:
            return None
        value = float(value)
        text = self.message.format(name=self.name, value=value, threshold=self.threshold)
        return Alert(self.name, text, value, self.threshold, snapshot.timestamp)

    def __repr__(self) -> str:
        return f"AlertRule({self.name!r}, threshold={self.threshold!r})"


def _failure_rate(snapshot: MetricsSnapshot) -> Optional[float]:
    executed = snapshot.tasks_executed
    return snapshot.tasks_failed / executed if executed > 0 else None


def failure_rate(threshold: float = 0.05) -> AlertRule:
    """Failed / executed tasks (since the runtime started) above ``threshold`` (a fraction)."""
    return AlertRule("HighFailureRate", _failure_rate, threshold, "High failure rate: {value:.1%} > {threshold:.1%}")


def _p99(snapshot: MetricsSnapshot) -> Optional[float]:
    return snapshot.p99_latency_ms if snapshot.tasks_executed > 0 else None


def p99_latency(threshold_ms: float = 100.0) -> AlertRule:
    """P99 task latency (spawn to completion) above ``threshold_ms``."""
    return AlertRule("HighP99Latency", _p99, threshold_ms, "High P99 latency: {value:.1f}ms > {threshold:.1f}ms")


def cpu_utilization(threshold_percent: float = 90.0) -> AlertRule:
    """Host CPU use over the collection window above ``threshold_percent``."""
    return AlertRule(
        "HighCpuUsage",
        lambda s: s.cpu_utilization_percent,
        threshold_percent,
        "High CPU usage: {value:.1f}% > {threshold:.1f}%",
    )


def gpu_memory(threshold_mb: float = 8000.0) -> AlertRule:
    """GPU memory used (MiB, summed over devices) above ``threshold_mb``; silent without GPU data."""
    return AlertRule(
        "HighGpuMemory",
        lambda s: s.gpu_memory_used_mb,
        threshold_mb,
        "High GPU memory: {value:.0f}MB > {threshold:.0f}MB",
    )


def resource_exhaustion(cpu_percent: float = 90.0, gpu_memory_mb: float = 8000.0) -> List[AlertRule]:
    """The guide's resource example: :func:`cpu_utilization` and :func:`gpu_memory`."""
    return [cpu_utilization(cpu_percent), gpu_memory(gpu_memory_mb)]


def evaluate(snapshot: MetricsSnapshot, rules: Iterable[AlertRule]) -> List[Alert]:
    """Every alert that ``rules`` raise on one snapshot (stateless)."""
    return [alert for alert in (rule.evaluate(snapshot) for rule in rules) if alert is not None]


class AlertWatch:
    """Rules attached to a TelemetrySystem (from :func:`watch`); ``stop()`` detaches them.

    The rules run on the collector thread. ``firing`` is the set of rule
    names currently above their threshold. A rule whose ``value()`` raises
    (or returns something other than a number or None) is skipped for that
    snapshot, keeps its previous state, and is logged on the ``pyveda``
    logger; the other rules still run. ``errors`` maps each such rule's
    name to its latest error until it evaluates cleanly again. A context
    manager.
    """

    def __init__(
        self,
        telemetry: TelemetrySystem,
        rules: List[AlertRule],
        on_alert: Callable[[Alert], Any],
        repeat: bool,
    ) -> None:
        self._telemetry = telemetry
        self._rules = rules
        self._on_alert = on_alert
        self._repeat = repeat
        self._lock = threading.Lock()
        self._firing: Set[str] = set()
        self._errors: Dict[str, str] = {}
        self._id: Optional[int] = telemetry.add_callback(self.check)

    @property
    def firing(self) -> Set[str]:
        with self._lock:
            return set(self._firing)

    @property
    def errors(self) -> Dict[str, str]:
        """Rule name -> the error its latest evaluation raised (rules that failed only)."""
        with self._lock:
            return dict(self._errors)

    def check(self, snapshot: MetricsSnapshot) -> List[Alert]:
        """Evaluates the rules on ``snapshot``, calls ``on_alert`` as configured; returns the alerts."""
        raised = []
        for rule in self._rules:
            try:
                value = rule.value(snapshot)
                alert = rule._judge(snapshot, value)
            except Exception as error:  # noqa: BLE001 - one broken rule must not stop the others
                with self._lock:
                    self._errors[rule.name] = f"{type(error).__name__}: {error}"
                _logger.exception("pyveda alert rule %s failed; the other rules still run", rule.name)
                continue
            with self._lock:
                self._errors.pop(rule.name, None)
            if value is None:
                continue  # unknown: keep the previous state
            with self._lock:
                if alert is None:
                    self._firing.discard(rule.name)
                    continue
                new = rule.name not in self._firing
                self._firing.add(rule.name)
            raised.append(alert)
            if new or self._repeat:
                try:
                    self._on_alert(alert)
                except Exception:  # noqa: BLE001 - one bad handler must not stop the other rules
                    _logger.exception("pyveda alert handler failed for %s", alert.name)
        return raised

    def stop(self) -> None:
        """Detaches from the TelemetrySystem (idempotent)."""
        with self._lock:
            callback_id, self._id = self._id, None
        if callback_id is not None:
            self._telemetry.remove_callback(callback_id)

    def __enter__(self) -> "AlertWatch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def watch(
    telemetry: TelemetrySystem,
    rules: Iterable[AlertRule],
    on_alert: Callable[[Alert], Any],
    *,
    repeat: bool = False,
) -> AlertWatch:
    """Evaluates ``rules`` after each background collection of ``telemetry``.

    Collection must be running (``telemetry.start()``); call
    ``AlertWatch.check(telemetry.snapshot())`` to evaluate by hand.
    """
    if not isinstance(telemetry, TelemetrySystem):
        raise TypeError(
            f"watch() needs a TelemetrySystem (runtime.telemetry; None when telemetry is off), "
            f"got {type(telemetry).__name__}"
        )
    rules = list(rules)
    for rule in rules:
        if not isinstance(rule, AlertRule):
            raise TypeError(f"watch(): rules must be AlertRule objects, got {type(rule).__name__}")
    if not callable(on_alert):
        raise TypeError(f"watch(): on_alert must be callable, got {type(on_alert).__name__}")
    return AlertWatch(telemetry, rules, on_alert, repeat)
