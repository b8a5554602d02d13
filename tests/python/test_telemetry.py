"""Runtime telemetry: exact counts, latency percentiles, rates, background collection,
the system probe, and the Prometheus / JSON exports, all read back through the public API."""

import json
import math
import threading
import time

import psutil
import pytest
from prometheus_client import parser

from conftest import UNIT_LINT

import pyveda as veda
from pyveda.telemetry import MetricsSnapshot, TelemetrySystem, generate_prometheus

WAIT = 10


def wait_until(predicate, timeout=WAIT, step=0.005):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def fail_every_tenth(i):
    if i % 10 == 0:
        raise ValueError(f"task {i} failed")
    return i


# --- enabling ---------------------------------------------------------------------


def test_telemetry_is_none_when_disabled(make_runtime, global_runtime):
    assert make_runtime(threads=1).telemetry is None
    assert make_runtime(threads=1, telemetry=False).telemetry is None
    assert veda.init(veda.Config.builder().threads(1).build()).telemetry is None  # the default is off


def test_telemetry_object_when_enabled(make_runtime):
    telemetry = make_runtime(threads=1, telemetry=True).telemetry
    assert isinstance(telemetry, TelemetrySystem)
    snapshot = telemetry.snapshot()
    assert isinstance(snapshot, MetricsSnapshot)
    assert snapshot.tasks_executed == 0 and snapshot.tasks_failed == 0 and snapshot.tasks_pending == 0
    assert snapshot.avg_latency_ms == 0.0 and snapshot.p99_latency_ms == 0.0  # no task finished yet
    assert snapshot.gpu_utilization_percent is None and snapshot.gpu_memory_used_mb is None
    assert abs(snapshot.timestamp - time.time()) < 5


# --- counts and latency ----------------------------------------------------------


def test_counts_are_exact_with_failures_mixed_in(make_runtime):
    runtime = make_runtime(threads=2, telemetry=True)
    n = 100_000
    futures = [runtime.spawn(fail_every_tenth, i) for i in range(n)]
    failures = sum(1 for f in futures if f.exception(timeout=WAIT) is not None)
    assert failures == n // 10

    live = runtime.telemetry.snapshot()
    assert live.tasks_failed <= live.tasks_executed <= n

    runtime.shutdown()  # joins the workers: every task's outcome is recorded
    snapshot = runtime.telemetry.snapshot()
    assert snapshot.tasks_executed == n  # failed ones included
    assert snapshot.tasks_failed == n // 10
    assert snapshot.tasks_pending == 0
    assert snapshot.tasks_running == 0
    samples = samples_of(snapshot.export_prometheus())
    assert samples[("pyveda_latency_ms_count", ())] == n  # one latency per finished task


def test_pending_and_running_are_live(make_runtime):
    runtime = make_runtime(threads=1, telemetry=True)
    started, release = threading.Event(), threading.Event()

    def block():
        started.set()
        release.wait(WAIT)

    try:
        runtime.spawn(block)
        assert started.wait(WAIT)
        queued = [runtime.spawn(int, i) for i in range(5)]
        snapshot = runtime.telemetry.snapshot()
        assert snapshot.tasks_pending == 5
        assert snapshot.tasks_running == 1
        assert snapshot.tasks_executed == 0
    finally:
        release.set()
    for f in queued:
        f.result(timeout=WAIT)
    assert wait_until(lambda: runtime.telemetry.snapshot().tasks_executed == 6)
    snapshot = runtime.telemetry.snapshot()
    assert snapshot.tasks_pending == 0 and snapshot.tasks_running == 0


def test_a_cancelled_task_is_not_counted_as_executed(make_runtime):
    runtime = make_runtime(threads=1, telemetry=True)
    started, release = threading.Event(), threading.Event()

    def block():
        started.set()
        release.wait(WAIT)

    try:
        blocker = runtime.spawn(block)
        assert started.wait(WAIT)
        queued = runtime.spawn(print, "never runs")
        assert queued.cancel()
    finally:
        release.set()
    blocker.result(timeout=WAIT)
    runtime.shutdown()
    snapshot = runtime.telemetry.snapshot()
    # Only the blocker ran; the cancelled future's task was skipped, not executed.
    assert (snapshot.tasks_executed, snapshot.tasks_failed) == (1, 0)


def test_snapshot_is_a_value_not_a_view(make_runtime):
    runtime = make_runtime(threads=1, telemetry=True)
    before = runtime.telemetry.snapshot()
    runtime.spawn(int).result(timeout=WAIT)
    assert wait_until(lambda: runtime.telemetry.snapshot().tasks_executed == 1)
    assert before.tasks_executed == 0


