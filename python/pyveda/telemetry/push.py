"""Push the exposition to a Prometheus Pushgateway, for batch jobs (prometheus_client's functions).

>>> from pyveda.telemetry import CollectorRegistry, Gauge, push_to_gateway
>>> registry = CollectorRegistry()
>>> Gauge("job_last_success_unixtime", "Last success", registry=registry).set_to_current_time()
>>> push_to_gateway("localhost:9091", job="nightly_etl", registry=registry, grouping_key={"shard": 3})

``push_to_gateway`` PUTs (replaces every metric of the group),
``pushadd_to_gateway`` POSTs (replaces only the pushed names) and
``delete_from_gateway`` DELETEs the group at
``<gateway>/metrics/job/<job>{/<label>/<value>}``, the grouping key's
labels sorted by name, keys and values converted with ``str()``. As in
prometheus_client, a value that is empty (``<label>@base64/=``) or holds
``/`` or a space goes in the gateway's base64 form
(``<label>@base64/<urlsafe base64>``), any other is URL-encoded
(``quote_plus``); the job too. The body is text format 0.0.4, optionally
gzip- or snappy-compressed (``compression=``).

The request is made by ``handler(url=, method=, timeout=, headers=, data=)``,
which returns a function doing it: :func:`default_handler` (plain HTTP/HTTPS,
standard library only), :func:`basic_auth_handler`, :func:`tls_auth_handler`
and :func:`passthrough_redirect_handler`, or your own wrapping one of them.
A non-2xx answer raises ``urllib.error.HTTPError``, an unreachable gateway
``URLError`` (both OSError). The functions return what the handler's
function returns: the HTTP status with the handlers here (prometheus_client
returns None).
"""

from __future__ import annotations

import base64
import gzip
import socket
import ssl
import sys
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote_plus, urlsplit

from pyveda._checks import seconds
from pyveda.telemetry.registry import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, CollectorRegistry, RestrictedRegistry

__all__ = [
    "basic_auth_handler",
    "default_handler",
    "delete_from_gateway",
    "instance_ip_grouping_key",
    "passthrough_redirect_handler",
    "push_to_gateway",
    "pushadd_to_gateway",
    "tls_auth_handler",
]

Headers = List[Tuple[str, str]]
_COMPRESSIONS = "None, 'gzip' or 'snappy'"


# --- the URL ---------------------------------------------------------------------


def _escape(name: str, value: str) -> Tuple[str, str]:
    """A grouping-key pair as its two URL segments, as prometheus_client escapes them."""
    if value == "":
        return f"{name}@base64", "="  # the Pushgateway's form for an empty value
    if "/" in value or " " in value:
        return f"{name}@base64", base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii")
    return name, quote_plus(value)


def _url(gateway: str, job: str, grouping_key: Optional[Mapping[Any, Any]], owner: str = "push_to_gateway") -> str:
    """``<gateway>/metrics/job/<job>/<label>/<value>...`` (http:// added when the gateway has no http(s) scheme)."""
    if not isinstance(gateway, str) or not gateway:
        raise TypeError(f"{owner}: gateway must be a URL or host:port str such as 'localhost:9091', got {gateway!r}")
    if not isinstance(job, str):
        raise TypeError(f"{owner}: job must be a non-empty str, got {type(job).__name__} ({job!r})")
    if not job:
        raise ValueError(f"{owner}: job must be a non-empty str, got ''")
    scheme = urlsplit(gateway).scheme if "://" in gateway else ""
    if scheme and scheme not in ("http", "https"):
        raise ValueError(f"{owner}: the gateway URL must be http:// or https:// (or host:port), got {gateway!r}")
    if not scheme:
        gateway = f"http://{gateway}"
    if grouping_key is None:
        grouping_key = {}
    elif not isinstance(grouping_key, Mapping):
        raise TypeError(
            f"{owner}: grouping_key must be a dict of label name to value, got {type(grouping_key).__name__}"
        )
    pairs = []
    for key, value in grouping_key.items():
        name = str(key)
        if not name or "/" in name:
            raise ValueError(f"{owner}: a grouping_key label name must be non-empty and without '/', got {name!r}")
        pairs.append((name, str(value)))
    segments = [*_escape("job", job)]
    for name, value in sorted(pairs):
        segments.extend(_escape(name, value))
    return "/".join([gateway.rstrip("/"), "metrics", *segments])


# --- handlers ----------------------------------------------------------------------


