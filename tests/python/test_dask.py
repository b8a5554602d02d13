"""PyVeda on Dask: the executor and PyVedaPlugin on a real distributed.LocalCluster.

Two worker processes on 127.0.0.1 with the plugin: spawned tasks give exact
counts on the client, on the workers' /metrics and in Debian's Prometheus
scraping them; every remote span is the child of the spawning span and
reaches a real OTLP receiver (oteltap) in the client's trace; the futures
behave as concurrent.futures ones; a worker killed mid-run loses no count.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import sys
import threading
import time

import pytest

distributed = pytest.importorskip("distributed", reason="distributed not installed: pip install -e .[test]")

import pyveda as veda  # noqa: E402
from pyveda.dask import DaskFuture, PyVedaPlugin, worker_endpoints  # noqa: E402
from pyveda.telemetry.file_sd import read_targets  # noqa: E402

from servers import fetch, free_port, query, start_prometheus, stop_server, values, wait_until  # noqa: E402


class SpanTap:
    """oteltap's OTLP/HTTP receiver on a loop of its own thread, keeping every span it gets."""

    def __init__(self) -> None:
        oteltap = pytest.importorskip("oteltap", reason="oteltap not installed: pip install -e .[test]")
        self.port = free_port()
        self.spans = []
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        settings = oteltap.OtelTapHttpProtobufReceiverSettings(http_port=self.port)

        async def serve():
            async with oteltap.OtelTapHttpProtobufReceiver(settings) as receiver:
                self._ready.set()
                async for span in receiver.stream_traces():
                    self.spans.append(span)

        self._task = None

        def run():
            asyncio.set_event_loop(self._loop)
            self._task = self._loop.create_task(serve())
            try:
                self._loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                pass

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert self._ready.wait(15), "oteltap did not start"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(15)


@pytest.fixture(scope="module")
def tap():
    receiver = SpanTap()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    """The Prometheus file_sd file the workers keep up to date."""
    return tmp_path_factory.mktemp("file_sd") / "targets.json"


@pytest.fixture(scope="module")
def cluster(tap, targets):
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=2, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=50)
    client = distributed.Client(cluster)
    client.register_plugin(PyVedaPlugin(metrics_port=0, file_sd=targets, otlp_endpoint=tap.endpoint,
                                        export_interval=0.2, service_name="dask-workers"))
    yield cluster, client
    client.close()
    cluster.close(timeout=30)


@pytest.fixture
def runtime(cluster):
    _, client = cluster
    rt = veda.Runtime(veda.Config.builder().executor(client).telemetry(True).tracing(True).build())
    yield rt
    rt.shutdown()


def task(i):
    if i % 10 == 0:
        raise ValueError(f"task {i} fails")
    return i * i


def metric(endpoint, name):
    _, _, body = fetch(f"http://{endpoint}/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_thousand_tasks_count_exactly_everywhere_and_trace_across_processes(cluster, runtime, tap, targets,
                                                                            tmp_path):
    _, client = cluster
    endpoints = worker_endpoints(client)
    assert len(endpoints) == 2 and all(endpoints.values())
    listed = {tuple(group["targets"]): group["labels"].get("dask_worker") for group in read_targets(targets)}
    names = client.run(lambda dask_worker: str(dask_worker.name))
    assert listed == {(endpoints[w],): names[w] for w in endpoints}  # each worker registered itself
    before = {w: metric(e, "pyveda_tasks_executed_total") for w, e in endpoints.items()}
    with runtime.tracing.span("batch") as batch:
        futures = [runtime.spawn(task, i) for i in range(1000)]
    done, not_done = concurrent.futures.wait(futures, timeout=300)
    assert not not_done
    for i, f in enumerate(futures):
        assert isinstance(f, DaskFuture)
        if i % 10 == 0:
            assert isinstance(f.exception(), ValueError) and str(f.exception()) == f"task {i} fails"
        else:
            assert f.result() == i * i

    snapshot = runtime.telemetry.snapshot()  # the client's view of what it spawned
    assert (snapshot.tasks_executed, snapshot.tasks_failed, snapshot.tasks_pending) == (1000, 100, 0)
    assert snapshot.latency_count == 1000

    executed = {w: metric(e, "pyveda_tasks_executed_total") - before[w] for w, e in endpoints.items()}
    assert sum(executed.values()) == 1000, executed  # each worker's own runtime counted its share
    assert all(n > 0 for n in executed.values()), executed

    # Prometheus finds the workers through the file they keep (file_sd), as an operator's would.
    discovery = ["file_sd_configs:", f"  - files: ['{targets}']", "    refresh_interval: 1s"]
    process, log, url = start_prometheus(tmp_path, {"dask": (None, discovery)})
    try:
        wait_until(lambda: values(url, "sum(pyveda_tasks_executed_total)") == [sum(before.values()) + 1000], 60,
                   "Prometheus to sum the workers' executed tasks")
        assert values(url, "count(up == 1)") == [2]
        by_worker = query(url, "sum by (dask_worker) (pyveda_tasks_executed_total)")
        assert sorted(r["metric"]["dask_worker"] for r in by_worker) == sorted(names.values())
    finally:
        stop_server(process, log)

    runtime.tracing.span("flush").end()
    from pyveda.telemetry import create_exporter

    assert create_exporter("otlp", endpoint=tap.endpoint).send([batch])  # the client's span, same receiver
    wait_until(lambda: sum(1 for s in tap.spans if s.trace_id.hex() == batch.trace_id) >= 1001, 60,
               "every remote span and the client's at oteltap")
    trace = [s for s in tap.spans if s.trace_id.hex() == batch.trace_id]
    remote = [s for s in trace if s.name == "task"]
    assert len(remote) == 1000 and len({s.span_id for s in remote}) == 1000
    assert {s.parent_span_id.hex() for s in remote} == {batch.span_id}
    assert sum(1 for s in remote if s.status.code == 2) == 100  # the failed ones are errors
    assert [s.name for s in trace if s.span_id.hex() == batch.span_id] == ["batch"]

    # A collector tells the sources apart: each worker's resource names its host, process and instance.
    def worker_resource():
        from pyveda.dask import _WORKER  # the worker's own, not a copy of the client's

        return dict(_WORKER["state"].exporter.resource)

    resources = client.run(worker_resource)
    client_resource = runtime.tracing.resource_attributes()
    ids = {r["service.instance.id"] for r in resources.values()} | {client_resource["service.instance.id"]}
    pids = {r["process.pid"] for r in resources.values()} | {client_resource["process.pid"]}
    assert len(ids) == len(pids) == 3
    assert {r["dask.worker"] for r in resources.values()} == set(names.values())
    assert all(r["host.name"] == client_resource["host.name"] for r in resources.values())