def test_latency_percentiles_include_queue_wait(make_runtime):
    runtime = make_runtime(threads=2, telemetry=True)
    started = time.perf_counter()
    futures = [runtime.spawn(time.sleep, 0.02) for _ in range(50)]
    for f in futures:
        f.result(timeout=WAIT)
    elapsed_ms = (time.perf_counter() - started) * 1000
    runtime.shutdown()
    s = runtime.telemetry.snapshot()
    assert s.tasks_executed == 50
    # The histogram is exact to within 0.54%; every task slept 20 ms.
    assert s.p50_latency_ms >= 20 * 0.99
    assert s.p50_latency_ms <= s.p95_latency_ms <= s.p99_latency_ms
    assert 20 * 0.99 <= s.avg_latency_ms
    # At most 3 threads ran them (2 workers and this thread while it waited), so
    # the median task waited for at least 8 others to run before it: 160 ms.
    # Without the queue wait it would read 20 ms.
    assert s.p50_latency_ms >= 100
    assert s.p99_latency_ms >= 250  # the last of 50 x 20 ms on <= 3 threads: >= 333 ms
    # No latency can exceed the time from the first spawn to the last completion.
    assert s.p99_latency_ms <= elapsed_ms * 1.01


def test_latency_of_sequential_tasks(make_runtime):
    runtime = make_runtime(threads=1, telemetry=True)
    started = time.perf_counter()
    for _ in range(10):
        runtime.spawn(time.sleep, 0.02).result(timeout=WAIT)
    longest_ms = (time.perf_counter() - started) * 1000
    s = runtime.telemetry.snapshot()
    assert s.p50_latency_ms >= 20 * 0.99 and s.avg_latency_ms >= 20 * 0.99
    assert s.p99_latency_ms <= longest_ms


# --- rates -------------------------------------------------------------------------


def test_throughput_matches_the_true_completion_rate(make_runtime):
    interval = 0.5
    runtime = make_runtime(threads=2, telemetry=True, collect_interval=interval)
    finished = []  # time.monotonic() at the end of each task: the clock the runtime uses
    lock = threading.Lock()

    def task():
        time.sleep(0.002)
        now = time.monotonic()
        with lock:
            finished.append(now)

    stop = threading.Event()

    def producer():  # a steady 200 tasks/s
        next_at = time.monotonic()
        while not stop.is_set():
            runtime.spawn(task)
            next_at += 0.005
            time.sleep(max(0.0, next_at - time.monotonic()))

    thread = threading.Thread(target=producer)
    thread.start()
    compared = []
    try:
        start = time.monotonic()
        while time.monotonic() - start < 3.0:
            time.sleep(interval)
            s = runtime.telemetry.snapshot()
            end = time.monotonic()
            if end - start < 1.0:
                continue  # let the rate settle
            assert s.window_seconds >= interval * 0.999
            with lock:
                done = sum(1 for t in finished if end - s.window_seconds < t <= end)
            measured = done / s.window_seconds
            compared.append((s.throughput_tasks_per_sec, measured))
    finally:
        stop.set()
        thread.join(WAIT)
    assert len(compared) >= 3
    for reported, measured in compared:
        assert measured > 50, compared  # the workload really ran
        assert abs(reported - measured) <= 0.2 * measured, compared


def test_concurrent_snapshot_readers(make_runtime):
    interval = 0.5
    runtime = make_runtime(threads=2, telemetry=True, collect_interval=interval)
    telemetry = runtime.telemetry
    stop = threading.Event()
    errors = []
    series = {}

    def workload():
        while not stop.is_set():
            futures = [runtime.spawn(fail_every_tenth, i) for i in range(200)]
            for f in futures:
                f.exception(timeout=WAIT)
            time.sleep(0.001)

    def reader(k):
        mine = series[k] = []
        try:
            while not stop.is_set():
                s = telemetry.snapshot()
                mine.append((s.tasks_executed, s.tasks_failed, s.timestamp, s.window_seconds))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    pairs = []

    def paired_reader(barrier, k):
        try:
            for _ in range(5):
                barrier.wait(WAIT)
                pairs.append((k, telemetry.snapshot().throughput_tasks_per_sec))
                time.sleep(0.1)
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    worker = threading.Thread(target=workload)
    worker.start()
    try:
        time.sleep(interval * 1.2)  # the runtime is older than one interval from here on
        readers = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
        for t in readers:
            t.start()
        barrier = threading.Barrier(2)
        paired = [threading.Thread(target=paired_reader, args=(barrier, k)) for k in range(2)]
        for t in paired:
            t.start()
        for t in paired:
            t.join(WAIT * 2)
    finally:
        stop.set()
        worker.join(WAIT)
        for t in readers:
            t.join(WAIT)
    assert errors == []
    for k, points in series.items():
        assert len(points) > 3, k
        for (e0, f0, t0, _), (e1, f1, t1, _) in zip(points, points[1:]):
            assert e0 <= e1 and f0 <= f1 and t0 <= t1
        for executed, failed, _, window in points:
            assert failed <= executed
            # One reader never shortens another's window below one interval.
            assert window >= interval * 0.999
    # Two snapshots taken at the same moment agree on the rate.
    first = [v for k, v in pairs if k == 0]
    second = [v for k, v in pairs if k == 1]
    assert len(first) == len(second) == 5
    for a, b in zip(first, second):
        assert a > 0 and b > 0
        assert abs(a - b) <= 0.1 * max(a, b), pairs