def _opener_call(url: str, method: str, timeout: Optional[float], headers: Sequence[Tuple[str, Any]],
                 data: bytes, base_handler: Any) -> Callable[[], int]:
    def handle() -> int:
        import urllib.request

        request = urllib.request.Request(url, data=data, method=method)
        for key, value in headers:
            request.add_header(key, value)
        with urllib.request.build_opener(base_handler).open(request, timeout=timeout) as response:
            if response.status >= 400:  # the opener raises HTTPError first; a custom base handler might not
                raise OSError(f"error talking to the Pushgateway: {response.status} {response.reason}")
            return response.status

    return handle


def default_handler(url: str, method: str, timeout: Optional[float], headers: Headers,
                    data: bytes) -> Callable[[], int]:
    """The request as a function: plain urllib HTTP/HTTPS (redirects as urllib follows them). Returns the status.

    The handler every push uses unless told otherwise; other handlers call it.
    """
    import urllib.request

    return _opener_call(url, method, timeout, headers, data, urllib.request.HTTPHandler)


def _redirect_handler_class() -> type:
    import urllib.error
    import urllib.request

    class PassthroughRedirectHandler(urllib.request.HTTPRedirectHandler):
        """Repeats the request (method, headers, body) at the redirect's target, for every method."""

        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
            if code not in (301, 302, 303, 307, 308):
                raise urllib.error.HTTPError(req.full_url, code, msg, headers, fp)
            request = urllib.request.Request(
                newurl.replace(" ", "%20"), data=req.data, headers=dict(req.header_items()),
                origin_req_host=req.origin_req_host, unverifiable=True, method=req.get_method(),
            )
            for key in ("Content-length", "Host"):  # recomputed for the new request
                request.remove_header(key)
            return request

        http_error_308 = urllib.request.HTTPRedirectHandler.http_error_302  # Python < 3.11 knows no 308

    return PassthroughRedirectHandler


def passthrough_redirect_handler(url: str, method: str, timeout: Optional[float], headers: Headers,
                                 data: bytes) -> Callable[[], int]:
    """Like :func:`default_handler`, but a redirect (301, 302, 303, 307, 308) repeats the same method, headers and body.

    urllib alone refuses to redirect a PUT and turns a redirected POST into
    a GET without its body. Use it only towards redirects you trust: the
    metrics go wherever the answer points.
    """
    return _opener_call(url, method, timeout, headers, data, _redirect_handler_class())


def basic_auth_handler(url: str, method: str, timeout: Optional[float], headers: Headers, data: bytes,
                       username: Optional[str] = None, password: Optional[str] = None) -> Callable[[], int]:
    """:func:`default_handler` with ``Authorization: Basic ...`` when both username and password are given.

    Bind the credentials with a small handler of your own::

        def auth(url, method, timeout, headers, data):
            return basic_auth_handler(url, method, timeout, headers, data, "user", "secret")
        push_to_gateway("gw:9091", "job", registry, handler=auth)
    """
    for what, value in (("username", username), ("password", password)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"basic_auth_handler: {what} must be a str or None, got {type(value).__name__}")
    if username is not None and ":" in username:
        raise ValueError("basic_auth_handler: a basic-auth user name cannot contain ':'")

    def handle() -> int:
        sent = list(headers)
        if username is not None and password is not None:
            token = base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")
            sent.append(("Authorization", f"Basic {token}"))
        return default_handler(url, method, timeout, sent, data)()

    return handle


def tls_auth_handler(url: str, method: str, timeout: Optional[float], headers: Headers, data: bytes,
                     certfile: str, keyfile: str, cafile: Optional[str] = None,
                     protocol: int = ssl.PROTOCOL_TLS_CLIENT, insecure_skip_verify: bool = False) -> Callable[[], int]:
    """HTTPS with a client certificate (``certfile``/``keyfile``), for a gateway that asks for one.

    The gateway's certificate is checked against ``cafile`` (the system CAs
    by default) and its host name, as ``ssl.PROTOCOL_TLS_CLIENT`` does;
    ``insecure_skip_verify=True`` checks neither.
    """
    import urllib.request

    if not isinstance(insecure_skip_verify, bool):
        raise TypeError(f"tls_auth_handler: insecure_skip_verify must be True or False, got {insecure_skip_verify!r}")
    context = ssl.SSLContext(protocol)
    if cafile is not None:
        context.load_verify_locations(cafile)
    else:
        context.load_default_certs()
    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    return _opener_call(url, method, timeout, headers, data, urllib.request.HTTPSHandler(context=context))


# --- pushing -----------------------------------------------------------------------


