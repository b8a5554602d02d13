"""pyveda.runtime.Future's two modes: native until something needs the base class's fields, then attached.

Every state a task can be in when concurrent.futures' own machinery first
touches the future (pending, running, returned, raised, cancelled before and
after the runner saw it) must read the same before and after, and from then
on behave exactly as a concurrent.futures.Future.
"""

import concurrent.futures as cf
import gc
import threading
import weakref

import pytest

import pyveda as veda
from pyveda import _core

WAIT = 10


def observed(future):
    """What the public API says about a done-or-not future, without waiting."""
    view = {"done": future.done(), "running": future.running(), "cancelled": future.cancelled()}
    if future.done():
        try:
            view["exception"] = repr(future.exception(timeout=0))
            view["result"] = future.result(timeout=0) if future.exception(timeout=0) is None else None
        except cf.CancelledError:
            view["exception"] = "cancelled"
    return view


def attach(future):
    """Makes the future create its base-class fields, as concurrent.futures.wait() does."""
    cf.wait([future], timeout=0)
    assert future._attached


@pytest.fixture
def one_thread(make_runtime):
    return make_runtime(threads=1)


@pytest.fixture
def blocked(one_thread):
    """A runtime whose only worker is held by a task until release() is called."""
    started, release = threading.Event(), threading.Event()

    def hold():
        started.set()
        assert release.wait(WAIT)
        return "held"

    blocker = one_thread.spawn(hold)
    assert started.wait(WAIT)
    yield one_thread, blocker, release
    release.set()


def test_a_future_stays_native_on_the_fast_path(one_thread):
    future = one_thread.spawn(sum, [1, 2, 3])
    assert future.result(timeout=WAIT) == 6
    assert future.done() and not future.running() and not future.cancelled()
    assert future.exception() is None
    assert not future._attached  # no condition, waiter list or callback list was created
    assert isinstance(future, cf.Future)


@pytest.mark.parametrize("outcome", ["returned", "raised"])
def test_attaching_a_finished_future_keeps_its_outcome(one_thread, outcome):
    def task():
        if outcome == "raised":
            raise KeyError("boom")
        return {"answer": 42}

    future = one_thread.spawn(task)
    cf.wait([future], timeout=WAIT)  # attaches, then waits through the base class
    assert future._attached and future.done()
    before = observed(future)
    attach(future)
    assert observed(future) == before
    if outcome == "raised":
        with pytest.raises(KeyError, match="boom"):
            future.result()
        assert isinstance(future.exception(), KeyError)
    else:
        assert future.result() == {"answer": 42}
    calls = []
    future.add_done_callback(calls.append)  # done already: called at once
    assert calls == [future]


def test_attaching_a_pending_future_then_running_it(blocked):
    runtime, _, release = blocked
    future = runtime.spawn(pow, 2, 10)
    native = observed(future)
    calls = []
    future.add_done_callback(calls.append)  # attaches while queued
    assert future._attached and observed(future) == native == {"done": False, "running": False, "cancelled": False}
    release.set()
    assert future.result(timeout=WAIT) == 1024
    assert cf.wait([future], timeout=WAIT).done == {future}
    pause = threading.Event()
    for _ in range(WAIT * 100):  # the callback runs on the worker right after completion
        if calls:
            break
        pause.wait(0.01)
    assert calls == [future]


def test_attaching_a_running_future(blocked):
    _, blocker, release = blocked
    assert blocker.running() and not blocker._attached
    attach(blocker)
    assert blocker.running() and not blocker.done()
    assert blocker.cancel() is False
    release.set()
    done, not_done = cf.wait([blocker], timeout=WAIT)
    assert done == {blocker} and not not_done
    assert blocker.result() == "held"