# --- background collection ----------------------------------------------------


def test_start_stop_and_bounded_history(make_runtime):
    interval = 0.1
    runtime = make_runtime(threads=1, telemetry=True, collect_interval=interval, max_snapshots=5)
    telemetry = runtime.telemetry
    assert telemetry.collect_interval == interval
    assert not telemetry.is_running
    assert telemetry.get_snapshots() == []

    telemetry.start()
    telemetry.start()  # already running: no second collector
    assert telemetry.is_running
    runtime.spawn(int).result(timeout=WAIT)
    assert wait_until(lambda: len(telemetry.get_snapshots()) >= 2)
    grown = telemetry.get_snapshots()
    assert all(isinstance(s, MetricsSnapshot) for s in grown)

    assert wait_until(lambda: len(telemetry.get_snapshots()) == 5)
    oldest = telemetry.get_snapshots()[0].timestamp
    assert wait_until(lambda: telemetry.get_snapshots()[0].timestamp > oldest)  # it rolls on...
    history = telemetry.get_snapshots()
    assert len(history) == 5  # ...bounded by max_snapshots
    stamps = [s.timestamp for s in history]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    assert history[-1].tasks_executed == 1

    started = time.monotonic()
    telemetry.stop()
    assert time.monotonic() - started < interval + 0.5
    assert not telemetry.is_running
    count = len(telemetry.get_snapshots())
    time.sleep(interval * 3)
    assert len(telemetry.get_snapshots()) == count  # nothing collected after stop()
    telemetry.stop()  # idempotent

    telemetry.clear_snapshots()
    assert telemetry.get_snapshots() == []
    telemetry.start()  # a restart collects again
    assert wait_until(lambda: len(telemetry.get_snapshots()) >= 1)
    telemetry.stop()


def test_stop_does_not_wait_for_the_interval(make_runtime):
    telemetry = make_runtime(threads=1, telemetry=True, collect_interval=30.0).telemetry
    telemetry.start()
    time.sleep(0.05)
    started = time.monotonic()
    telemetry.stop()
    assert time.monotonic() - started < 2.0  # far below the 30 s interval
    assert not telemetry.is_running


def test_shutdown_stops_collection(make_runtime):
    runtime = make_runtime(threads=1, telemetry=True, collect_interval=0.05)
    runtime.telemetry.start()
    assert wait_until(lambda: len(runtime.telemetry.get_snapshots()) >= 1)
    runtime.shutdown()
    assert not runtime.telemetry.is_running


def test_max_snapshots_trims_history(make_runtime):
    runtime = make_runtime(threads=1, telemetry=True, collect_interval=0.05, max_snapshots=10)
    telemetry = runtime.telemetry
    assert telemetry._max_snapshots == telemetry.max_snapshots == 10
    telemetry.start()
    assert wait_until(lambda: len(telemetry.get_snapshots()) >= 6)
    telemetry.stop()
    newest = [s.timestamp for s in telemetry.get_snapshots()][-3:]

    telemetry._max_snapshots = 3  # the guide's troubleshooting knob
    assert telemetry._max_snapshots == telemetry.max_snapshots == 3
    assert [s.timestamp for s in telemetry.get_snapshots()] == newest  # the oldest were dropped

    with pytest.raises(ValueError, match=r"^max_snapshots must be an int between 1 and 2\*\*62, got 0$"):
        telemetry._max_snapshots = 0
    with pytest.raises(ValueError, match=r"^max_snapshots must be an int between 1 and 2\*\*62, got 18446744073709551616$"):
        telemetry.max_snapshots = 2**64
    with pytest.raises(TypeError, match=r"max_snapshots must be an int >= 1, got str"):
        telemetry.max_snapshots = "5"
    assert telemetry.max_snapshots == 3

    telemetry.max_snapshots = 2
    telemetry.start()
    time.sleep(0.3)
    telemetry.stop()
    assert len(telemetry.get_snapshots()) == 2


def test_callbacks_receive_snapshots(make_runtime, monkeypatch):
    runtime = make_runtime(threads=1, telemetry=True, collect_interval=0.05)
    telemetry = runtime.telemetry
    received, unraisable = [], []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)

    def broken(snapshot):
        raise RuntimeError("callback bug")

    callback_id = telemetry.add_callback(received.append)
    broken_id = telemetry.add_callback(broken)
    assert callback_id != broken_id
    runtime.spawn(int).result(timeout=WAIT)
    telemetry.start()
    assert wait_until(lambda: len(received) >= 3)  # a failing callback does not stop collection
    telemetry.remove_callback(callback_id)
    count = len(received)
    time.sleep(0.2)
    telemetry.stop()
    assert len(received) <= count + 1  # at most one already under way
    assert all(isinstance(s, MetricsSnapshot) for s in received)
    assert received[-1].tasks_executed == 1
    history = [s.timestamp for s in telemetry.get_snapshots()]
    assert all(s.timestamp in history for s in received)  # the same snapshots as the history
    assert unraisable and isinstance(unraisable[0].exc_value, RuntimeError)
    with pytest.raises(TypeError, match=r"add_callback\(\) takes a callable, got int"):
        telemetry.add_callback(3)