def _payload(registry: Any, compression: Any, owner: str) -> Tuple[bytes, Headers]:
    if registry is None:
        registry = REGISTRY
    elif not isinstance(registry, (CollectorRegistry, RestrictedRegistry)):
        hint = ""
        if isinstance(registry, Mapping):
            hint = "; grouping_key is the 4th argument (pass it as grouping_key=)"
        raise TypeError(
            f"{owner}: registry (the 3rd argument, as in prometheus_client) must be a pyveda.telemetry."
            f"CollectorRegistry, its restricted_registry() or None for REGISTRY, got {type(registry).__name__}{hint}"
        )
    headers: Headers = [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)]
    data = registry.generate_prometheus().encode("utf-8")
    if compression is None:
        return data, headers
    if not isinstance(compression, str):
        raise TypeError(
            f"{owner}: compression must be {_COMPRESSIONS}, got {type(compression).__name__} ({compression!r})"
        )
    encoding = compression.lower()
    if encoding == "gzip":
        return gzip.compress(data), headers + [("Content-Encoding", "gzip")]
    if encoding == "snappy":
        try:
            import snappy  # type: ignore[import-not-found]
        except ImportError:
            raise RuntimeError(
                f"{owner}: snappy compression needs the python-snappy package (pip install python-snappy)"
            ) from None
        compressor = snappy.StreamCompressor()
        compressed = compressor.compress(data)
        flush = getattr(compressor, "flush", None)
        if callable(flush):
            compressed += flush()
        return compressed, headers + [("Content-Encoding", "snappy")]
    raise ValueError(f"Unsupported compression type: {compression!r} ({owner} takes {_COMPRESSIONS})")


def _use_gateway(owner: str, method: str, gateway: str, job: str, registry: Any, grouping_key: Any,
                 timeout: Any, handler: Any, compression: Any = None) -> Any:
    url = _url(gateway, job, grouping_key, owner)
    timeout = seconds(timeout, f"{owner}: timeout", allow_none=True, positive=True)
    if not callable(handler):
        raise TypeError(
            f"{owner}: handler must be a function like default_handler(url, method, timeout, headers, data) "
            f"returning the function that sends the request, got {type(handler).__name__}"
        )
    if method == "DELETE":
        data, headers = b"", [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)]
    else:
        data, headers = _payload(registry, compression, owner)
    send = handler(url=url, method=method, timeout=timeout, headers=headers, data=data)
    if not callable(send):
        raise TypeError(
            f"{owner}: the handler returned {type(send).__name__}, not a function that sends the request "
            "(a handler returns e.g. default_handler(url, method, timeout, headers, data))"
        )
    return send()


def push_to_gateway(gateway: str, job: str, registry: Optional[CollectorRegistry],
                    grouping_key: Optional[Mapping[Any, Any]] = None, timeout: Optional[float] = 30,
                    handler: Callable = default_handler, compression: Optional[str] = None) -> Any:
    """PUTs ``registry`` (None: :data:`REGISTRY`) to the job's group: it replaces every metric of the group.

    prometheus_client's signature: ``registry`` is the 3rd argument and
    required (a fresh registry per batch job, usually), ``grouping_key`` the
    4th. ``timeout`` in seconds (> 0, or None for none); ``compression``
    None, ``'gzip'`` or ``'snappy'`` (needs python-snappy). Returns what the
    handler's function returns (the HTTP status for the handlers here).
    """
    return _use_gateway("push_to_gateway", "PUT", gateway, job, registry, grouping_key, timeout, handler, compression)


def pushadd_to_gateway(gateway: str, job: str, registry: Optional[CollectorRegistry],
                       grouping_key: Optional[Mapping[Any, Any]] = None, timeout: Optional[float] = 30,
                       handler: Callable = default_handler, compression: Optional[str] = None) -> Any:
    """POSTs ``registry``: replaces only the metrics of the same names in the group (arguments as push_to_gateway)."""
    return _use_gateway("pushadd_to_gateway", "POST", gateway, job, registry, grouping_key, timeout, handler,
                        compression)


def delete_from_gateway(gateway: str, job: str, grouping_key: Optional[Mapping[Any, Any]] = None,
                        timeout: Optional[float] = 30, handler: Callable = default_handler) -> Any:
    """DELETEs the group: every metric pushed with this job and grouping key."""
    return _use_gateway("delete_from_gateway", "DELETE", gateway, job, None, grouping_key, timeout, handler)


def instance_ip_grouping_key() -> dict:
    """``{"instance": <this host's address>}``, found as prometheus_client finds it.

    The local address a UDP socket picks towards ``localhost`` (on macOS
    towards 10.255.255.255, since localhost does not work there); no packet
    is sent. On Linux this is usually ``127.0.0.1``.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        if sys.platform == "darwin":
            probe.connect(("10.255.255.255", 1))
        else:
            probe.connect(("localhost", 0))
        return {"instance": probe.getsockname()[0]}
