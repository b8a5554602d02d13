"""Push the exposition to a Prometheus Pushgateway, for batch jobs.

>>> from pyveda.telemetry import push_to_gateway
>>> push_to_gateway("localhost:9091", job="nightly_etl", grouping_key={"shard": "3"})

``push_to_gateway`` PUTs (replaces every metric of the group),
``pushadd_to_gateway`` POSTs (replaces only the pushed names) and
``delete_from_gateway`` DELETEs the group at
``<gateway>/metrics/job/<job>{/<label>/<value>}``. Values are URL-encoded;
one containing ``/`` (or empty) uses the gateway's base64 form
(``<label>@base64/<urlsafe base64>``). Standard library HTTP only; a non-2xx
answer raises ``urllib.error.HTTPError``, an unreachable gateway ``URLError``
(both OSError).
"""

from __future__ import annotations

import base64
from typing import Dict, Mapping, Optional
from urllib.parse import quote

from pyveda.telemetry.registry import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, CollectorRegistry

__all__ = ["delete_from_gateway", "push_to_gateway", "pushadd_to_gateway"]


def _segment(name: str, value: str) -> str:
    if value == "" or "/" in value:
        encoded = base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii") or "="
        return f"{name}@base64/{encoded}"
    return f"{name}/{quote(value, safe='')}"


def _url(gateway: str, job: str, grouping_key: Optional[Mapping[str, str]]) -> str:
    if not isinstance(gateway, str) or not gateway:
        raise TypeError(f"gateway must be a URL or host:port str, got {gateway!r}")
    if not isinstance(job, str) or not job:
        raise ValueError(f"job must be a non-empty str, got {job!r}")
    if "://" not in gateway:
        gateway = "http://" + gateway
    parts = [gateway.rstrip("/"), "metrics", _segment("job", job)]
    for name, value in (grouping_key or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"grouping_key must map str to str, got {name!r}: {value!r}")
        parts.append(_segment(name, value))
    return "/".join(parts)


def _send(method: str, gateway: str, job: str, grouping_key: Optional[Mapping[str, str]],
          body: Optional[bytes], timeout: Optional[float]) -> int:
    import urllib.request

    request = urllib.request.Request(_url(gateway, job, grouping_key), data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # raises HTTPError for >= 400
        return response.status


def _body(registry: Optional[CollectorRegistry]) -> bytes:
    if registry is None:
        registry = REGISTRY
    elif not isinstance(registry, CollectorRegistry):
        raise TypeError(f"registry must be a pyveda.telemetry.CollectorRegistry, got {type(registry).__name__}")
    return registry.generate_prometheus().encode("utf-8")


def push_to_gateway(gateway: str, job: str, grouping_key: Optional[Dict[str, str]] = None,
                    registry: Optional[CollectorRegistry] = None, timeout: Optional[float] = 10) -> int:
    """PUTs ``registry`` (default REGISTRY) to the group: it replaces the group's metrics. Returns the status."""
    return _send("PUT", gateway, job, grouping_key, _body(registry), timeout)


def pushadd_to_gateway(gateway: str, job: str, grouping_key: Optional[Dict[str, str]] = None,
                       registry: Optional[CollectorRegistry] = None, timeout: Optional[float] = 10) -> int:
    """POSTs ``registry``: replaces only the metrics of the same names in the group."""
    return _send("POST", gateway, job, grouping_key, _body(registry), timeout)


def delete_from_gateway(gateway: str, job: str, grouping_key: Optional[Dict[str, str]] = None,
                        timeout: Optional[float] = 10) -> int:
    """Deletes the group (every metric pushed with this job and grouping key)."""
    return _send("DELETE", gateway, job, grouping_key, None, timeout)
