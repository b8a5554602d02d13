"""The runtime: the process-wide API, futures, and scheduler behaviour seen from Python.

Tasks that must stay running or queued block on a ``Gate`` (events with
timeouts, released at teardown), never on sleeps; the few timings asserted
are generous behavioural bounds, not benchmarks.
"""

import asyncio
import concurrent.futures as cf
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pyveda as veda

WAIT = 10  # seconds: upper bound for anything that should happen "at once"


class Gate:
    """A task body that reports it started and then waits until released."""

    def __init__(self):
        self.started = threading.Event()
        self.released = threading.Event()

    def block(self, value="blocker"):
        self.started.set()
        assert self.released.wait(WAIT), "gate never released"
        return value

    def release(self):
        self.released.set()


@pytest.fixture
def gate(global_runtime, make_runtime):
    # Depends on the runtime fixtures so that it is torn down (released) first.
    g = Gate()
    yield g
    g.release()


def spawn_blocker(runtime, gate):
    future = runtime.spawn(gate.block)
    assert gate.started.wait(WAIT), "blocker did not start"
    return future


# --- the process-wide runtime -------------------------------------------------


def run_python(code, timeout=60):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )


def test_get_runtime_auto_initialises_on_first_use():
    # Needs a fresh interpreter: no init() and no shutdown() before.
    result = run_python(
        """
        import os
        import pyveda as veda
        runtime = veda.get_runtime()
        assert runtime is veda.get_runtime()
        assert runtime.num_threads == os.cpu_count(), runtime.num_threads
        assert runtime.telemetry is None
        print(veda.spawn(pow, 2, 10).result(timeout=10))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1024"


def test_spawn_auto_initialises_too():
    result = run_python("import pyveda as veda; print(veda.spawn(sum, [1, 2, 3]).result(timeout=10))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "6"


def test_init_returns_the_global_runtime(global_runtime):
    runtime = veda.init(veda.Config.builder().threads(2).telemetry(True).build())
    assert veda.get_runtime() is runtime
    assert runtime.num_threads == 2
    assert veda.spawn(lambda: "ran").result(timeout=WAIT) == "ran"
    runtime.shutdown()
    assert runtime.telemetry.snapshot().tasks_executed == 1  # it ran on this runtime


def test_init_twice_raises_and_keeps_the_first(global_runtime):
    first = veda.init(veda.Config.builder().threads(1).build())
    with pytest.raises(
        RuntimeError, match=r"pyveda is already initialised; call pyveda\.shutdown\(\) before pyveda\.init\(\) again"
    ):
        veda.init(veda.Config.builder().threads(2).build())
    assert veda.get_runtime() is first
    assert veda.spawn(int, "5").result(timeout=WAIT) == 5


def test_spawn_after_shutdown_raises(global_runtime):
    veda.init(veda.Config.builder().threads(1).build())
    veda.shutdown()
    with pytest.raises(RuntimeError, match=r"has been shut down; call pyveda\.init\(\) to start a new one"):
        veda.spawn(int)
    with pytest.raises(RuntimeError, match=r"has been shut down; call pyveda\.init\(\) to start a new one"):
        veda.get_runtime()


def test_standalone_spawn_after_shutdown_raises(make_runtime):
    runtime = make_runtime(threads=1)
    runtime.shutdown()
    assert runtime.is_shutdown
    with pytest.raises(RuntimeError, match=r"cannot spawn: the runtime has been shut down"):
        runtime.spawn(int)
    with pytest.raises(RuntimeError, match=r"cannot spawn: the runtime has been shut down"):
        runtime.try_spawn(1.0, int)


def test_init_after_shutdown_works(global_runtime):
    first = veda.init(veda.Config.builder().threads(1).build())
    veda.shutdown()
    second = veda.init(veda.Config.builder().threads(2).build())
    assert second is not first
    assert veda.get_runtime() is second
    assert veda.spawn(pow, 3, 3).result(timeout=WAIT) == 27


def test_shutdown_is_idempotent(global_runtime):
    veda.shutdown()  # nothing running: no-op
    veda.init(veda.Config.builder().threads(1).build())
    veda.shutdown()
    veda.shutdown(wait=False)
    assert veda.init(veda.Config.builder().threads(1).build()).spawn(abs, -1).result(timeout=WAIT) == 1


def test_runtime_as_context_manager_drains_on_exit():
    with veda.Runtime(veda.Config.builder().threads(2).build()) as runtime:
        futures = [runtime.spawn(time.sleep, 0.001) for _ in range(50)]
    assert runtime.is_shutdown
    assert all(f.done() and not f.cancelled() for f in futures)


# --- futures --------------------------------------------------------------------


def test_spawn_returns_a_concurrent_future_and_passes_arguments(make_runtime):
    runtime = make_runtime(threads=2)

    def combine(a, b, *, c, d=0):
        return (a, b, c, d)

    future = runtime.spawn(combine, 1, 2, c=3, d=4)
    assert isinstance(future, cf.Future)
    assert isinstance(future, veda.Future)
    assert future.result(timeout=WAIT) == (1, 2, 3, 4)
    assert future.done() and not future.running() and not future.cancelled()
    assert future.exception() is None
    # `fn` is positional-only, so a keyword argument named `fn` reaches the task.
    assert runtime.spawn(lambda **kw: kw, fn=1).result(timeout=WAIT) == {"fn": 1}


def test_result_times_out_on_a_blocked_task(make_runtime, gate):
    runtime = make_runtime(threads=1)
    future = spawn_blocker(runtime, gate)
    assert future.running() and not future.done()
    with pytest.raises(TimeoutError):
        future.result(timeout=0.05)
    with pytest.raises(cf.TimeoutError):
        future.exception(timeout=0)
    gate.release()
    assert future.result(timeout=WAIT) == "blocker"


def test_exception_is_stored_in_the_future(make_runtime):
    runtime = make_runtime(threads=1)

    def fail():
        raise ValueError("boom")

    future = runtime.spawn(fail)
    error = future.exception(timeout=WAIT)
    assert isinstance(error, ValueError) and str(error) == "boom"
    assert error.__traceback__ is not None  # the task's frames are kept for debugging
    assert future.done() and not future.cancelled()
    with pytest.raises(ValueError, match="boom"):
        future.result()


def test_base_exceptions_are_stored_and_the_worker_survives(make_runtime):
    runtime = make_runtime(threads=1)

    def leave():
        raise SystemExit(3)

    future = runtime.spawn(leave)
    assert isinstance(future.exception(timeout=WAIT), SystemExit)
    assert runtime.spawn(int, "9").result(timeout=WAIT) == 9


def test_failed_task_is_counted_and_the_worker_keeps_working(make_runtime):
    runtime = make_runtime(threads=1, telemetry=True)

    def fail():
        raise RuntimeError("task failed")

    bad = runtime.spawn(fail)
    futures = [runtime.spawn(pow, i, 2) for i in range(100)]
    assert [f.result(timeout=WAIT) for f in futures] == [i * i for i in range(100)]
    assert isinstance(bad.exception(), RuntimeError)
    runtime.shutdown()  # joins the workers: the counts are final
    snapshot = runtime.telemetry.snapshot()
    assert snapshot.tasks_failed == 1
    assert snapshot.tasks_executed == 101


def test_cancel_a_queued_task(make_runtime, gate):
    runtime = make_runtime(threads=1)
    blocker = spawn_blocker(runtime, gate)
    ran = []
    queued = runtime.spawn(ran.append, "queued")
    assert not queued.running() and not queued.done()

    assert queued.cancel() is True
    assert queued.cancelled() and queued.done()
    with pytest.raises(cf.CancelledError):
        queued.result(timeout=0)
    with pytest.raises(cf.CancelledError):
        queued.exception(timeout=0)
    assert blocker.cancel() is False  # already running

    gate.release()
    assert blocker.result(timeout=WAIT) == "blocker"
    assert runtime.spawn(ran.append, "after").result(timeout=WAIT) is None
    runtime.shutdown(wait=True)  # everything queued has had its turn
    assert ran == ["after"]
    assert queued.cancelled()
    assert blocker.cancel() is False  # finished


def test_add_done_callback_is_called_once(make_runtime, gate):
    runtime = make_runtime(threads=1)
    future = spawn_blocker(runtime, gate)
    calls = []
    future.add_done_callback(calls.append)
    assert calls == []
    gate.release()
    future.result(timeout=WAIT)
    deadline = time.monotonic() + WAIT
    while not calls and time.monotonic() < deadline:  # runs on the worker, right after completion
        time.sleep(0.001)
    assert calls == [future]

    late = []
    future.add_done_callback(late.append)  # added after completion: called at once, here
    assert late == [future]
    time.sleep(0.05)
    assert calls == [future] and late == [future]


def test_done_callback_of_a_failed_task(make_runtime):
    runtime = make_runtime(threads=1)
    seen = threading.Event()
    errors = []

    def fail():
        raise KeyError("k")

    def callback(f):
        errors.append(f.exception())
        seen.set()

    runtime.spawn(fail).add_done_callback(callback)
    assert seen.wait(WAIT)
    assert len(errors) == 1 and isinstance(errors[0], KeyError)


def test_wait_first_and_all_completed(make_runtime, gate):
    runtime = make_runtime(threads=2)
    slow = spawn_blocker(runtime, gate)
    fast = runtime.spawn(pow, 2, 5)
    done, not_done = cf.wait([slow, fast], timeout=WAIT, return_when=cf.FIRST_COMPLETED)
    assert done == {fast} and not_done == {slow}

    done, not_done = cf.wait([slow, fast], timeout=0.05, return_when=cf.ALL_COMPLETED)
    assert not_done == {slow}
    gate.release()
    done, not_done = cf.wait([slow, fast], timeout=WAIT, return_when=cf.ALL_COMPLETED)
    assert done == {slow, fast} and not not_done


def test_wait_first_exception(make_runtime, gate):
    runtime = make_runtime(threads=2)
    slow = spawn_blocker(runtime, gate)
    bad = runtime.spawn(int, "not a number")
    done, not_done = cf.wait([slow, bad], timeout=WAIT, return_when=cf.FIRST_EXCEPTION)
    assert done == {bad} and not_done == {slow}


def test_as_completed(make_runtime, gate):
    runtime = make_runtime(threads=2)
    slow = spawn_blocker(runtime, gate)
    quick = [runtime.spawn(pow, i, 2) for i in range(10)]
    order = []
    for future in cf.as_completed([slow, *quick], timeout=WAIT):
        order.append(future)
        if len(order) == len(quick):
            gate.release()  # the blocker can finish only after every quick task was yielded
    assert set(order[:-1]) == set(quick)
    assert order[-1] is slow


def test_asyncio_wrap_future(make_runtime):
    runtime = make_runtime(threads=2)

    def fail():
        raise ValueError("async boom")

    async def main():
        values = await asyncio.gather(*(asyncio.wrap_future(runtime.spawn(pow, i, 3)) for i in range(5)))
        with pytest.raises(ValueError, match="async boom"):
            await asyncio.wrap_future(runtime.spawn(fail))
        return values

    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == [0, 1, 8, 27, 64]


@pytest.mark.parametrize("bad", [42, None, "print"])
def test_spawn_rejects_non_callables(make_runtime, global_runtime, bad):
    runtime = make_runtime(threads=1)
    veda.init(veda.Config.builder().threads(1).build())
    message = rf"spawn\(\) needs a callable, got {type(bad).__name__} \({bad!r}\)"
    with pytest.raises(TypeError, match=message):
        runtime.spawn(bad)
    with pytest.raises(TypeError, match=message):
        veda.spawn(bad)
    with pytest.raises(TypeError, match=r"try_spawn\(\) needs a callable"):
        runtime.try_spawn(1.0, bad)


def test_spawn_from_many_threads(make_runtime):
    runtime = make_runtime(threads=2)
    results = {}

    def producer(k):
        futures = [runtime.spawn(pow, k, i) for i in range(500)]
        results[k] = [f.result(timeout=WAIT) for f in futures]

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 3)
    assert sorted(results) == list(range(8))
    for k, values in results.items():
        assert values == [k**i for i in range(500)]


def test_scope_joins_and_reraises_the_first_error(make_runtime):
    runtime = make_runtime(threads=2)

    def fail(msg):
        raise ValueError(msg)

    with pytest.raises(ValueError, match="first"):
        with runtime.scope() as scope:
            scope.spawn(fail, "first")
            ok = scope.spawn(pow, 2, 2)
            scope.spawn(fail, "second")
    assert ok.result() == 4 and len(scope.futures) == 3


# --- scheduler behaviour ------------------------------------------------------


def test_nested_spawn_and_wait_with_one_thread(global_runtime):
    veda.init(veda.Config.builder().threads(1).build())

    def fib(n):
        if n < 2:
            return n
        a = veda.spawn(fib, n - 1)
        b = veda.spawn(fib, n - 2)
        return a.result() + b.result()

    assert veda.spawn(fib, 12).result(timeout=30) == 144


def test_shutdown_wait_runs_all_queued_work(make_runtime, gate):
    runtime = make_runtime(threads=1, telemetry=True)
    blocker = spawn_blocker(runtime, gate)
    ran = []
    queued = [runtime.spawn(ran.append, i) for i in range(50)]
    assert runtime.telemetry.snapshot().tasks_pending == 50

    stopper = threading.Thread(target=runtime.shutdown, kwargs={"wait": True})
    stopper.start()
    deadline = time.monotonic() + WAIT
    while not runtime.is_shutdown and time.monotonic() < deadline:
        time.sleep(0.001)
    assert runtime.is_shutdown
    with pytest.raises(RuntimeError, match="shut down"):
        runtime.spawn(int)  # refused while draining
    gate.release()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert blocker.result(timeout=0) == "blocker"
    assert all(f.done() and not f.cancelled() for f in queued)
    assert sorted(ran) == list(range(50))


def test_shutdown_nowait_cancels_queued_work(make_runtime, gate):
    runtime = make_runtime(threads=1)
    blocker = spawn_blocker(runtime, gate)
    ran = []
    queued = [runtime.spawn(ran.append, i) for i in range(20)]
    callbacks = []
    queued[0].add_done_callback(callbacks.append)

    stopper = threading.Thread(target=runtime.shutdown, kwargs={"wait": False})
    stopper.start()
    deadline = time.monotonic() + WAIT
    while not runtime.is_shutdown and time.monotonic() < deadline:  # the cancel has begun
        time.sleep(0.001)
    assert runtime.is_shutdown
    gate.release()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert blocker.result(timeout=0) == "blocker"  # the running task finished
    assert all(f.cancelled() for f in queued)
    with pytest.raises(cf.CancelledError):
        queued[-1].result(timeout=0)
    assert ran == []
    assert callbacks == [queued[0]]
    done, not_done = cf.wait(queued, timeout=0)
    assert not not_done


def test_full_queue_blocks_spawn_until_there_is_room(make_runtime, gate):
    runtime = make_runtime(threads=1, queue_size=2)
    blocker = spawn_blocker(runtime, gate)
    queued = [runtime.spawn(pow, 2, i) for i in range(2)]  # fills the queue

    returned = threading.Event()
    extra = []

    def producer():
        extra.append(runtime.spawn(pow, 3, 2))
        returned.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not returned.wait(0.3), "spawn returned although the queue was full"
    gate.release()  # the worker drains the queue: room for the blocked spawn
    assert returned.wait(WAIT)
    thread.join(WAIT)
    assert blocker.result(timeout=WAIT) == "blocker"
    assert [f.result(timeout=WAIT) for f in queued] == [1, 2]
    assert extra[0].result(timeout=WAIT) == 9


def test_spawn_blocked_on_a_full_queue_fails_at_shutdown(make_runtime, gate):
    runtime = make_runtime(threads=1, queue_size=1)
    spawn_blocker(runtime, gate)
    queued = runtime.spawn(int)
    outcome = []

    def producer():
        try:
            outcome.append(runtime.spawn(int, 5))
        except RuntimeError as error:
            outcome.append(error)

    thread = threading.Thread(target=producer)
    thread.start()
    thread.join(0.2)
    assert thread.is_alive(), "spawn() did not block on the full queue"
    stopper = threading.Thread(target=runtime.shutdown, kwargs={"wait": False})
    stopper.start()
    thread.join(WAIT)  # woken by the shutdown, while the blocker still runs
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError)
    assert "shut down" in str(outcome[0])
    gate.release()
    stopper.join(WAIT)
    assert queued.cancelled()


def test_try_spawn_raises_queue_full_after_timeout(make_runtime, gate):
    runtime = make_runtime(threads=1, queue_size=2)
    spawn_blocker(runtime, gate)
    for i in range(2):
        runtime.try_spawn(0, pow, 2, i)  # room: accepted at once

    started = time.monotonic()
    with pytest.raises(veda.QueueFullError, match=r"the task queue stayed full \(2 tasks\) for 0\.2 s"):
        runtime.try_spawn(0.2, pow, 2, 2)
    assert time.monotonic() - started >= 0.15  # it did wait for room
    with pytest.raises(veda.QueueFullError, match=r"stayed full \(2 tasks\) for 0 s"):
        runtime.try_spawn(0, pow, 2, 2)
    assert issubclass(veda.QueueFullError, RuntimeError)

    gate.release()
    assert runtime.try_spawn(WAIT, pow, 2, 10).result(timeout=WAIT) == 1024


@pytest.mark.parametrize("timeout", [float("inf"), 1e12])
def test_result_with_an_unbounded_timeout_waits(make_runtime, gate, timeout):
    # A timeout beyond the clock's range means "no limit", not "already expired".
    runtime = make_runtime(threads=1)
    future = spawn_blocker(runtime, gate)
    release = threading.Timer(0.2, gate.release)
    release.start()
    try:
        assert future.result(timeout=timeout) == "blocker"
        assert future.exception(timeout=timeout) is None
    finally:
        release.cancel()


@pytest.mark.parametrize("timeout", [float("inf"), 1e12])
def test_try_spawn_with_an_unbounded_timeout_waits_for_room(make_runtime, gate, timeout):
    runtime = make_runtime(threads=1, queue_size=1)
    spawn_blocker(runtime, gate)
    runtime.spawn(int)  # fills the queue
    release = threading.Timer(0.2, gate.release)
    release.start()
    try:
        assert runtime.try_spawn(timeout, pow, 2, 3).result(timeout=WAIT) == 8
    finally:
        release.cancel()


@pytest.mark.parametrize("timeout", ["1", None, float("nan")])
def test_try_spawn_rejects_bad_timeouts(make_runtime, timeout):
    runtime = make_runtime(threads=1)
    with pytest.raises(TypeError, match=r"try_spawn\(\) timeout must be a number of seconds"):
        runtime.try_spawn(timeout, int)


def test_tasks_run_in_parallel(make_runtime):
    runtime = make_runtime(threads=4)
    started = time.perf_counter()
    futures = [runtime.spawn(time.sleep, 0.01) for _ in range(200)]
    for f in futures:
        f.result(timeout=30)
    elapsed = time.perf_counter() - started
    # Serially this takes 2 s; 4 workers need about 0.5 s. Not a benchmark:
    # the bound only shows that the sleeps overlap.
    assert elapsed < 1.2, f"200 x 10 ms on 4 threads took {elapsed:.2f} s"


@pytest.mark.parametrize("telemetry", [False, True])
def test_interpreter_exit_with_live_runtime_and_queued_tasks(telemetry):
    result = run_python(
        f"""
        import sys, time
        import pyveda as veda

        veda.init(veda.Config.builder().threads(2).telemetry({telemetry}).collect_interval(0.05).build())
        def slow():
            time.sleep(0.3)
            print("running task finished", flush=True)
        veda.spawn(slow)
        for _ in range(1000):
            veda.spawn(time.sleep, 0.01)
        if veda.get_runtime().telemetry:
            veda.get_runtime().telemetry.start()
            veda.get_runtime().telemetry.add_callback(lambda s: None)
        other = veda.Runtime(veda.Config.builder().threads(1).build())
        for _ in range(100):
            other.spawn(time.sleep, 0.01)
        time.sleep(0.1)
        print("leaving", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    for word in ("Fatal", "Aborted", "Segmentation", "Traceback", "terminate"):
        assert word not in result.stderr, result.stderr
    assert result.stdout.splitlines() == ["leaving", "running task finished"]


def test_interpreter_exit_after_shutdown_from_inside_a_task():
    # shutdown() called by a task can only start the shutdown (a worker cannot
    # join itself); the workers, still draining the queue, must be joined
    # before the interpreter finalises.
    result = run_python(
        """
        import time
        import pyveda as veda

        veda.init(veda.Config.builder().threads(2).build())
        stopped = veda.spawn(veda.shutdown)
        for _ in range(40):
            veda.spawn(time.sleep, 0.05)
        stopped.result(timeout=10)
        print("leaving", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    for word in ("Fatal", "Aborted", "Segmentation", "leaked"):
        assert word not in result.stderr, result.stderr
    assert result.stdout.strip() == "leaving"


def test_ctrl_c_never_lands_in_a_task_while_the_main_thread_waits(make_runtime):
    import _thread

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    runtime = make_runtime(threads=1)
    started, release = threading.Event(), threading.Event()
    busy = runtime.spawn(lambda: started.set() or release.wait(30))  # holds the only worker
    assert started.wait(10)

    def queued():  # the main thread could take this one while it waits; it must not
        time.sleep(0.5)
        return threading.get_ident()

    future = runtime.spawn(queued)
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            future.result(timeout=20)
    finally:
        timer.cancel()
        release.set()
    assert busy.result(timeout=10) is True
    ran_on = future.result(timeout=10)  # the task ran to its end, on the worker
    assert ran_on != threading.get_ident()
    assert runtime._core.failed == 0


_NEVER_ENDING = """
import threading, time
import pyveda as veda

started = threading.Event()
def forever():
    started.set()
    while True:
        time.sleep(0.05)
veda.spawn(forever)
started.wait()
print("leaving", flush=True)
"""


def test_ctrl_c_at_exit_leaves_a_task_that_never_returns():
    import signal

    proc = subprocess.Popen([sys.executable, "-c", _NEVER_ENDING], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline() == "leaving\n"
        # The exit hook waits for the running task and, after a second, says how to stop waiting.
        assert proc.stderr.readline() == (
            "pyveda: waiting for 1 running task(s) to finish before exiting; press Ctrl-C to exit without them\n"
        )
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err == "pyveda: exiting without waiting for 1 running task(s)\n"


def test_exit_waits_for_a_running_task_and_says_so_when_it_is_slow():
    result = run_python(
        """
        import threading, time
        import pyveda as veda

        started = threading.Event()
        def slow():
            started.set()
            time.sleep(1.5)
            print("slow task finished", flush=True)
        veda.spawn(slow)
        started.wait()
        print("leaving", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["leaving", "slow task finished"]
    assert "pyveda: waiting for 1 running task(s) to finish before exiting" in result.stderr


def test_interpreter_exit_with_a_collected_runtime():
    # A runtime dropped without shutdown() is joined when it is collected.
    result = run_python(
        """
        import gc, time
        import pyveda as veda
        runtime = veda.Runtime(veda.Config.builder().threads(2).build())
        futures = [runtime.spawn(time.sleep, 0.001) for _ in range(20)]
        del runtime
        gc.collect()
        print("ok", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "Fatal" not in result.stderr and "Aborted" not in result.stderr
    assert result.stdout.strip() == "ok"


def test_idle_runtime_uses_no_cpu(make_runtime):
    runtime = make_runtime(threads=4)
    for f in [runtime.spawn(pow, 2, i) for i in range(100)]:
        f.result(timeout=WAIT)
    time.sleep(0.2)  # past the workers' short spin before they sleep
    before = time.process_time()
    time.sleep(1.0)
    used = time.process_time() - before
    assert used < 0.05, f"an idle runtime with 4 workers used {used:.3f} s of CPU in 1 s"


@pytest.mark.parametrize("timeout", [None, 60.0])
def test_ctrl_c_reaches_a_main_thread_waiting_in_result(make_runtime, timeout):
    import _thread

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    runtime = make_runtime(threads=1)
    started, release = threading.Event(), threading.Event()

    def task():
        started.set()
        return release.wait(30)

    future = runtime.spawn(task)
    assert started.wait(10)  # running on the worker, so the main thread only waits (it cannot take the task)
    timer = threading.Timer(0.3, _thread.interrupt_main)  # what Ctrl-C does: SIGINT to the main thread
    timer.start()
    began = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            future.result(timeout=timeout)
        took = time.monotonic() - began
    finally:
        timer.cancel()
        release.set()
    assert took < 10  # promptly, not after the task's 30 s
    assert future.result(timeout=10) is True  # the task itself was not touched
    assert not future.exception()
