"""The native instruments (pyveda._core.Timer, InprogressTracker, ExceptionCounter),
their decorated-function wrapper, their allocation-free bound with-methods and
the native Enum.state(): what Python can observe of them beyond
test_promclient_api.py's prometheus_client behaviour."""

import asyncio
import contextlib
import functools
import gc
import inspect
import pickle
import re
import sys
import threading
import traceback
import weakref

import pytest

from pyveda import _core
from pyveda.telemetry import Counter, Gauge, Histogram, TracingSystem
from pyveda.telemetry.instrument import ExceptionCounter, InprogressTracker, Timer
from pyveda.telemetry.states import Enum

# An unregistered metric and a module-level decorated function, for pickling by reference.
_PICKLED = Histogram("pickled_seconds", "Pickled.", registry=None)


@_PICKLED.time()
def module_level_timed(x):
    """Doubles."""
    return 2 * x


def _instruments(registry):
    """(decorator factory, reader of how many times it recorded) per kind of instrument."""
    h = Histogram("n_seconds", "N", registry=registry)
    g = Gauge("n_last_seconds", "N", registry=registry)
    t = Gauge("n_inprogress", "N", registry=registry)
    c = Counter("n_errors_total", "N", registry=registry)
    return {
        "histogram_time": (h.time, h.get_count),
        "gauge_time": (g.time, lambda: int(g.get() > 0)),
        "track_inprogress": (t.track_inprogress, t.get),
        "count_exceptions": (c.count_exceptions, c.get),
    }


KINDS = ["histogram_time", "gauge_time", "track_inprogress", "count_exceptions"]


# --- the wrapper of a decorated plain function -------------------------------------