# --- the system probe ----------------------------------------------------------


def test_system_figures_match_psutil(make_runtime):
    telemetry = make_runtime(threads=1, telemetry=True).telemetry
    ballast = bytearray(64 * 1024 * 1024)  # make RSS clearly non-trivial
    ballast[::4096] = b"x" * len(ballast[::4096])
    s = telemetry.snapshot()
    memory = psutil.virtual_memory()
    rss = psutil.Process().memory_info().rss
    mib = 1024 * 1024
    assert s.memory_used_mb == pytest.approx((memory.total - memory.available) / mib, rel=0.05)
    assert s.memory_total_mb == pytest.approx(memory.total / mib, rel=0.01)
    assert s.process_rss_mb == pytest.approx(rss / mib, rel=0.10)
    assert s.process_rss_mb > 64
    assert 0.0 <= s.cpu_utilization_percent <= 100.0
    del ballast


def test_cpu_percent_matches_psutil_over_the_same_window(make_runtime):
    runtime = make_runtime(threads=1, telemetry=True, collect_interval=0.05)
    telemetry = runtime.telemetry

    def spin(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    time.sleep(0.1)  # older than one interval: the next snapshot starts a window
    psutil.cpu_percent(interval=None)
    first = telemetry.snapshot()
    runtime.spawn(spin, 0.6).result(timeout=WAIT)  # one core busy
    second = telemetry.snapshot()
    expected = psutil.cpu_percent(interval=None)
    assert 0.0 <= first.cpu_utilization_percent <= 100.0
    assert second.window_seconds == pytest.approx(second.timestamp - first.timestamp, abs=0.05)
    assert second.cpu_utilization_percent >= 0.5 * 100 / psutil.cpu_count()  # the busy core shows
    assert second.cpu_utilization_percent == pytest.approx(expected, abs=15)


# --- exports ---------------------------------------------------------------------

# The guide's metric names, as prometheus_client's parser names the families
# (counters without `_total`), and the two families the core adds.
GUIDE_FAMILIES = {
    "pyveda_tasks_executed": "counter",
    "pyveda_tasks_failed": "counter",
    "pyveda_tasks_pending": "gauge",
    "pyveda_latency_ms": "summary",
    "pyveda_throughput_tasks_per_sec": "gauge",
    "pyveda_cpu_utilization_percent": "gauge",
    "pyveda_memory_used_mb": "gauge",
}
EXTRA_FAMILIES = {"pyveda_tasks_running": "gauge", "pyveda_process_rss_mb": "gauge"}

# export_prometheus() without the sample values (checked one by one below).
GOLDEN_SHAPE = """\
# HELP pyveda_tasks_executed_total Tasks finished, failed ones included
# TYPE pyveda_tasks_executed_total counter
pyveda_tasks_executed_total
# HELP pyveda_tasks_failed_total Tasks that raised or returned failure
# TYPE pyveda_tasks_failed_total counter
pyveda_tasks_failed_total
# HELP pyveda_tasks_pending Tasks queued and not yet started
# TYPE pyveda_tasks_pending gauge
pyveda_tasks_pending
# HELP pyveda_tasks_running Tasks running now
# TYPE pyveda_tasks_running gauge
pyveda_tasks_running
# HELP pyveda_latency_ms Task latency from spawn to completion, in milliseconds
# TYPE pyveda_latency_ms summary
pyveda_latency_ms{quantile="0.5"}
pyveda_latency_ms{quantile="0.9"}
pyveda_latency_ms{quantile="0.95"}
pyveda_latency_ms{quantile="0.99"}
pyveda_latency_ms_sum
pyveda_latency_ms_count
# HELP pyveda_throughput_tasks_per_sec Tasks finished per second over the latest collection window
# TYPE pyveda_throughput_tasks_per_sec gauge
pyveda_throughput_tasks_per_sec
# HELP pyveda_cpu_utilization_percent Host CPU utilization (0-100), latest snapshot
# TYPE pyveda_cpu_utilization_percent gauge
pyveda_cpu_utilization_percent
# HELP pyveda_memory_used_mb Host memory used (total - available), MiB, latest snapshot
# TYPE pyveda_memory_used_mb gauge
pyveda_memory_used_mb
# HELP pyveda_process_rss_mb Resident memory of this process, MiB, latest snapshot
# TYPE pyveda_process_rss_mb gauge
pyveda_process_rss_mb
"""


def run_mixed_workload(runtime, n=40):
    futures = [runtime.spawn(fail_every_tenth, i) for i in range(n)]
    for f in futures:
        f.exception(timeout=WAIT)
    runtime.shutdown()  # final counts
    return runtime.telemetry.snapshot()


def samples_of(text):
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parser.text_string_to_metric_families(text)
        for s in family.samples
    }


