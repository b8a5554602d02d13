"""The runtime, telemetry and tracing across fork(): what a child inherits, and multiprocessing's start methods."""

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import pyveda as veda
from pyveda.telemetry import TracingSystem

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX")

sys.path.insert(0, os.path.dirname(__file__))
import _fork_workers  # noqa: E402


def _quiet(runtime):
    """Waits until nothing is queued or running: result() returns once the
    future is set, and the task is counted (telemetry, completed) a moment
    later, after its callable returns."""
    _fork_workers.wait_until_quiet(runtime)
    return runtime


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_tasks_and_metrics_in_multiprocessing_children(method, global_runtime):
    veda.init()
    veda.spawn(_fork_workers._square, 3).result()  # the parent's runtime runs before the children start
    assert _quiet(veda.get_runtime())._core.completed == 1
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        results = pool.map(_fork_workers.tasks_and_metrics, [100, 200, 300], chunksize=1)
    jobs = {}
    for n, (pid, total, completed, text) in zip([100, 200, 300], results):
        assert total == sum(i * i for i in range(n))
        assert f"\nchild_tasks_total {n}\n" in text, text
        jobs.setdefault(pid, []).append((n, completed))
    assert os.getpid() not in jobs
    # A pool process may take more than one job: its runtime's count is then
    # the sum of its jobs' tasks, and never includes the parent's tasks.
    for pid, done in jobs.items():
        assert max(c for _, c in done) == sum(n for n, _ in done), (method, jobs)
    assert _quiet(veda.get_runtime())._core.completed == 1  # the parent is untouched


def _in_child(work):
    """Runs work() in a fork()ed child; returns what it returned (a str), or the error it raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            out = str(work())
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            out = f"{type(e).__name__}: {e}"
        os.write(write, out.encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while True:
        chunk = os.read(read, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    return b"".join(chunks).decode()


def test_the_process_wide_runtime_starts_afresh_in_a_child(global_runtime):
    config = veda.Config.builder().threads(2).telemetry(True).build()
    parent = veda.init(config)
    for _ in range(50):
        veda.spawn(_fork_workers._square, 2).result()
    assert _quiet(parent).telemetry.snapshot().tasks_executed == 50

    def child():
        runtime = veda.get_runtime()
        assert runtime is not parent and not runtime._core.is_inherited
        assert runtime.config is config  # set up as the parent's was
        assert [veda.spawn(_fork_workers._square, i).result(timeout=10) for i in range(5)] == [0, 1, 4, 9, 16]
        return _quiet(runtime).telemetry.snapshot().tasks_executed

    assert _in_child(child) == "5"  # the child's tasks only, not the parent's 50 on top
    assert veda.spawn(_fork_workers._square, 4).result() == 16  # the parent's runtime carries on
    assert _quiet(parent).telemetry.snapshot().tasks_executed == 51


def test_a_runtime_held_across_fork_refuses_tasks_with_a_message():
    runtime = veda.Runtime(veda.Config.builder().threads(1).build())
    gate = threading.Event()
    blocked = runtime.spawn(gate.wait, 30)  # still running when the process forks
    try:

        def spawn_in_child():
            runtime.spawn(_fork_workers._square, 1)

        message = _in_child(spawn_in_child)
        assert message.startswith("RuntimeError: cannot spawn: this Runtime was created in the parent process before os.fork()")
        assert "create a new pyveda.Runtime in the child" in message
        message = _in_child(lambda: runtime.try_spawn(1.0, _fork_workers._square, 1))
        assert "created in the parent process before os.fork()" in message

        # Waiting for a task that runs in the parent would never end in the child.
        message = _in_child(lambda: blocked.result(timeout=None))
        assert message.startswith("RuntimeError: veda::Scheduler: this scheduler was created in the parent process before fork()")
    finally:
        gate.set()
        assert blocked.result(timeout=30) is True
        runtime.shutdown()


def test_a_child_starts_with_no_spans_of_the_parent():
    tracing = TracingSystem()
    for i in range(10):
        with tracing.span(f"parent-{i}"):
            pass
    assert len(tracing) == 10

    def child():
        before = len(tracing)
        with tracing.span("child"):
            pass
        return f"{before} {[s.name for s in tracing.get_spans()]}"

    assert _in_child(child) == "0 ['child']"
    assert len(tracing) == 10  # the parent keeps its own


def test_a_child_exits_normally_with_the_parents_runtime_busy():
    # Exit hooks in a forked child (atexit, the runtime's and the pushers')
    # must not wait for threads that stayed in the parent.
    script = textwrap.dedent(
        """
        import os, sys, threading
        import pyveda as veda
        gate = threading.Event()
        busy = [veda.spawn(gate.wait, 30) for _ in range(4)]
        own = veda.Runtime(veda.Config.builder().threads(2).build())
        own.spawn(gate.wait, 30)
        pid = os.fork()
        if pid == 0:
            print("child", veda.spawn(sum, [1, 2, 3]).result(timeout=10), flush=True)
            sys.exit(0)  # through the interpreter's exit, hooks and all
        _, status = os.waitpid(pid, 0)
        gate.set()
        print("parent", os.waitstatus_to_exitcode(status), all(f.result(timeout=30) for f in busy), flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["child 6", "parent 0 True"]


def test_the_metrics_server_keeps_serving_in_the_parent_and_shuts_down_at_once_in_a_child():
    import urllib.request

    from pyveda.telemetry import start_http_server

    server = start_http_server(0, addr="127.0.0.1")
    try:

        def child():
            import time

            start = time.monotonic()
            ok = server.shutdown(timeout=5.0)
            return f"{ok} {time.monotonic() - start < 1.0}"

        assert _in_child(child) == "True True"
        with urllib.request.urlopen(server.url, timeout=10) as response:  # the parent's endpoint still answers
            assert response.status == 200
    finally:
        server.shutdown()


def test_each_process_has_its_own_identity_in_the_otlp_resource(monkeypatch):
    import re

    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from pyveda.telemetry import CollectorRegistry, Counter
    from pyveda.telemetry.otlp import process_identity, registry_request_bytes

    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    ours = process_identity()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", ours["service.instance.id"])
    assert ours["process.pid"] == os.getpid() and ours["host.name"] == os.uname().nodename
    assert process_identity() == ours  # made once per process

    registry = CollectorRegistry()
    Counter("identity_hits_total", "Hits.", registry=registry).inc()

    def resource_of(raw):
        (rm,) = raw.resource_metrics if hasattr(raw, "resource_metrics") else raw.resource_spans
        return {a.key: (a.value.string_value or a.value.int_value) for a in rm.resource.attributes}

    metrics = resource_of(ExportMetricsServiceRequest.FromString(registry_request_bytes(registry)))
    assert metrics["service.instance.id"] == ours["service.instance.id"] and metrics["process.pid"] == os.getpid()
    tracing = TracingSystem()
    with tracing.span("op"):
        pass
    spans = resource_of(ExportTraceServiceRequest.FromString(tracing.export_otlp(encoding="protobuf")))
    assert spans["service.instance.id"] == ours["service.instance.id"] and spans["host.name"] == ours["host.name"]

    child = _in_child(lambda: f"{process_identity()['service.instance.id']} {process_identity()['process.pid']}")
    child_id, child_pid = child.split()
    assert child_id != ours["service.instance.id"] and int(child_pid) != os.getpid()

    # The environment (and explicit attributes) still win, as the spec orders them.
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=worker-7")
    assert TracingSystem().resource_attributes()["service.instance.id"] == "worker-7"
