"""PyVeda tasks on a Dask cluster, and PyVeda telemetry on its workers.

>>> import pyveda as veda
>>> from pyveda.dask import PyVedaPlugin
>>> from distributed import Client, LocalCluster                     # doctest: +SKIP
>>> client = Client(LocalCluster(n_workers=2))                         # doctest: +SKIP
>>> client.register_plugin(PyVedaPlugin(metrics_port=0))               # doctest: +SKIP
>>> veda.init(veda.Config.builder().executor(client).telemetry(True).build())  # doctest: +SKIP
>>> veda.spawn(pow, 2, 10).result()                                    # doctest: +SKIP
1024

**The executor.** With ``Config.executor == "dask"`` (``.executor("dask",
address=...)``, or ``.executor(client)`` with a ``distributed.Client``),
``spawn(fn, *args, **kwargs)`` submits ``fn`` to the cluster
(``client.submit(..., pure=False)``: every spawn is its own task) and
returns a :class:`DaskFuture`, a ``concurrent.futures.Future``: ``result``,
``exception``, ``cancel``, ``add_done_callback``,
``concurrent.futures.wait``/``as_completed`` and ``asyncio.wrap_future``
work on it as on a local task's future. The spawner's current span goes
with the task (as a W3C ``traceparent``), so on a worker with the plugin
the task's span is its child, across machines. The client's runtime
telemetry counts what it spawned: a remote task is pending until its
result is back, then executed (failed when it raised), with its latency
from submit to result. A task Dask gives up on (its workers died too often:
``distributed.KilledWorker``) fails with that error; none is lost from the
counts.

**The plugin.** :class:`PyVedaPlugin` (a ``distributed.WorkerPlugin``)
makes each worker run its tasks through a PyVeda runtime of its own, with
telemetry on, so each task is counted and timed in the worker's runtime
metrics; gives each task a span (the spawner's child) in the worker's
tracing system, exported over OTLP when ``otlp_endpoint`` is given; and, with
``metrics_port``, serves the worker's ``/metrics`` (its identity is the
``dask_worker`` of ``target_info`` and of the file_sd entry when
``file_sd`` names a Prometheus file_sd file). ``worker_endpoints(client)``
lists where each worker serves.

Needs ``distributed`` (the ``dask`` extra), imported when used.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
import uuid
from typing import Any, Callable, Dict, Optional, Set, Tuple

from pyveda._checks import seconds

__all__ = ["DaskExecutor", "DaskFuture", "PyVedaPlugin", "worker_endpoints"]


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as e:
        raise ImportError("the Dask executor needs distributed: pip install 'pyveda[dask]'") from e
    return distributed


# -- the client side ------------------------------------------------------------------------------


class DaskFuture(concurrent.futures.Future):
    """A ``concurrent.futures.Future`` for a task running on a Dask cluster.

    It completes when the Dask future does (on the Dask client's callback
    thread). ``cancel()`` cancels the Dask task too and returns True unless
    the task has already finished. ``dask_future`` is the Dask future.
    """

    def __init__(self, dask_future: Any) -> None:
        super().__init__()
        self.dask_future = dask_future

    def cancel(self) -> bool:
        if self.done():
            return self.cancelled()
        self.dask_future.cancel()
        return super().cancel()


def _traceparent() -> Optional[str]:
    """The current PyVeda span (the OpenTelemetry API's too, with pyveda.otel) as a traceparent."""
    from pyveda import _core
    from pyveda.telemetry.propagation import format_traceparent

    span = _core.current_span.get()
    return None if span is None else format_traceparent(span.trace_id, span.span_id, span.flags)


def _task_name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return str(name).replace("<", "").replace(">", "")


class DaskExecutor:
    """Submits a runtime's spawned tasks to Dask; see the module docs.

    ``client``: a ``distributed.Client`` to use (left open at shutdown), else
    one made for ``address`` (a running scheduler) or, with neither, for a
    local cluster Dask starts; those the executor made it closes at shutdown.
    """

    def __init__(self, telemetry: Any = None, *, address: Optional[str] = None, client: Any = None) -> None:
        distributed = _distributed()
        if client is not None and not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
        self._owns_client = client is None
        self.client = client if client is not None else distributed.Client(address)
        self._telemetry = telemetry._core if telemetry is not None else None
        self._lock = threading.Lock()
        self._in_flight: Set[DaskFuture] = set()
        self._closed = False

    def submit(self, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> DaskFuture:
        if self._closed:
            raise RuntimeError("cannot spawn: the runtime has been shut down")
        name = _task_name(fn)
        telemetry = self._telemetry
        dask_future = self.client.submit(_run_remote, fn, args, kwargs, _traceparent(), name, pure=False,
                                         key=f"{name}-{uuid.uuid4().hex}")
        if telemetry is not None:
            telemetry._remote_submit()
        future = DaskFuture(dask_future)
        started = time.monotonic_ns()
        with self._lock:
            self._in_flight.add(future)

        def finished(done: Any) -> None:
            with self._lock:
                self._in_flight.discard(future)
            status = done.status
            if status == "cancelled" or future.cancelled():
                if telemetry is not None:
                    telemetry._remote_cancelled()
                future.cancel()
                return
            try:
                value, error = done.result(), None
            except BaseException as e:  # the task's own exception, or Dask's (KilledWorker, ...)
                value, error = None, e
            if telemetry is not None:
                telemetry._remote_end(time.monotonic_ns() - started, error is None)
            if not future.set_running_or_notify_cancel():
                return
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)

        dask_future.add_done_callback(finished)
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Stops taking tasks; ``wait``: until the tasks in flight are done. Closes a client it made."""
        self._closed = True
        with self._lock:
            pending = list(self._in_flight)
        if wait and pending:
            concurrent.futures.wait(pending)
        if self._owns_client:
            self.client.close()


# -- the worker side ------------------------------------------------------------------------------

_WORKER: Dict[str, Any] = {}  # this worker process's PyVeda state, set by PyVedaPlugin.setup


def _run_remote(fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any], traceparent: Optional[str],
                name: str) -> Any:
    """A spawned task on a worker: through the plugin's runtime and in a span when the plugin is there."""
    state = _WORKER.get("state")
    if state is None:
        return fn(*args, **kwargs)
    return state.run(fn, args, kwargs, traceparent, name)


class _WorkerState:
    """What the plugin installs in one worker process: runtime, tracing, endpoint, exporter."""

    def __init__(self, worker: Any, plugin: "PyVedaPlugin") -> None:
        import pyveda as veda
        from pyveda.telemetry import REGISTRY, TracingSystem

        name = getattr(worker, "name", None)  # LocalCluster names its workers 0, 1, ...
        self.identity = str(worker.address if name is None or name == "" else name)
        threads = max(1, int(getattr(getattr(worker, "state", worker), "nthreads", 1) or 1))
        self.runtime = veda.Runtime(veda.Config(num_threads=threads, enable_telemetry=True))
        resource = {"dask.worker": self.identity}
        self.tracing = TracingSystem(service_name=plugin.service_name, resource_attributes=resource)
        REGISTRY.set_target_info({"dask_worker": self.identity})
        self.server = None
        self.endpoint: Optional[str] = None
        if plugin.metrics_port is not None:
            from pyveda.telemetry.http import start_http_server

            self.server = start_http_server(plugin.metrics_port, plugin.metrics_addr)
            host = f"[{plugin.metrics_addr}]" if ":" in plugin.metrics_addr else plugin.metrics_addr  # IPv6
            self.endpoint = f"{host}:{self.server.port}"
        self.file_sd = None
        if plugin.file_sd is not None and self.endpoint is not None:
            from pyveda.telemetry.file_sd import FileSDTarget

            self.file_sd = FileSDTarget(plugin.file_sd, self.endpoint, {"dask_worker": self.identity})
        self.exporter = None
        if plugin.otlp_endpoint is not None:
            from pyveda.telemetry import create_exporter

            self.exporter = create_exporter("otlp", endpoint=plugin.otlp_endpoint,
                                            resource_attributes=resource)
            self.exporter.start(plugin.export_interval, self.tracing)

    def run(self, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any], traceparent: Optional[str],
            name: str) -> Any:
        context = self.tracing.extract({"traceparent": traceparent}) if traceparent else None
        with self.tracing.span(name, context=context, attributes={"dask.worker": self.identity}):
            # Through the runtime: counted and timed in its telemetry; the task runs in this span's context.
            return self.runtime.spawn(fn, *args, **kwargs).result()

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.shutdown(5.0)
        if self.file_sd is not None:
            self.file_sd.close()
        if self.server is not None:
            self.server.shutdown()
        self.runtime.shutdown(wait=True)