def test_export_prometheus_names_and_values(make_runtime, check_metrics):
    s = run_mixed_workload(make_runtime(threads=2, telemetry=True))
    text = s.export_prometheus()

    shape = "".join(
        (line if line.startswith("#") else line.rsplit(" ", 1)[0]) + "\n" for line in text.splitlines()
    )
    assert shape == GOLDEN_SHAPE

    families = {f.name: f.type for f in parser.text_string_to_metric_families(text)}
    assert families == {**GUIDE_FAMILIES, **EXTRA_FAMILIES}

    values = samples_of(text)
    q = lambda v: (("quantile", v),)  # noqa: E731
    assert values[("pyveda_tasks_executed_total", ())] == s.tasks_executed == 40
    assert values[("pyveda_tasks_failed_total", ())] == s.tasks_failed == 4
    assert values[("pyveda_tasks_pending", ())] == s.tasks_pending == 0
    assert values[("pyveda_tasks_running", ())] == s.tasks_running == 0
    assert values[("pyveda_latency_ms", q("0.5"))] == s.p50_latency_ms
    assert values[("pyveda_latency_ms", q("0.95"))] == s.p95_latency_ms
    assert values[("pyveda_latency_ms", q("0.99"))] == s.p99_latency_ms
    assert values[("pyveda_latency_ms_count", ())] == s.tasks_executed
    assert values[("pyveda_latency_ms_sum", ())] == pytest.approx(s.avg_latency_ms * s.tasks_executed, rel=1e-9)
    assert values[("pyveda_throughput_tasks_per_sec", ())] == s.throughput_tasks_per_sec
    assert values[("pyveda_cpu_utilization_percent", ())] == s.cpu_utilization_percent
    assert values[("pyveda_memory_used_mb", ())] == s.memory_used_mb
    assert values[("pyveda_process_rss_mb", ())] == s.process_rss_mb

    problems = check_metrics(text, allow=[UNIT_LINT])
    assert all(UNIT_LINT in p for p in problems)


def test_export_prometheus_before_any_task(make_runtime, check_metrics):
    text = make_runtime(threads=1, telemetry=True).telemetry.snapshot().export_prometheus()
    values = samples_of(text)
    assert math.isnan(values[("pyveda_latency_ms", (("quantile", "0.5"),))])  # no observation: NaN, not 0
    assert values[("pyveda_latency_ms_count", ())] == 0
    assert values[("pyveda_tasks_executed_total", ())] == 0
    check_metrics(text, allow=[UNIT_LINT])


def shape_of(value):
    return {k: shape_of(v) for k, v in value.items()} if isinstance(value, dict) else None


def test_export_json_has_the_guide_structure(make_runtime):
    s = run_mixed_workload(make_runtime(threads=2, telemetry=True))
    data = s.export_json()
    assert shape_of(data) == {
        "timestamp": None,
        "tasks": {"executed": None, "failed": None, "pending": None},
        "latency": {"avg_ms": None, "p50_ms": None, "p95_ms": None, "p99_ms": None},
        "system": {"cpu_percent": None, "memory_mb": None, "throughput_tasks_per_sec": None},
    }
    assert data["timestamp"] == s.timestamp
    assert data["tasks"] == {"executed": 40, "failed": 4, "pending": 0}
    assert data["latency"] == {
        "avg_ms": s.avg_latency_ms,
        "p50_ms": s.p50_latency_ms,
        "p95_ms": s.p95_latency_ms,
        "p99_ms": s.p99_latency_ms,
    }
    assert data["system"] == {
        "cpu_percent": s.cpu_utilization_percent,
        "memory_mb": s.memory_used_mb,
        "throughput_tasks_per_sec": s.throughput_tasks_per_sec,
    }
    assert json.loads(json.dumps(data, indent=2)) == data


def test_generate_prometheus_includes_the_live_runtime(make_runtime, check_metrics):
    runtime = make_runtime(threads=2, telemetry=True)
    futures = [runtime.spawn(fail_every_tenth, i) for i in range(30)]
    for f in futures:
        f.exception(timeout=WAIT)
    assert wait_until(lambda: runtime.telemetry.snapshot().tasks_executed == 30)
    snapshot = runtime.telemetry.snapshot()  # also publishes the CPU and memory gauges
    text = generate_prometheus()
    families = {f.name: f.type for f in parser.text_string_to_metric_families(text)}
    for name, kind in GUIDE_FAMILIES.items():
        assert families.get(name) == kind, name
    values = samples_of(text)
    assert values[("pyveda_tasks_executed_total", ())] == 30
    assert values[("pyveda_tasks_failed_total", ())] == 3
    assert values[("pyveda_tasks_pending", ())] == 0
    assert values[("pyveda_latency_ms_count", ())] == 30
    assert values[("pyveda_memory_used_mb", ())] == snapshot.memory_used_mb
    check_metrics(text, allow=[UNIT_LINT])

    # A new runtime's telemetry starts from zero in the registry.
    second = make_runtime(threads=1, telemetry=True)
    second.spawn(int).result(timeout=WAIT)
    assert wait_until(lambda: samples_of(generate_prometheus())[("pyveda_tasks_executed_total", ())] == 1)