def test_cancelled_before_attaching_and_before_the_runner_saw_it(blocked):
    runtime, _, release = blocked
    ran = []
    future = runtime.spawn(ran.append, 1)
    assert future.cancel() is True and not future._attached
    before = observed(future)
    attach(future)
    assert observed(future) == before
    assert before["cancelled"] and before["exception"] == "cancelled"
    # concurrent.futures.wait() counts a cancelled future as done only once its
    # executor has seen the cancellation: here, when the worker skips it.
    assert cf.wait([future], timeout=0).not_done == {future}
    release.set()
    assert cf.wait([future], timeout=WAIT).done == {future}
    assert list(cf.as_completed([future], timeout=WAIT)) == [future]
    runtime.shutdown(wait=True)
    assert ran == []


def test_cancelled_and_skipped_before_attaching(blocked):
    runtime, blocker, release = blocked
    future = runtime.spawn(print, "never")
    assert future.cancel()
    release.set()
    assert blocker.result(timeout=WAIT) == "held"
    runtime.spawn(int).result(timeout=WAIT)  # the worker has passed the cancelled task by now
    assert not future._attached
    assert cf.wait([future], timeout=0).done == {future}
    assert future.cancelled()
    with pytest.raises(cf.CancelledError):
        future.result(timeout=0)


def test_cancel_after_attaching_goes_through_the_base_class(blocked):
    runtime, _, release = blocked
    ran = []
    future = runtime.spawn(ran.append, 1)
    calls = []
    future.add_done_callback(calls.append)
    assert future.cancel() is True and future.cancelled()
    assert calls == [future]  # the base class runs the callbacks of a cancelled future
    release.set()
    runtime.shutdown(wait=True)
    assert ran == [] and cf.wait([future], timeout=0).done == {future}


def test_shutdown_without_wait_cancels_queued_futures_in_either_mode(blocked):
    runtime, _, release = blocked
    native = runtime.spawn(int)
    attached = runtime.spawn(int)
    attach(attached)
    release.set()
    runtime.shutdown(wait=False)
    for future in (native, attached):
        if future.cancelled():  # queued when shutdown came: cancelled and seen as such
            assert cf.wait([future], timeout=WAIT).done == {future}
        else:  # the worker got to it first
            assert future.result(timeout=WAIT) == 0


def test_attaching_races_completion_without_losing_a_callback(make_runtime):
    runtime = make_runtime(threads=2)
    rounds = 2000
    futures = [runtime.spawn(pow, i, 2) for i in range(rounds)]
    calls = [0] * rounds
    lock = threading.Lock()

    def record(i):
        def callback(future):
            with lock:
                calls[i] += 1
        return callback

    for i, future in enumerate(futures):  # some still queued, some running, some done
        future.add_done_callback(record(i))
    assert [f.result(timeout=WAIT) for f in futures] == [i * i for i in range(rounds)]
    runtime.shutdown(wait=True)
    assert calls == [1] * rounds


def test_a_cycle_through_the_exception_is_collected(one_thread):
    def make_cycle():
        box = []

        def task():
            raise ValueError(box)  # future -> exception -> box -> future

        future = one_thread.spawn(task)
        box.append(future)
        assert isinstance(future.exception(timeout=WAIT), ValueError)
        return weakref.ref(future)

    ref = make_cycle()
    gc.collect()
    assert ref() is None, "the future's native slots are not visible to the garbage collector"


def test_submit_takes_only_pyveda_futures(one_thread):
    with pytest.raises(TypeError, match="FutureCore"):
        one_thread._core.submit(cf.Future(), int, (), {})
    with pytest.raises(TypeError, match="FutureCore"):
        one_thread._core.wait(object(), 0.0, False)


def test_unknown_attributes_still_raise(one_thread):
    future = one_thread.spawn(int)
    with pytest.raises(AttributeError, match="'Future' object has no attribute 'no_such_thing'"):
        future.no_such_thing  # noqa: B018
    assert not future._attached
    future.result(timeout=WAIT)


def test_the_native_base_is_package_internal():
    assert issubclass(veda.Future, _core.FutureCore) and issubclass(veda.Future, cf.Future)