class TestWrapper:
    def test_is_native_and_keeps_functools_metadata(self, registry):
        h = Histogram("w_seconds", "W", registry=registry)

        def original(a, b: int = 2, *rest, key="k", **extra) -> int:
            """Adds."""
            return a + b

        original.custom = "attribute"
        wrapped = h.time()(original)
        assert type(wrapped) is _core.InstrumentedFunction
        assert wrapped.__name__ == "original" and wrapped.__doc__ == "Adds."
        assert wrapped.__qualname__ == original.__qualname__ and wrapped.__module__ == __name__
        assert wrapped.__wrapped__ is original and wrapped.custom == "attribute"
        assert inspect.signature(wrapped) == inspect.signature(original)
        assert wrapped(1, b=3) == 4 and h.get_count() == 1
        assert "instrumented by Timer(" in repr(wrapped)

    @pytest.mark.parametrize("kind", KINDS)
    def test_decorated_method_binds_self(self, registry, kind):
        decorate, recorded = _instruments(registry)[kind]

        class Service:
            def __init__(self):
                self.calls = []

            @decorate()
            def handle(self, request, *, flag=False):
                self.calls.append((request, flag))
                return self

        service = Service()
        assert service.handle("a", flag=True) is service
        assert Service.handle(service, "b") is service  # through the class: unbound
        bound = service.handle
        assert inspect.ismethod(bound) and bound.__self__ is service
        assert bound("c") is service
        assert service.calls == [("a", True), ("b", False), ("c", False)]
        assert list(inspect.signature(bound).parameters) == ["request", "flag"]
        if kind in ("histogram_time",):
            assert recorded() == 3

    def test_staticmethod_and_classmethod_above_the_decorator(self, registry):
        h = Histogram("w_seconds", "W", registry=registry)

        class K:
            @staticmethod
            @h.time()
            def s(x):
                return x

            @classmethod
            @h.time()
            def c(cls, x):
                return cls, x

        assert K.s(1) == 1 and K().s(2) == 2
        assert K.c(3) == (K, 3)
        assert h.get_count() == 3

    @pytest.mark.parametrize("kind", KINDS)
    def test_exception_propagates_unchanged_with_its_traceback(self, registry, kind):
        decorate, _ = _instruments(registry)[kind]
        error = KeyError("boom")

        def fail():
            raise error

        wrapped = decorate()(fail)
        with pytest.raises(KeyError) as caught:
            wrapped()
        assert caught.value is error
        frames = traceback.extract_tb(caught.value.__traceback__)
        assert frames[-1].name == "fail" and frames[-1].line == "raise error"
        assert caught.value.__context__ is None and caught.value.__cause__ is None

    def test_exception_counter_counts_only_matching_types(self, registry):
        c = Counter("w_errors_total", "W", registry=registry)

        @c.count_exceptions((KeyError, OSError))
        def fail(kind):
            raise kind("x")

        for kind in (KeyError, FileNotFoundError, ValueError, KeyError):
            with pytest.raises(kind):
                fail(kind)
        assert c.get() == 3

    def test_a_failing_record_gets_the_call_error_as_context(self, registry):
        # A timer of a labelled metric raises the metric's ValueError when it records,
        # as `finally:` would: the function's own exception becomes its __context__.
        h = Histogram("w_seconds", "W", ["route"], registry=registry)

        @h.time()
        def fail():
            raise KeyError("first")

        with pytest.raises(ValueError, match="select a series") as caught:
            fail()
        assert isinstance(caught.value.__context__, KeyError)
        assert caught.value.__context__.__traceback__ is not None

    def test_a_failing_record_drops_the_result(self, registry):
        h = Histogram("w_seconds", "W", ["route"], registry=registry)
        result = object()
        before = sys.getrefcount(result)
        wrapped = h.time()(lambda: result)
        for _ in range(100):
            with pytest.raises(ValueError):
                wrapped()
        assert sys.getrefcount(result) == before

    def test_pickled_by_reference_as_a_function(self):
        assert pickle.loads(pickle.dumps(module_level_timed)) is module_level_timed
        assert module_level_timed(4) == 8
        import copy

        assert copy.copy(module_level_timed) is module_level_timed
        assert copy.deepcopy(module_level_timed) is module_level_timed

    def test_weakref_and_garbage_collection(self, registry):
        h = Histogram("w_seconds", "W", registry=registry)

        def f():
            return 1

        wrapped = h.time()(f)
        wrapped.me = wrapped  # a cycle through its __dict__
        ref_wrapper, ref_function = weakref.ref(wrapped), weakref.ref(f)
        del wrapped, f
        gc.collect()
        assert ref_wrapper() is None and ref_function() is None

    def test_many_calls_leak_nothing(self, registry):
        h = Histogram("w_seconds", "W", registry=registry)
        argument = object()
        wrapped = h.time()(lambda x, *, y=None: x)
        before = (sys.getrefcount(argument), sys.getrefcount(h), sys.getrefcount(wrapped))
        for _ in range(1000):
            assert wrapped(argument, y=argument) is argument
        assert (sys.getrefcount(argument), sys.getrefcount(h), sys.getrefcount(wrapped)) == before

    def test_threads_share_one_decorated_function(self, registry):
        g = Gauge("w_inprogress", "W", registry=registry)
        h = Histogram("w_seconds", "W", registry=registry)

        @g.track_inprogress()
        @h.time()
        def work(i):
            return i

        threads = [threading.Thread(target=lambda: [work(i) for i in range(500)]) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert h.get_count() == 2000 and g.get() == 0

    def test_the_current_span_is_the_exemplar(self, registry):
        tracing = TracingSystem()
        h = Histogram("w_seconds", "W", buckets=(1000.0,), registry=registry)
        wrapped = h.time()(lambda: None)
        with tracing.span("work") as span:
            wrapped()
        text = registry.generate_openmetrics()
        assert f'trace_id="{span.context.trace_id}",span_id="{span.context.span_id}"' in text


# --- with / async with -------------------------------------------------------------


class TestWithMethods:
    def test_a_timer_object_used_sequentially(self, registry):
        h = Histogram("s_seconds", "S", registry=registry)
        timer = h.time()
        durations = []
        for _ in range(3):
            with timer as entered:
                assert entered is timer
            durations.append(timer.duration)
        assert h.get_count() == 3 and h.get_sum() == pytest.approx(sum(durations))
        assert all(d >= 0 for d in durations)

    @pytest.mark.parametrize("kind", KINDS)
    def test_async_with(self, registry, kind):
        decorate, recorded = _instruments(registry)[kind]

        async def main():
            manager = decorate()
            async with manager as entered:
                await asyncio.sleep(0)
            return manager, entered

        manager, entered = asyncio.run(main())
        assert entered is (manager if isinstance(manager, Timer) else None)
        if kind == "histogram_time":
            assert recorded() == 1

    def test_the_awaitables_are_already_complete(self, registry):
        h = Histogram("s_seconds", "S", registry=registry)
        timer = h.time()
        awaitable = timer.__aenter__()
        assert inspect.isawaitable(awaitable)
        with pytest.raises(StopIteration) as stop:
            next(awaitable.__await__())
        assert stop.value.value is timer
        exit_awaitable = timer.__aexit__(None, None, None)
        with pytest.raises(StopIteration) as stop:
            exit_awaitable.__await__().send(None)
        assert stop.value.value is False and h.get_count() == 1

    def test_async_with_propagates_and_counts(self, registry):
        c = Counter("s_errors_total", "S", registry=registry)

        async def main():
            async with c.count_exceptions(ValueError):
                raise ValueError("x")

        with pytest.raises(ValueError):
            asyncio.run(main())
        assert c.get() == 1

    def test_bound_methods_look_like_methods(self, registry):
        h = Histogram("s_seconds", "S", registry=registry)
        timer = h.time()
        exit_method = timer.__exit__
        assert exit_method.__self__ is timer and exit_method.__name__ == "__exit__"
        assert exit_method == timer.__exit__ and hash(exit_method) == hash(timer.__exit__)
        assert exit_method != timer.__enter__
        assert "Records the seconds" in exit_method.__doc__
        assert "built-in method __exit__ of" in repr(exit_method)
        assert list(inspect.signature(Timer.__exit__).parameters) == ["self", "exc_type", "exc", "traceback"]
        assert Timer.__enter__.__qualname__ == "Timer.__enter__" and Timer.__enter__.__objclass__ is Timer
        assert Timer.__enter__(timer) is timer  # called through the class
        assert Timer.__exit__(timer, None, None, None) is False
        assert h.get_count() == 1

    def test_exit_stack(self, registry):
        h = Histogram("s_seconds", "S", registry=registry)
        g = Gauge("s_inprogress", "S", registry=registry)
        with contextlib.ExitStack() as stack:
            assert stack.enter_context(h.time()) is not None
            assert stack.enter_context(g.track_inprogress()) is None
            assert g.get() == 1
        assert g.get() == 0 and h.get_count() == 1

    def test_with_blocks_leak_nothing(self, registry):
        h = Histogram("s_seconds", "S", registry=registry)
        g = Gauge("s_inprogress", "S", registry=registry)
        c = Counter("s_errors_total", "S", registry=registry)
        before = [sys.getrefcount(m) for m in (h, g, c)]
        for _ in range(1000):
            with h.time(), g.track_inprogress(), c.count_exceptions():
                pass
            with pytest.raises(KeyError), c.count_exceptions():
                raise KeyError
        assert [sys.getrefcount(m) for m in (h, g, c)] == before
        assert h.get_count() == 1000 and g.get() == 0 and c.get() == 1000

    def test_a_python_target_in_a_reference_cycle_is_collected(self):
        class Job:
            def __init__(self):
                self.seen = []
                self.timer = Timer(self, "record")  # the job holds its timer, the timer its job
                self.stop = self.timer.__exit__  # and a bound method of it

            def record(self, seconds):
                self.seen.append(seconds)

        job = Job()
        with job.timer:
            pass
        assert len(job.seen) == 1
        ref = weakref.ref(job)
        del job
        gc.collect()
        assert ref() is None

    def test_python_targets_call_the_methods(self):
        class Recorder:
            def __init__(self):
                self.calls = []

            def observe(self, seconds):
                self.calls.append(("observe", seconds))

            def inc(self):
                self.calls.append("inc")

            def dec(self):
                self.calls.append("dec")

        r = Recorder()
        with Timer(r, "observe"), InprogressTracker(r):
            pass
        with pytest.raises(OSError), ExceptionCounter(r, OSError):
            raise OSError
        assert r.calls[0] == "inc" and r.calls[1] == "dec" and r.calls[2][0] == "observe" and r.calls[3] == "inc"
        assert repr(InprogressTracker(r)).startswith("InprogressTracker(<")
        assert repr(ExceptionCounter(r, OSError)).endswith(", <class 'OSError'>)")

    def test_timer_labels_inside_a_decorated_function(self, registry):
        # As prometheus_client: labels() on the timer picks the series for good, also for the
        # decorated function's later calls; choosing again is the series' own error.
        h = Histogram("s_seconds", "S", ["status"], registry=registry)
        timer = h.time()

        @timer
        def handle(status=None):
            if status is not None:
                timer.labels(status)

        handle("200")
        handle()
        assert h.labels("200").get_count() == 2
        with pytest.raises(ValueError, match="already one labelled series"):
            handle("500")
        assert h.labels("200").get_count() == 3


# --- bad input ---------------------------------------------------------------------


class TestBadInput:
    @pytest.mark.parametrize("kind", KINDS)
    def test_decorating_a_non_callable(self, registry, kind):
        decorate, _ = _instruments(registry)[kind]
        name = type(decorate()).__name__
        with pytest.raises(TypeError, match=re.escape(f"{name} decorates a function, got str ('f')")):
            decorate()("f")

    def test_decorating_takes_one_function(self, registry):
        h = Histogram("b_seconds", "B", registry=registry)
        with pytest.raises(TypeError, match=r"Timer\(f\) decorates one function, got 2 positional and 0 keyword"):
            h.time()(print, print)
        with pytest.raises(TypeError, match=r"Timer\(f\) decorates one function, got 0 positional and 1 keyword"):
            h.time()(f=print)

    def test_count_exceptions_arguments(self, registry):
        c = Counter("b_errors_total", "B", registry=registry)
        assert c.count_exceptions(exception=KeyError)._exception is KeyError
        with pytest.raises(TypeError, match=r"count_exceptions\(\) takes an exception class or a tuple of them, got 3"):
            c.count_exceptions(exception=3)
        with pytest.raises(TypeError, match=r"got \(<class 'KeyError'>, \(<class 'OSError'>,\)\)"):
            c.count_exceptions((KeyError, (OSError,)))  # a nested tuple is refused
        with pytest.raises(TypeError, match=r"count_exceptions\(\) takes at most 1 argument \(exception\), got 2"):
            c.count_exceptions(KeyError, OSError)
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'exceptions' \(allowed: exception\)"):
            c.count_exceptions(exceptions=KeyError)
        with pytest.raises(TypeError, match=r"count_exceptions\(\) takes an exception class or a tuple of them"):
            ExceptionCounter(c, "KeyError")

    def test_timer_constructor(self, registry):
        h = Histogram("b_seconds", "B", registry=registry)
        with pytest.raises(TypeError, match=r"Timer: callback_name must be a str naming the method to record with, got int"):
            Timer(h, 3)
        with pytest.raises(TypeError, match=r"Timer: Histogram has no method 'get_count2' to record with"):
            Timer(h, "get_count2")
        with pytest.raises(TypeError, match=r"Timer: str has no method 'observe' to record with"):
            Timer("h", "observe")

    def test_with_methods_arguments(self, registry):
        h = Histogram("b_seconds", "B", registry=registry)
        timer = h.time()
        with pytest.raises(RuntimeError, match=r"Timer: __exit__\(\) without __enter__\(\)"):
            timer.__exit__(None, None, None)
        with pytest.raises(TypeError, match=r"__exit__\(\) takes 3 arguments \(exc_type, exc, traceback\), got 1"):
            timer.__exit__(None)
        with pytest.raises(TypeError, match=r"__aexit__\(\) takes 3 arguments"):
            timer.__aexit__()
        with pytest.raises(TypeError, match=r"__enter__\(\) takes no arguments \(1 given\)"):
            timer.__enter__(1)
        with pytest.raises(TypeError, match=r"__exit__\(\) takes no keyword arguments"):
            timer.__exit__(None, None, traceback=None, exc=None)
        with pytest.raises(TypeError, match=r"descriptor '__enter__' for 'pyveda._core.Timer' objects doesn't apply to a 'int'"):
            Timer.__enter__(3)
        with pytest.raises(TypeError, match=r"unbound method pyveda._core.Timer.__exit__\(\) needs an argument"):
            Timer.__exit__()
        assert h.get_count() == 0

    def test_timer_labels_must_keep_the_series_kind(self, registry):
        h = Histogram("b_seconds", "B", ["k"], registry=registry)
        timer = h.time()
        with pytest.raises(ValueError, match="label"):  # the metric's own error for bad label values
            timer.labels("a", "b")
        assert timer._metric is h

    def test_set_instrument_decorator_takes_a_callable(self):
        with pytest.raises(TypeError, match=r"_set_instrument_decorator\(\) takes a callable, got int"):
            _core._set_instrument_decorator(3)


# --- Enum.state() ------------------------------------------------------------------


class TestEnumState:
    def test_native_method_on_the_class_itself(self):
        method = Enum.__dict__["state"]
        assert type(method).__name__ == "method_descriptor" and method.__objclass__ is Enum

    def test_error_suppresses_the_context_it_was_raised_in(self, registry):
        e = Enum("e_state", "E", states=["a", "b"], registry=registry)
        try:
            raise KeyError("handling")
        except KeyError:
            with pytest.raises(ValueError, match=r"Enum 'e_state': 'c' is not one of its states \['a', 'b'\]") as caught:
                e.state("c")
        assert caught.value.__suppress_context__ and caught.value.__cause__ is None

    def test_unhashable_state(self, registry):
        e = Enum("e_state", "E", states=["a", "b"], registry=registry)
        with pytest.raises(ValueError, match=r"\['x'\] is not one of its states"):
            e.state(["x"])
        e.state("b")
        assert e._value == 1

    def test_the_bare_native_type(self):
        state = _core.EnumState()
        with pytest.raises(ValueError, match=r"'x' is not one of the states"):
            state.state("x")
        state._index = {"x": 7}
        state.state("x")
        assert state._value == 7
        with pytest.raises(TypeError, match=r"_index must be a dict of state to index, got list"):
            state._index = []