def test_generate_prometheus_after_the_runtime_is_gone():
    import gc

    runtime = veda.Runtime(veda.Config.builder().threads(1).telemetry(True).build())
    runtime.spawn(int).result(timeout=WAIT)
    runtime.shutdown()
    del runtime
    gc.collect()
    values = samples_of(generate_prometheus())  # the live gauges must not read a freed runtime
    assert values[("pyveda_tasks_executed_total", ())] == 1
    assert values[("pyveda_tasks_pending", ())] == 0


def test_host_figures_fall_back_to_psutil_without_proc(tmp_path, monkeypatch):
    # Off Linux the core's /proc probe cannot read anything; psutil fills in.
    psutil = pytest.importorskip("psutil")
    monkeypatch.setenv("PYVEDA_PROC_ROOT", str(tmp_path / "no-proc-here"))
    runtime = veda.Runtime(veda.Config.builder().threads(1).telemetry(True).build())
    try:
        runtime.spawn(sum, [1, 2]).result()
        snapshot = runtime.telemetry.snapshot()
        memory = psutil.virtual_memory()
        used_mb = (memory.total - memory.available) / 2**20
        rss_mb = psutil.Process().memory_info().rss / 2**20
        assert snapshot.memory_used_mb == pytest.approx(used_mb, rel=0.05)
        assert snapshot.process_rss_mb == pytest.approx(rss_mb, rel=0.2)
        assert 0.0 <= snapshot.cpu_utilization_percent <= 100.0
        text = snapshot.export_prometheus()
        assert "pyveda_memory_used_mb 0\n" not in text
    finally:
        runtime.shutdown()


def test_a_finished_future_is_already_counted():
    # The task is counted before its future completes, so a snapshot taken
    # right after result() returns always includes it.
    runtime = veda.Runtime(veda.Config.builder().threads(2).telemetry(True).build())
    try:
        for n in range(1, 301):
            runtime.spawn(int, n).result()
            assert runtime.telemetry.snapshot().tasks_executed == n
    finally:
        runtime.shutdown()


# -- snapshots built by the user ------------------------------------------------------------------

GUIDE_FIELDS = dict(
    timestamp=1699564800.123, tasks_executed=100, tasks_failed=2, tasks_pending=5, avg_latency_ms=10.5,
    p50_latency_ms=9.0, p95_latency_ms=30.0, p99_latency_ms=45.5, throughput_tasks_per_sec=127.3,
    cpu_utilization_percent=65.3, memory_used_mb=512.0,
)


def test_a_user_built_snapshot_renders_its_values(check_metrics):
    snapshot = MetricsSnapshot(**GUIDE_FIELDS)
    for name, value in GUIDE_FIELDS.items():
        assert getattr(snapshot, name) == value
    assert snapshot.gpu_utilization_percent is None and snapshot.gpus == [] and snapshot.latency_histogram is None
    assert snapshot.latency_count == 100 and snapshot.latency_sum_ms == pytest.approx(1050.0)
    assert snapshot.export_json() == {
        "timestamp": 1699564800.123,
        "tasks": {"executed": 100, "failed": 2, "pending": 5},
        "latency": {"avg_ms": 10.5, "p50_ms": 9.0, "p95_ms": 30.0, "p99_ms": 45.5},
        "system": {"cpu_percent": 65.3, "memory_mb": 512.0, "throughput_tasks_per_sec": 127.3},
    }
    text = snapshot.export_prometheus()
    check_metrics(text, allow=[UNIT_LINT])  # the guide's names (the _ms/_mb units are its choice)
    samples = {(s.name, s.labels.get("quantile")): s.value
               for f in parser.text_string_to_metric_families(text) for s in f.samples}
    assert samples[("pyveda_tasks_executed_total", None)] == 100
    assert samples[("pyveda_tasks_failed_total", None)] == 2
    assert samples[("pyveda_tasks_pending", None)] == 5
    assert samples[("pyveda_latency_ms", "0.99")] == 45.5
    assert samples[("pyveda_latency_ms_count", None)] == 100
    assert samples[("pyveda_memory_used_mb", None)] == 512.0
    assert abs(MetricsSnapshot().timestamp - time.time()) < 60  # defaults to now


def test_from_json_round_trips_runtime_and_user_snapshots(make_runtime):
    runtime = make_runtime(threads=2, telemetry=True)
    for f in [runtime.spawn(int, i) for i in range(20)]:
        f.result()
    for snapshot in (runtime.telemetry.snapshot(), MetricsSnapshot(**GUIDE_FIELDS, gpu_utilization_percent=40.0,
                                                                  gpu_memory_used_mb=1234.0)):
        data = snapshot.export_json()
        again = MetricsSnapshot.from_json(data)
        assert again.export_json() == data
        assert MetricsSnapshot.from_json(json.dumps(data)).export_json() == data
        assert again.tasks_executed == snapshot.tasks_executed