def test_the_futures_are_concurrent_futures(cluster, runtime):
    _, client = cluster
    calls = []
    first = runtime.spawn(task, 3)
    first.add_done_callback(lambda f: calls.append(f.result()))
    assert first.result(timeout=60) == 9
    wait_until(lambda: calls == [9], 10, "the done callback")
    futures = [runtime.spawn(task, i) for i in (1, 2, 4)]
    assert sorted(f.result() for f in concurrent.futures.as_completed(futures, timeout=60)) == [1, 4, 16]

    async def awaited():
        return await asyncio.wrap_future(runtime.spawn(task, 5))

    assert asyncio.run(awaited()) == 25

    blockers = [runtime.spawn(time.sleep, 2) for _ in range(4)]  # every worker thread busy
    queued = runtime.spawn(task, 7)
    assert queued.cancel() and queued.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        queued.result()
    concurrent.futures.wait(blockers, timeout=60)
    wait_until(lambda: runtime.telemetry.snapshot().tasks_pending == 0, 30, "the cancelled task to leave pending")
    snapshot = runtime.telemetry.snapshot()
    assert snapshot.tasks_executed == 1 + 3 + 1 + 4  # the cancelled one never ran


def test_the_executor_from_an_address(cluster):
    local_cluster, _ = cluster
    rt = veda.Runtime(veda.Config.builder().executor("dask", address=local_cluster.scheduler_address).build())
    try:
        assert rt.spawn(task, 6).result(timeout=60) == 36
        with rt.scope() as scope:
            for i in (1, 2):
                scope.spawn(task, i)
        assert [f.result() for f in scope.futures] == [1, 4]
    finally:
        rt.shutdown()
    with pytest.raises(RuntimeError, match="the runtime has been shut down"):
        rt.spawn(task, 1)


def slow(i):
    time.sleep(0.3)
    return i


def test_a_worker_killed_mid_run_loses_no_count(cluster, runtime):
    _, client = cluster
    futures = [runtime.spawn(slow, i) for i in range(24)]
    time.sleep(0.5)  # some tasks running on each worker
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    done, not_done = concurrent.futures.wait(futures, timeout=240)
    assert not not_done
    results = [f.result() for f in futures if f.exception() is None]
    errors = [f.exception() for f in futures if f.exception() is not None]
    assert all(isinstance(e, distributed.KilledWorker) for e in errors), errors  # Dask gave up: a clear error
    assert sorted(results) == [i for i, f in enumerate(futures) if f.exception() is None]  # the rest reran
    snapshot = runtime.telemetry.snapshot()
    assert snapshot.tasks_executed == 24 and snapshot.tasks_failed == len(errors) and snapshot.tasks_pending == 0
    client.wait_for_workers(2, timeout=120)  # the nanny restarts the killed one, with the plugin


def test_bad_executor_settings_say_what_is_allowed(monkeypatch):
    with pytest.raises(ValueError, match=r"Config.executor must be 'local' or 'dask', got 'ray'"):
        veda.Config.builder().executor("ray").build()
    with pytest.raises(ValueError, match=r"\['port'\] are not options of the 'dask' executor \(allowed: address, "
                                         r"client\)"):
        veda.Config.builder().executor("dask", port=1).build()
    with pytest.raises(ValueError, match=r"\['address'\] are not options of the 'local' executor \(it takes none\)"):
        veda.Config.builder().executor("local", address="x").build()
    with pytest.raises(ValueError, match="an address or a client, not both"):
        veda.Config(executor="dask", executor_options={"address": "tcp://a:1", "client": object()}).validate()
    with pytest.raises(TypeError, match=r"executor_options\['address'\] must be a str"):
        veda.Config.builder().executor("dask", address=8786).build()
    with pytest.raises(ValueError, match=r"metrics_port must be an int in \[0, 65535\] or None, got -1"):
        PyVedaPlugin(metrics_port=-1)
    with pytest.raises(ValueError, match="file_sd lists the workers' /metrics endpoints, so it needs metrics_port"):
        PyVedaPlugin(file_sd="targets.json")
    with pytest.raises(ValueError, match="export_interval must be a number of seconds > 0, got 0"):
        PyVedaPlugin(export_interval=0)
    from pyveda.dask import DaskExecutor

    with pytest.raises(TypeError, match="client must be a distributed.Client, got str"):
        DaskExecutor(client="tcp://x")
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"the Dask executor needs distributed: pip install 'pyveda\[dask\]'"):
        DaskExecutor()