def _plugin_base() -> type:
    try:
        from distributed import WorkerPlugin
    except ImportError:
        return object
    return WorkerPlugin


class PyVedaPlugin(_plugin_base()):  # type: ignore[misc]
    """A ``distributed.WorkerPlugin`` installing PyVeda telemetry on every worker; see the module docs.

    ``metrics_port``: serve ``/metrics`` on this port of ``metrics_addr``
    (0: a free one; None: no endpoint). ``file_sd``: a Prometheus file_sd
    file the worker adds its endpoint to (and removes it from at teardown).
    ``otlp_endpoint``: send the workers' spans there (OTLP/HTTP) every
    ``export_interval`` seconds, each span once, and at teardown.
    ``service_name``: the spans' ``service.name``.
    """

    name = "pyveda"

    def __init__(self, metrics_port: Optional[int] = None, *, metrics_addr: str = "127.0.0.1",
                 file_sd: Optional[str] = None, otlp_endpoint: Optional[str] = None, export_interval: float = 1.0,
                 service_name: Optional[str] = None) -> None:
        if metrics_port is not None and (isinstance(metrics_port, bool) or not isinstance(metrics_port, int)
                                         or not 0 <= metrics_port <= 65535):
            raise ValueError(f"PyVedaPlugin: metrics_port must be an int in [0, 65535] or None, got {metrics_port!r}")
        if file_sd is not None and metrics_port is None:
            raise ValueError("PyVedaPlugin: file_sd lists the workers' /metrics endpoints, so it needs metrics_port")
        self.metrics_port = metrics_port
        self.metrics_addr = metrics_addr
        self.file_sd = None if file_sd is None else os.fspath(file_sd)
        self.otlp_endpoint = otlp_endpoint
        self.export_interval = seconds(export_interval, "PyVedaPlugin: export_interval", positive=True)
        self.service_name = service_name

    def setup(self, worker: Any) -> None:
        old = _WORKER.pop("state", None)
        if old is not None:
            old.close()
        _WORKER["state"] = _WorkerState(worker, self)

    def teardown(self, worker: Any) -> None:
        state = _WORKER.pop("state", None)
        if state is not None:
            state.close()


def _endpoint() -> Optional[str]:
    state = _WORKER.get("state")
    return None if state is None else state.endpoint


def worker_endpoints(client: Any) -> Dict[str, Optional[str]]:
    """``{worker address: "host:port"}`` of each worker's ``/metrics`` (None without the plugin or a port)."""
    return client.run(_endpoint)