def test_from_json_keeps_per_device_gpu_samples():
    device = {"index": 0, "name": "Fake H100", "uuid": "GPU-1", "utilization_percent": 40.0,
              "memory_utilization_percent": None, "memory_used_mb": 1234.0, "memory_free_mb": 80000.0,
              "memory_total_mb": 81559.0, "memory_reserved_mb": None, "temperature_c": 45.0, "power_w": 120.5,
              "power_limit_w": 700.0, "sm_clock_mhz": 1980.0, "process_memory_mb": 0.0}
    snapshot = MetricsSnapshot(**GUIDE_FIELDS, gpu_utilization_percent=40.0, gpu_memory_used_mb=1234.0, gpus=[device])
    assert snapshot.gpus[0].name == "Fake H100" and snapshot.gpus[0].memory_reserved_mb is None
    data = snapshot.export_json()
    assert data["gpus"] == [device]
    assert MetricsSnapshot.from_json(data).export_json() == data
    assert 'pyveda_gpu_temperature_celsius{gpu="0",name="Fake H100"} 45' in snapshot.export_prometheus()


@pytest.mark.parametrize(
    "fields, error, message",
    [
        ({"tasks_executed": -1}, ValueError, r"^MetricsSnapshot: tasks_executed must be an int >= 0, got -1$"),
        ({"tasks_executed": 1.5}, TypeError, r"^MetricsSnapshot: tasks_executed must be an int >= 0, got 1\.5$"),
        ({"tasks_pending": True}, TypeError, r"^MetricsSnapshot: tasks_pending must be an int >= 0, got True$"),
        ({"tasks_executed": 1, "tasks_failed": 2}, ValueError,
         r"^MetricsSnapshot: tasks_failed \(2\) cannot exceed tasks_executed \(1\), which counts failed tasks too$"),
        ({"avg_latency_ms": math.nan}, ValueError,
         r"^MetricsSnapshot: avg_latency_ms must be a finite number >= 0, got nan$"),
        ({"memory_used_mb": "512"}, TypeError,
         r"^MetricsSnapshot: memory_used_mb must be a finite number >= 0, got '512'$"),
        ({"gpu_memory_used_mb": -1.0}, ValueError,
         r"^MetricsSnapshot: gpu_memory_used_mb must be a finite number >= 0, got -1\.0$"),
        ({"timestamp": "now"}, TypeError,
         r"^MetricsSnapshot: timestamp must be a finite number of Unix seconds, got 'now'$"),
        ({"tasks_executed": 2**64}, ValueError, r"^MetricsSnapshot: tasks_executed must be an int in \[0, 2\*\*64\)"),
        ({"gpus": [{"index": 0, "name": "x", "uuid": "", "fan": 1}]}, ValueError,
         r"^MetricsSnapshot: unknown GPU sample field\(s\) \['fan'\]; allowed: \['index', 'name'"),
        ({"gpus": ["gpu0"]}, TypeError, r"^MetricsSnapshot: gpus must hold GpuSample objects or their dicts, got str$"),
    ],
)
def test_snapshot_fields_are_checked(fields, error, message):
    with pytest.raises(error, match=message):
        MetricsSnapshot(**fields)


def test_snapshot_takes_keywords_only():
    with pytest.raises(TypeError):
        MetricsSnapshot(1699564800.0)


@pytest.mark.parametrize(
    "data, error, message",
    [
        ("{oops", ValueError, r"^MetricsSnapshot\.from_json: not JSON \("),
        ([1, 2], TypeError, r"^MetricsSnapshot\.from_json takes the dict export_json\(\) returns \(or its JSON text\), got list$"),
        ({"timestamp": 1.0}, ValueError, r"^MetricsSnapshot\.from_json: missing 'tasks\.executed'$"),
    ],
)
def test_from_json_says_what_is_wrong(data, error, message):
    with pytest.raises(error, match=message):
        MetricsSnapshot.from_json(data)


# -- one catalogue: every export agrees on names, help, type and quantiles --------------------------


def _family_shapes(text, openmetrics=False):
    """{family name: (help, type, sorted quantiles)} of an exposition, read by prometheus_client."""
    from prometheus_client.openmetrics import parser as om_parser

    read = om_parser.text_string_to_metric_families if openmetrics else parser.text_string_to_metric_families
    shapes = {}
    for family in read(text):
        if not family.name.startswith("pyveda_"):
            continue
        quantiles = sorted({float(s.labels["quantile"]) for s in family.samples if "quantile" in s.labels})
        shapes[family.name] = (family.documentation, family.type, quantiles)
    return shapes


def test_every_export_gives_a_runtime_metric_one_help_type_and_quantile_set(make_runtime):
    from pyveda import _core
    from pyveda.telemetry import generate_openmetrics

    runtime = make_runtime(threads=2, telemetry=True)
    for f in [runtime.spawn(int, i) for i in range(50)]:
        f.result()
    live = runtime.telemetry.snapshot()
    runtime.telemetry.start()
    deadline = time.monotonic() + WAIT
    while not runtime.telemetry.get_snapshots():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    runtime.telemetry.stop()
    history = runtime.telemetry.get_snapshots()[-1]  # no buckets: quantiles from its figures
    assert history.latency_histogram is None
    built = MetricsSnapshot(**GUIDE_FIELDS, p90_latency_ms=20.0)

    catalogue = {name: (help_text, kind) for name, help_text, _unit, kind, _otlp in _core.RUNTIME_METRICS}
    exports = {
        "/metrics (0.0.4)": _family_shapes(generate_prometheus()),
        "/metrics (OpenMetrics)": _family_shapes(generate_openmetrics(), openmetrics=True),
    }
    for label, snapshot in (("live", live), ("history", history), ("built", built)):
        exports[f"{label} export_prometheus"] = _family_shapes(snapshot.export_prometheus())
        exports[f"{label} export_openmetrics"] = _family_shapes(snapshot.export_openmetrics(), openmetrics=True)
    for label, shapes in exports.items():
        assert "pyveda_latency_ms" in shapes and "pyveda_tasks_executed" in shapes, label
        for name, (help_text, kind, quantiles) in shapes.items():
            assert name in catalogue, (label, name)
            assert help_text == catalogue[name][0], (label, name, help_text)
            expected_type = {"histogram": "summary"}.get(catalogue[name][1], catalogue[name][1])
            assert kind == expected_type, (label, name, kind)
            if kind == "summary":
                assert quantiles == [0.5, 0.9, 0.95, 0.99], (label, name, quantiles)
    # OTLP: each metric's description and unit are the catalogue's, the summary has the same quantiles.
    from pyveda.telemetry import otlp

    by_otlp_name = {o: (h, u) for _n, h, u, _k, o in _core.RUNTIME_METRICS}
    for snapshot in (live, history, built):
        for metric in otlp.metrics_request_message(snapshot).resource_metrics[0].scope_metrics[0].metrics:
            base = metric.name[: -len(".summary")] if metric.name.endswith(".summary") else metric.name
            assert (metric.description, metric.unit) == by_otlp_name[base], metric.name
            if metric.HasField("summary") and metric.summary.data_points[0].count:
                assert [q.quantile for q in metric.summary.data_points[0].quantile_values] == [0.5, 0.9, 0.95, 0.99]
    # A built snapshot's figures come through as its quantiles.
    values = {s.labels.get("quantile"): s.value
              for f in parser.text_string_to_metric_families(built.export_prometheus())
              if f.name == "pyveda_latency_ms" for s in f.samples}
    assert (values["0.5"], values["0.9"], values["0.95"], values["0.99"]) == (9.0, 20.0, 30.0, 45.5)
    # Without a p90 it is unknown (NaN), not a made-up 0.
    assert math.isnan(MetricsSnapshot(**GUIDE_FIELDS).p90_latency_ms)
    assert 'pyveda_latency_ms{quantile="0.9"} NaN' in MetricsSnapshot(**GUIDE_FIELDS).export_prometheus()


def test_latency_percentiles_follow_the_recent_window(make_runtime):
    """A million fast tasks, then slow ones: within one window the snapshot's
    p99 and the guide's p99 alert see the slow tasks, while the lifetime
    totals keep every task."""
    import time

    from pyveda.telemetry import alerts

    window = 1.0
    runtime = make_runtime(threads=2, telemetry=True, latency_window=window)
    # Latency runs from spawn to end, so a fast task's is mostly its wait in
    # the queue: small batches keep that far below the slow tasks' 300 ms
    # even on a loaded machine.
    batch = 2_000
    for _ in range(1_000_000 // batch):
        futures = [runtime.spawn(int) for _ in range(batch)]
        for future in futures:
            future.result(timeout=60)
    fast = runtime.telemetry.snapshot()
    assert fast.tasks_executed >= 1_000_000 and fast.p99_latency_ms < 250
    assert alerts.evaluate(fast, [alerts.p99_latency(250)]) == []

    def slow():
        time.sleep(0.3)

    for future in [runtime.spawn(slow) for _ in range(20)]:
        future.result(timeout=60)
    deadline = time.monotonic() + 3 * window  # the slow tasks ended less than a window ago
    snapshot = runtime.telemetry.snapshot()
    while snapshot.p99_latency_ms < 250 and time.monotonic() < deadline:
        time.sleep(0.05)
        snapshot = runtime.telemetry.snapshot()
    assert snapshot.p99_latency_ms > 290, snapshot.p99_latency_ms
    (alert,) = alerts.evaluate(snapshot, [alerts.p99_latency(250)])
    assert alert.value > 290
    # The lifetime view: 20 slow tasks among a million barely move its p99.
    assert snapshot.latency_count == snapshot.tasks_executed >= 1_000_020
    histogram = snapshot.latency_histogram
    assert histogram.percentile(99) < 250

    # A window later with no tasks, the recent percentiles are empty again.
    time.sleep(window * 1.2)
    runtime.telemetry.snapshot()
    time.sleep(window * 1.2)
    assert runtime.telemetry.snapshot().p99_latency_ms == 0.0
