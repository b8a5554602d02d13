"""prometheus_client 0.26's metric API on pyveda.telemetry: timers, trackers,
exception counters, set_function, constructor options, error rules and
series removal. Values are read back through the exposition or get()."""

import asyncio
import inspect
import re
import time

import pytest

from pyveda.telemetry import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from pyveda.telemetry import metrics
from pyveda.telemetry.instrument import ExceptionCounter, InprogressTracker, Timer
from pyveda.telemetry.metrics import Summary

SLEEP = 0.05


def sample(registry, line_start):
    """The value of the exposition line starting with ``line_start`` (name and labels), or None."""
    for line in registry.generate_prometheus().splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


# --- the kinds of code a decorator or context manager must cover --------------------


def run_plain(decorate, body):
    @decorate
    def f(x):
        body()
        return x * 2

    return f(21)


def run_generator(decorate, body):
    @decorate
    def gen(n):
        for i in range(n):
            body()
            yield i

    return list(gen(3))


def run_coroutine(decorate, body):
    @decorate
    async def co(x):
        await asyncio.sleep(0)
        body()
        return x * 2

    return asyncio.run(co(21))


def run_async_generator(decorate, body):
    @decorate
    async def agen(n):
        for i in range(n):
            await asyncio.sleep(0)
            body()
            yield i

    async def main():
        return [i async for i in agen(3)]

    return asyncio.run(main())


def run_with(manager_factory, body):
    with manager_factory():
        body()
    return 42


def run_async_with(manager_factory, body):
    async def main():
        async with manager_factory():
            await asyncio.sleep(0)
            body()
        return 42

    return asyncio.run(main())


KINDS = {
    "plain": (run_plain, 42),
    "generator": (run_generator, [0, 1, 2]),
    "coroutine": (run_coroutine, 42),
    "async_generator": (run_async_generator, [0, 1, 2]),
}
MANAGERS = {"with": run_with, "async_with": run_async_with}


# --- Histogram.time(), Summary.time(), Gauge.time() --------------------------------


class TestTimer:
    @pytest.mark.parametrize("kind", KINDS)
    def test_decorator_observes_seconds_once_per_call(self, registry, kind):
        h = Histogram("work_seconds", "Work", registry=registry)
        run, expected = KINDS[kind]
        assert run(h.time(), lambda: None) == expected
        assert h.get_count() == 1
        assert h.get_sum() > 0
        assert sample(registry, "work_seconds_count") == 1

    @pytest.mark.parametrize("kind", KINDS)
    def test_decorator_covers_the_whole_execution(self, registry, kind):
        h = Histogram("slow_seconds", "Slow", registry=registry)
        run, _ = KINDS[kind]
        run(h.time(), lambda: time.sleep(SLEEP))
        # generators: three steps of SLEEP each, timed as one iteration
        steps = 3 if "generator" in kind else 1
        assert h.get_count() == 1
        assert h.get_sum() >= steps * SLEEP

    @pytest.mark.parametrize("manager", MANAGERS)
    def test_context_manager(self, registry, manager):
        h = Histogram("block_seconds", "Block", registry=registry)
        assert MANAGERS[manager](h.time, lambda: time.sleep(SLEEP)) == 42
        assert h.get_count() == 1
        assert h.get_sum() >= SLEEP

    def test_duration_is_what_was_observed(self, registry):
        h = Histogram("d_seconds", "D", registry=registry)
        with h.time() as timer:
            time.sleep(SLEEP)
        assert isinstance(timer, Timer)
        assert timer.duration >= SLEEP
        assert h.get_sum() == timer.duration

    def test_duration_before_the_block_ends_is_none(self, registry):
        h = Histogram("d_seconds", "D", registry=registry)
        timer = h.time()
        assert timer.duration is None

    def test_async_with_duration(self, registry):
        h = Histogram("d_seconds", "D", registry=registry)

        async def main():
            async with h.time() as timer:
                await asyncio.sleep(SLEEP)
            return timer.duration

        assert asyncio.run(main()) >= SLEEP
        assert h.get_count() == 1

    def test_coroutine_is_timed_while_awaited_not_only_created(self, registry):
        h = Histogram("co_seconds", "Co", registry=registry)

        @h.time()
        async def co():
            await asyncio.sleep(SLEEP)

        coroutine = co()
        assert h.get_count() == 0  # nothing yet: prometheus_client would record the creation here
        asyncio.run(coroutine)
        assert h.get_count() == 1 and h.get_sum() >= SLEEP

    def test_generator_records_when_it_finishes_not_when_created(self, registry):
        h = Histogram("gen_seconds", "Gen", registry=registry)

        @h.time()
        def gen():
            yield 1
            yield 2

        g = gen()
        assert h.get_count() == 0
        assert next(g) == 1
        assert h.get_count() == 0
        assert list(g) == [2]
        assert h.get_count() == 1

    def test_generator_closed_early_records_once(self, registry):
        h = Histogram("gen_seconds", "Gen", registry=registry)

        @h.time()
        def gen():
            yield 1
            yield 2

        g = gen()
        next(g)
        g.close()
        assert h.get_count() == 1

    def test_generator_send_and_return_value_pass_through(self, registry):
        h = Histogram("gen_seconds", "Gen", registry=registry)

        @h.time()
        def echo():
            received = []
            while True:
                value = yield len(received)
                if value is None:
                    return received
                received.append(value)

        g = echo()
        assert next(g) == 0
        assert g.send("a") == 1
        assert g.send("b") == 2
        with pytest.raises(StopIteration) as stop:
            next(g)
        assert stop.value.value == ["a", "b"]
        assert h.get_count() == 1

    def test_async_generator_asend_athrow_aclose(self, registry):
        h = Histogram("agen_seconds", "Agen", registry=registry)

        @h.time()
        async def agen():
            total = 0
            while True:
                try:
                    value = yield total
                except KeyError:
                    total = -1
                    continue
                total += value or 0

        async def main():
            a = agen()
            assert await a.__anext__() == 0
            assert await a.asend(5) == 5
            assert await a.athrow(KeyError()) == -1
            assert h.get_count() == 0
            await a.aclose()
            return h.get_count()

        assert asyncio.run(main()) == 1

    def test_exception_still_observed_and_propagates(self, registry):
        h = Histogram("fail_seconds", "Fail", registry=registry)

        @h.time()
        def fail():
            raise KeyError("boom")

        with pytest.raises(KeyError, match="boom"):
            fail()
        with pytest.raises(KeyError):
            with h.time():
                raise KeyError("again")
        assert h.get_count() == 2

    @pytest.mark.parametrize("kind", ["plain", "generator", "coroutine", "async_generator"])
    def test_decorated_function_keeps_name_signature_and_kind(self, registry, kind):
        h = Histogram("sig_seconds", "Sig", registry=registry)

        def plain(a, b: int = 2, *rest, key="k", **extra) -> int:
            """Adds."""
            return a + b

        def generator(a, b: int = 2, *rest, key="k", **extra):
            """Adds."""
            yield a + b

        async def coroutine(a, b: int = 2, *rest, key="k", **extra) -> int:
            """Adds."""
            return a + b

        async def async_generator(a, b: int = 2, *rest, key="k", **extra):
            """Adds."""
            yield a + b

        original = {"plain": plain, "generator": generator, "coroutine": coroutine,
                    "async_generator": async_generator}[kind]
        wrapped = h.time()(original)
        assert wrapped.__name__ == kind and wrapped.__doc__ == "Adds."
        assert wrapped.__wrapped__ is original
        assert inspect.signature(wrapped) == inspect.signature(original)
        for check in (inspect.isgeneratorfunction, inspect.iscoroutinefunction, inspect.isasyncgenfunction):
            assert check(wrapped) == check(original)

    def test_concurrent_coroutines_each_timed(self, registry):
        h = Histogram("co_seconds", "Co", registry=registry)

        @h.time()
        async def co():
            await asyncio.sleep(SLEEP)

        async def main():
            await asyncio.gather(co(), co(), co())

        asyncio.run(main())
        assert h.get_count() == 3 and h.get_sum() >= 3 * SLEEP

    def test_classic_buckets_see_seconds(self, registry):
        h = Histogram("req_seconds", "Req", buckets=Histogram.DEFAULT_BUCKETS, registry=registry)
        with h.time():
            time.sleep(SLEEP)
        assert sample(registry, 'req_seconds_bucket{le="0.025"}') == 0
        assert sample(registry, 'req_seconds_bucket{le="+Inf"}') == 1
        assert sample(registry, "req_seconds_count") == 1
        assert sample(registry, "req_seconds_sum") >= SLEEP

    def test_summary_time(self, registry):
        s = Summary("request_processing_seconds", "Time spent processing request", registry=registry)

        @s.time()
        def process():
            time.sleep(SLEEP)

        process()
        with s.time():
            pass
        assert sample(registry, "request_processing_seconds_count") == 2
        assert sample(registry, "request_processing_seconds_sum") >= SLEEP

    @pytest.mark.parametrize("kind", KINDS)
    def test_gauge_time_sets_the_duration(self, registry, kind):
        g = Gauge("last_run_seconds", "Last run", registry=registry)
        g.set(-1)
        run, expected = KINDS[kind]
        assert run(g.time(), lambda: time.sleep(SLEEP)) == expected
        assert g.get() >= SLEEP
        assert sample(registry, "last_run_seconds") == g.get()

    @pytest.mark.parametrize("manager", MANAGERS)
    def test_gauge_time_context_manager(self, registry, manager):
        g = Gauge("last_run_seconds", "Last run", registry=registry)
        MANAGERS[manager](g.time, lambda: time.sleep(SLEEP))
        assert g.get() >= SLEEP


class TestTimerLabels:
    def test_time_on_a_series(self, registry):
        h = Histogram("route_seconds", "Route", ["route"], registry=registry)
        with h.labels("/a").time():
            pass

        @h.labels(route="/b").time()
        def b():
            pass

        b()
        b()
        assert h.labels("/a").get_count() == 1 and h.labels("/b").get_count() == 2
        assert sample(registry, 'route_seconds_count{route="/b"}') == 2

    def test_labels_on_the_timer_inside_the_block(self, registry):
        h = Histogram("status_seconds", "Status", ["status"], registry=registry)
        with h.time() as timer:
            status = "200"
            timer.labels(status)
        assert h.labels("200").get_count() == 1

    def test_labels_on_the_timer_returns_it(self, registry):
        h = Histogram("status_seconds", "Status", ["status"], registry=registry)
        with h.time().labels(status="500"):
            pass
        assert h.labels("500").get_count() == 1

    def test_labels_on_the_timer_then_decorate(self, registry):
        h = Histogram("status_seconds", "Status", ["status"], registry=registry)
        timer = h.time()
        timer.labels("ok")

        @timer
        def f():
            return 1

        assert f() + f() == 2
        assert h.labels("ok").get_count() == 2

    def test_time_on_a_labelled_metric_raises_when_it_records(self, registry):
        # As prometheus_client: time() itself is fine (labels may come later); recording is not.
        h = Histogram("route_seconds", "Route", ["route"], registry=registry)
        timer = h.time()
        message = r"histogram 'route_seconds' has label names \('route',\): select a series with \.labels\(\.\.\.\) first"
        with pytest.raises(ValueError, match=message):
            with timer:
                pass

        @h.time()
        def f():
            return 1

        with pytest.raises(ValueError, match=message):
            f()
        g = Gauge("g", "G", ["k"], registry=registry)
        with pytest.raises(ValueError, match=r"gauge 'g' has label names \('k',\)"):
            with g.time():
                pass
        assert h.labels("x").get_count() == 0

    def test_plain_timer_with_a_callback_name(self, registry):
        h = Histogram("plain_seconds", "Plain", registry=registry)
        timer = Timer(h, "observe")
        with timer:
            pass
        assert h.get_count() == 1 and h.get_sum() == timer.duration
        with pytest.raises(TypeError, match=r"Timer: Histogram has no method 'nope' to record with"):
            Timer(h, "nope")


# --- Counter.count_exceptions() ----------------------------------------------------


def _raise(exc_type):
    def body():
        raise exc_type("x")

    return body


class TestCountExceptions:
    @pytest.mark.parametrize("kind", KINDS)
    def test_counts_and_reraises(self, registry, kind):
        c = Counter("failures_total", "Failures", registry=registry)
        run, _ = KINDS[kind]
        with pytest.raises(ValueError):
            run(c.count_exceptions(), _raise(ValueError))
        assert c.get() == 1
        assert run(c.count_exceptions(), lambda: None) == KINDS[kind][1]
        assert c.get() == 1
        assert sample(registry, "failures_total") == 1

    @pytest.mark.parametrize("manager", MANAGERS)
    def test_context_manager(self, registry, manager):
        c = Counter("failures_total", "Failures", registry=registry)
        with pytest.raises(RuntimeError):
            MANAGERS[manager](c.count_exceptions, _raise(RuntimeError))
        assert MANAGERS[manager](c.count_exceptions, lambda: None) == 42
        assert c.get() == 1

    @pytest.mark.parametrize("kind", KINDS)
    def test_only_the_given_types(self, registry, kind):
        c = Counter("value_errors_total", "Value errors", registry=registry)
        run, _ = KINDS[kind]
        with pytest.raises(KeyError):
            run(c.count_exceptions(ValueError), _raise(KeyError))
        assert c.get() == 0
        with pytest.raises(UnicodeError):  # a subclass counts
            run(c.count_exceptions(ValueError), _raise(UnicodeError))
        with pytest.raises(KeyError):
            run(c.count_exceptions((ValueError, KeyError)), _raise(KeyError))
        assert c.get() == 2

    @pytest.mark.parametrize("manager", MANAGERS)
    def test_only_the_given_types_in_blocks(self, registry, manager):
        c = Counter("value_errors_total", "Value errors", registry=registry)
        with pytest.raises(KeyError):
            MANAGERS[manager](lambda: c.count_exceptions(ValueError), _raise(KeyError))
        with pytest.raises(ValueError):
            MANAGERS[manager](lambda: c.count_exceptions((KeyError, ValueError)), _raise(ValueError))
        assert c.get() == 1

    def test_enter_returns_none_and_exit_does_not_swallow(self, registry):
        c = Counter("e_total", "E", registry=registry)
        manager = c.count_exceptions()
        assert isinstance(manager, ExceptionCounter)
        with manager as entered:
            assert entered is None
        assert manager.__exit__(ValueError, ValueError("x"), None) is False
        assert c.get() == 1

    def test_closing_a_generator_early_is_not_an_exception(self, registry):
        c = Counter("e_total", "E", registry=registry)

        @c.count_exceptions()
        def gen():
            yield 1
            yield 2

        g = gen()
        next(g)
        g.close()  # GeneratorExit is a BaseException, not an Exception
        assert c.get() == 0

        @c.count_exceptions(BaseException)
        def gen2():
            yield 1

        g = gen2()
        next(g)
        g.close()
        assert c.get() == 1

    def test_cancellation_is_not_an_exception(self, registry):
        c = Counter("e_total", "E", registry=registry)

        @c.count_exceptions()
        async def slow():
            await asyncio.sleep(10)

        async def main():
            task = asyncio.ensure_future(slow())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert c.get() == 0

    def test_on_a_series(self, registry):
        c = Counter("errors_total", "Errors", ["op"], registry=registry)

        @c.labels("read").count_exceptions()
        def read():
            raise OSError("disk")

        with pytest.raises(OSError):
            read()
        assert sample(registry, 'errors_total{op="read"}') == 1

    def test_labelled_counter_raises_at_once(self, registry):
        c = Counter("errors_total", "Errors", ["op"], registry=registry)
        with pytest.raises(ValueError, match=r"counter 'errors' has label names \('op',\): select a series with \.labels"):
            c.count_exceptions()

    @pytest.mark.parametrize("bad", ["ValueError", 3, (ValueError, "x"), int])
    def test_rejects_what_is_not_an_exception_class(self, registry, bad):
        c = Counter("e_total", "E", registry=registry)
        with pytest.raises(TypeError, match=r"count_exceptions\(\) takes an exception class or a tuple of them, got"):
            c.count_exceptions(bad)

    def test_decorating_a_non_callable(self, registry):
        c = Counter("e_total", "E", registry=registry)
        with pytest.raises(TypeError, match=r"ExceptionCounter decorates a function, got int \(5\)"):
            c.count_exceptions()(5)


# --- Gauge.track_inprogress() ------------------------------------------------------


class TestTrackInprogress:
    @pytest.mark.parametrize("kind", KINDS)
    def test_one_while_running_zero_after(self, registry, kind):
        g = Gauge("inprogress", "In progress", registry=registry)
        seen = []
        run, expected = KINDS[kind]
        assert run(g.track_inprogress(), lambda: seen.append(sample(registry, "inprogress"))) == expected
        assert seen and all(v == 1 for v in seen)
        assert g.get() == 0

    @pytest.mark.parametrize("manager", MANAGERS)
    def test_context_manager(self, registry, manager):
        g = Gauge("inprogress", "In progress", registry=registry)
        seen = []
        MANAGERS[manager](g.track_inprogress, lambda: seen.append(g.get()))
        assert seen == [1] and g.get() == 0

    @pytest.mark.parametrize("kind", KINDS)
    def test_decremented_on_exception(self, registry, kind):
        g = Gauge("inprogress", "In progress", registry=registry)
        run, _ = KINDS[kind]
        with pytest.raises(KeyError):
            run(g.track_inprogress(), _raise(KeyError))
        assert g.get() == 0

    def test_nested_and_concurrent(self, registry):
        g = Gauge("inprogress", "In progress", registry=registry)
        peak = []

        @g.track_inprogress()
        async def work():
            await asyncio.sleep(0.01)
            peak.append(g.get())

        async def main():
            await asyncio.gather(work(), work(), work())

        asyncio.run(main())
        assert max(peak) == 3 and g.get() == 0
        with g.track_inprogress():
            with g.track_inprogress():
                assert g.get() == 2
        assert g.get() == 0

    def test_generator_counts_from_first_step_to_close(self, registry):
        g = Gauge("inprogress", "In progress", registry=registry)

        @g.track_inprogress()
        def gen():
            yield 1
            yield 2

        it = gen()
        assert g.get() == 0
        next(it)
        assert g.get() == 1
        it.close()
        assert g.get() == 0

    def test_async_generator_closed_early(self, registry):
        g = Gauge("inprogress", "In progress", registry=registry)

        @g.track_inprogress()
        async def agen():
            yield 1
            yield 2

        async def main():
            a = agen()
            await a.__anext__()
            inside = g.get()
            await a.aclose()
            return inside

        assert asyncio.run(main()) == 1
        assert g.get() == 0

    def test_enter_returns_none(self, registry):
        g = Gauge("inprogress", "In progress", registry=registry)
        tracker = g.track_inprogress()
        assert isinstance(tracker, InprogressTracker)
        with tracker as entered:
            assert entered is None

    def test_on_a_series(self, registry):
        g = Gauge("inprogress", "In progress", ["queue"], registry=registry)
        with g.labels("q1").track_inprogress():
            assert sample(registry, 'inprogress{queue="q1"}') == 1
        assert sample(registry, 'inprogress{queue="q1"}') == 0

    def test_labelled_gauge_raises_at_once(self, registry):
        g = Gauge("inprogress", "In progress", ["queue"], registry=registry)
        with pytest.raises(ValueError, match=r"gauge 'inprogress' has label names \('queue',\): select a series"):
            g.track_inprogress()


# --- Gauge.set_function() ----------------------------------------------------------


class TestSetFunction:
    def test_value_is_read_at_each_scrape(self, registry):
        items = {}
        g = Gauge("fn_data_objects", "Number of objects", registry=registry)
        g.set_function(lambda: len(items))
        assert sample(registry, "fn_data_objects") == 0
        items.update(a=1, b=2)
        assert sample(registry, "fn_data_objects") == 2
        assert registry.get_sample_value("fn_data_objects") == 2
        items.clear()
        assert "fn_data_objects 0\n" in registry.generate_openmetrics()
        assert g.get() == 0

    def test_get_calls_the_function(self, registry):
        calls = []
        g = Gauge("fn_get", "G", registry=registry)
        g.set_function(lambda: calls.append(1) or 7.5)
        assert g.get() == 7.5 and len(calls) == 1

    def test_return_value_goes_through_float(self, registry):
        g = Gauge("fn_float", "G", registry=registry)
        g.set_function(lambda: "2.5")  # float("2.5"), as prometheus_client
        assert sample(registry, "fn_float") == 2.5
        g.set_function(lambda: True)
        assert sample(registry, "fn_float") == 1

    def test_last_function_wins(self, registry):
        g = Gauge("fn_replace", "G", registry=registry)
        g.set_function(lambda: 1)
        g.set_function(lambda: 2)
        assert sample(registry, "fn_replace") == 2

    def test_the_gauge_object_need_not_be_kept(self, registry):
        # prometheus_client's registry keeps such a gauge alive; so does ours.
        Gauge("fn_dropped", "G", registry=registry).set_function(lambda: 11)
        import gc

        gc.collect()
        assert sample(registry, "fn_dropped") == 11

    def test_on_a_series(self, registry):
        g = Gauge("fn_queue_depth", "Depth", ["queue"], registry=registry)
        g.labels("a").set_function(lambda: 3)
        g.labels("b").set(1)
        g.labels("c").set(2)
        g.remove("c")  # drops the parent's cached children; the function must survive
        g.labels("d")
        import gc

        gc.collect()
        assert sample(registry, 'fn_queue_depth{queue="a"}') == 3
        assert sample(registry, 'fn_queue_depth{queue="b"}') == 1

    def test_unregistered_gauge_registered_later(self, registry):
        g = Gauge("fn_late", "G", registry=None)
        g.set_function(lambda: 5)
        assert sample(registry, "fn_late") is None
        registry.register(g)
        assert sample(registry, "fn_late") == 5

    def test_before_collect_sets_the_values(self, registry):
        g = Gauge("fn_hook", "G", registry=registry)
        g.set_function(lambda: 9)
        metrics._before_collect(registry)
        from pyveda import _core

        assert _core.Gauge.get(g) == 9  # the stored value, not a call of the function

    def test_an_exception_fails_the_scrape(self, registry):
        g = Gauge("fn_broken", "G", registry=registry)
        g.set_function(lambda: 1 / 0)
        try:
            with pytest.raises(ZeroDivisionError):
                registry.generate_prometheus()
        finally:
            g.set_function(lambda: 0)  # it stays registered for the process: leave a working one
        assert sample(registry, "fn_broken") == 0

    def test_labelled_gauge_raises(self, registry):
        g = Gauge("fn_labelled", "G", ["k"], registry=registry)
        with pytest.raises(ValueError, match=r"gauge 'fn_labelled' has label names \('k',\): select a series"):
            g.set_function(lambda: 1)

    def test_not_callable(self, registry):
        g = Gauge("fn_bad", "G", registry=registry)
        with pytest.raises(TypeError, match=r"Gauge 'fn_bad': set_function\(\) takes a callable, got int"):
            g.set_function(3)


# --- constructor options -----------------------------------------------------------


class TestConstructor:
    @pytest.mark.parametrize("cls", [Counter, Gauge, Histogram, Summary])
    def test_prometheus_client_parameter_order(self, cls):
        names = list(inspect.signature(cls).parameters)
        assert names[:8] == ["name", "documentation", "labelnames", "namespace", "subsystem", "unit",
                             "registry", "_labelvalues"]
        assert inspect.signature(cls).parameters["registry"].default is REGISTRY

    def test_positional_arguments(self, registry):
        c = Counter("requests_total", "Requests", ["path"], "app", "http", "", registry)
        c.labels("/").inc()
        assert sample(registry, 'app_http_requests_total{path="/"}') == 1

    @pytest.mark.parametrize(
        "cls, kwargs, name, exposed",
        [
            (Counter, dict(namespace="ns"), "ns_requests", "ns_requests_total"),
            (Counter, dict(namespace="ns", unit="seconds"), "ns_requests_seconds", "ns_requests_seconds_total"),
            (Counter, dict(subsystem="sub", unit="seconds"), "sub_requests_seconds", "sub_requests_seconds_total"),
            (Gauge, dict(namespace="a", subsystem="b", unit="bytes"), "a_b_requests_total_bytes",
             "a_b_requests_total_bytes"),
            (Gauge, dict(subsystem="b"), "b_requests_total", "b_requests_total"),
        ],
    )
    def test_full_name(self, registry, cls, kwargs, name, exposed):
        m = cls("requests_total", "Requests", registry=registry, **kwargs)
        assert m.name == name
        assert f"\n{exposed} 0\n" in registry.generate_prometheus()

    def test_unit_already_at_the_end_is_not_repeated(self, registry):
        assert Gauge("size_bytes", "S", unit="bytes", registry=registry).name == "size_bytes"
        assert Counter("x_seconds_total", "S", unit="seconds", registry=registry).name == "x_seconds"
        assert Histogram("lat", "L", namespace="a", subsystem="b", unit="seconds", registry=registry).name == \
            "a_b_lat_seconds"
        assert Summary("lat_seconds", "L", unit="seconds", registry=registry).name == "lat_seconds"

    def test_empty_name(self, registry):
        with pytest.raises(ValueError, match=r"^Counter: metric name must not be empty$"):
            Counter("", "h", namespace="ns", registry=registry)

    @pytest.mark.parametrize("option", ["namespace", "subsystem", "unit"])
    def test_name_parts_must_be_str(self, registry, option):
        with pytest.raises(TypeError, match=rf"^Gauge: {option} must be a str, got int \(1\)$"):
            Gauge("g", "h", registry=registry, **{option: 1})

    @pytest.mark.parametrize("mode", ["all", "liveall", "livesum", "max", "livemax", "min", "livemin", "sum",
                                      "mostrecent", "livemostrecent"])
    def test_multiprocess_modes(self, registry, mode):
        g = Gauge("g", "h", registry=registry, multiprocess_mode=mode)
        g.inc()
        assert g.get() == 1

    @pytest.mark.parametrize("mode", ["bogus", "", None, "ALL"])
    def test_bad_multiprocess_mode(self, registry, mode):
        message = (
            rf"^Gauge 'g': invalid multiprocess mode {re.escape(repr(mode))}; expected one of: all, liveall, min, "
            r"livemin, max, livemax, sum, livesum, mostrecent, livemostrecent$"
        )
        with pytest.raises(ValueError, match=message):
            Gauge("g", "h", registry=registry, multiprocess_mode=mode)

    def test_registry_none_is_not_registered(self):
        before = REGISTRY.names()
        c = Counter("unregistered_total", "Nowhere", registry=None)
        c.inc(3)
        assert c.get() == 3
        assert REGISTRY.names() == before
        assert "unregistered_total" not in REGISTRY.generate_prometheus()
        other = CollectorRegistry()
        other.register(c)
        assert sample(other, "unregistered_total") == 3

    def test_registry_none_twice_makes_two_metrics(self):
        a = Counter("twice_total", "T", registry=None)
        b = Counter("twice_total", "T", registry=None)
        a.inc()
        assert b.get() == 0

    def test_default_registry(self):
        g = Gauge("promclient_api_default_gauge", "Default")
        try:
            g.set(4)
            assert REGISTRY.get_sample_value("promclient_api_default_gauge") == 4
        finally:
            REGISTRY.unregister(g)

    def test_empty_registry_is_still_a_registry(self):
        empty = CollectorRegistry()
        assert len(empty) == 0  # falsy: must not be taken for None
        Gauge("g", "h", registry=empty).set(1)
        assert sample(empty, "g") == 1

    def test_labelvalues_is_not_for_users(self, registry):
        with pytest.raises(ValueError, match=r"Counter 'c': _labelvalues is prometheus_client's internal way"):
            Counter("c", "h", ["a"], registry=registry, _labelvalues=("x",))

    def test_histogram_buckets_positional_after_labelvalues(self, registry):
        h = Histogram("b_seconds", "B", (), "", "", "", registry, None, [0.1, 1.0])
        h.observe(0.5)
        assert sample(registry, 'b_seconds_bucket{le="1.0"}') == 1


# --- names, reserved labels, label values: the error rules --------------------------


class TestErrors:
    @pytest.mark.parametrize("cls", [Counter, Gauge, Histogram, Summary])
    def test_double_underscore_label_names_are_reserved(self, registry, cls):
        kind = cls.__name__
        with pytest.raises(ValueError, match=(
            r"^invalid label name '__name__': names starting with '__' are reserved for Prometheus "
            rf"\({kind} 'm'\)$"
        )):
            cls("m", "h", ["ok", "__name__"], registry=registry)

    def test_le_is_reserved_for_histograms(self, registry):
        with pytest.raises(ValueError, match=r"label name 'le' is reserved for histograms \('h' is exposed"):
            Histogram("h", "d", ["le"], registry=registry)

    @pytest.mark.parametrize("cls", [Histogram, Summary])
    def test_quantile_is_reserved(self, registry, cls):
        with pytest.raises(ValueError, match=r"label name 'quantile' is reserved for (histograms|summaries) \('q' is"):
            cls("q", "d", ["quantile"], registry=registry)

    def test_le_is_allowed_on_a_summary_and_both_on_counters_and_gauges(self, registry):
        Summary("s", "d", ["le"], registry=registry).labels("1").observe(1)
        Counter("c", "d", ["le", "quantile"], registry=registry).labels("1", "2").inc()
        Gauge("g", "d", ["le", "quantile"], registry=registry).labels("1", "2").set(3)
        text = registry.generate_prometheus()
        assert 's_count{le="1"} 1\n' in text
        assert 'c_total{le="1",quantile="2"} 1\n' in text and 'g{le="1",quantile="2"} 3\n' in text

    def test_empty_label_name(self, registry):
        with pytest.raises(ValueError, match=r"^label name must not be empty \(Gauge 'g'\)$"):
            Gauge("g", "h", [""], registry=registry)

    @pytest.mark.parametrize("label", ["a-b", "1a"])
    def test_invalid_legacy_label_names_name_the_metric(self, registry, legacy_names, label):
        with pytest.raises(ValueError, match=(
            rf"^invalid label name '{label}': a label name must match \[a-zA-Z_\]\[a-zA-Z0-9_\]\* \(Gauge 'g'\)$"
        )):
            Gauge("g", "h", [label], registry=registry)

    def test_utf8_label_names_by_default(self, registry):
        # prometheus_client 0.26 accepts any UTF-8 label name unless legacy validation is on.
        Gauge("g", "h", ["a-b"], registry=registry).labels("x").set(1)
        assert registry.get_sample_value("g", {"a-b": "x"}) == 1

    @pytest.mark.parametrize("name", ["a-b", "1a", "a b"])
    def test_invalid_metric_names(self, registry, legacy_names, name):
        with pytest.raises(ValueError, match=rf"^invalid metric name {re.escape(repr(name))}: a metric name must match"):
            Counter(name, "h", registry=registry)

    def test_invalid_full_name_from_namespace(self, registry, legacy_names):
        with pytest.raises(ValueError, match=r"^invalid metric name 'my-app_x'"):
            Gauge("x", "h", namespace="my-app", registry=registry)

    def test_missing_and_extra_label_values(self, registry):
        c = Counter("req_total", "R", ["method", "code"], registry=registry)
        with pytest.raises(ValueError, match=r"^counter 'req' expects 2 label value\(s\) for \('method', 'code'\), got 1$"):
            c.labels("GET")
        with pytest.raises(ValueError, match=r"^counter 'req' expects 2 label value\(s\) for \('method', 'code'\), got 3$"):
            c.labels("GET", "200", "x")
        with pytest.raises(ValueError, match=r"^counter 'req' expects 2 label value\(s\) for \('method', 'code'\), got 0$"):
            c.labels()
        with pytest.raises(ValueError, match=r"counter 'req' has no label named 'verb'; its label names are"):
            c.labels(method="GET", verb="x")
        with pytest.raises(ValueError, match=r"counter 'req' expects 2 label value\(s\)"):
            c.labels(method="GET")

    def test_labels_on_an_unlabelled_metric(self, registry):
        h = Histogram("h", "d", registry=registry)
        with pytest.raises(ValueError, match=r"^histogram 'h' has no label names, so labels\(\) takes no values; got 1$"):
            h.labels("x")

    def test_labels_on_a_series(self, registry):
        g = Gauge("g", "d", ["k"], registry=registry)
        with pytest.raises(ValueError, match=r"^gauge 'g': this is already one labelled series"):
            g.labels("a").labels("b")

    @pytest.mark.parametrize("cls, method", [(Counter, "inc"), (Gauge, "set"), (Histogram, "observe"),
                                             (Summary, "observe")])
    def test_recording_without_labels(self, registry, cls, method):
        m = cls("m", "d", ["k"], registry=registry)
        args = () if method == "inc" else (1,)
        with pytest.raises(ValueError, match=r"'m' has label names \('k',\): select a series with \.labels\(\.\.\.\) first"):
            getattr(m, method)(*args)

    @pytest.mark.parametrize("value", [-1, float("nan"), float("inf")])
    def test_histogram_and_summary_values_stay_finite_and_non_negative(self, registry, value):
        # A deliberate difference: prometheus_client accepts these.
        for cls in (Histogram, Summary):
            with pytest.raises(ValueError, match=r"must be a finite number >= 0"):
                cls(f"v_{cls.__name__}", "d", registry=registry).observe(value)


# --- remove(), remove_by_labels(), clear() -----------------------------------------


def series(registry, name):
    return sorted(line.split(" ")[0] for line in registry.generate_prometheus().splitlines()
                  if line.startswith(name + "{"))


class TestRemoval:
    def make(self, registry, cls=Counter):
        m = cls("jobs_total" if cls is Counter else "jobs", "Jobs", ["queue", "status"], registry=registry)
        for queue in ("a", "b"):
            for status in ("ok", "fail"):
                child = m.labels(queue, status)
                child.inc() if cls is not Histogram else child.observe(1)
        return m

    def test_partial_match(self, registry):
        c = self.make(registry)
        c.remove_by_labels({"queue": "a"})
        assert series(registry, "jobs_total") == ['jobs_total{queue="b",status="fail"}', 'jobs_total{queue="b",status="ok"}']

    def test_every_pair_must_match(self, registry):
        c = self.make(registry)
        c.remove_by_labels({"status": "ok", "queue": "b"})
        assert 'jobs_total{queue="b",status="ok"}' not in series(registry, "jobs_total")
        assert len(series(registry, "jobs_total")) == 3

    def test_values_compared_as_str(self, registry):
        c = Counter("codes_total", "C", ["code", "m"], registry=registry)
        c.labels(200, "x").inc()
        c.labels(404, "x").inc()
        c.remove_by_labels({"code": 200})
        assert series(registry, "codes_total") == ['codes_total{code="404",m="x"}']

    def test_no_match_and_empty_dict_remove_nothing(self, registry):
        c = self.make(registry)
        c.remove_by_labels({"queue": "zzz"})
        c.remove_by_labels({})
        assert len(series(registry, "jobs_total")) == 4

    def test_histogram_series(self, registry):
        h = self.make(registry, Histogram)
        h.remove_by_labels({"status": "fail"})
        text = registry.generate_prometheus()
        assert 'jobs_count{queue="a",status="ok"} 1' in text and 'status="fail"' not in text

    def test_handles_keep_working_and_labels_make_a_fresh_series(self, registry):
        c = self.make(registry)
        old = c.labels("a", "ok")
        c.remove_by_labels({"queue": "a"})
        old.inc()  # unexported, no error
        assert c.labels("a", "ok").get() == 0
        c.labels("a", "ok").inc(5)
        assert sample(registry, 'jobs_total{queue="a",status="ok"}') == 5

    def test_unknown_label_name(self, registry):
        c = self.make(registry)
        with pytest.raises(ValueError, match=(
            r"^Counter 'jobs': remove_by_labels\(\) got unknown label names \['colour'\]; "
            r"its label names are \('queue', 'status'\)$"
        )):
            c.remove_by_labels({"queue": "a", "colour": "red"})
        assert len(series(registry, "jobs_total")) == 4

    def test_not_a_dict(self, registry):
        c = self.make(registry)
        with pytest.raises(TypeError, match=r"remove_by_labels\(\) takes a dict of \{label_name: label_value\}, got list"):
            c.remove_by_labels([("queue", "a")])

    def test_unlabelled_metric(self, registry):
        g = Gauge("g", "d", registry=registry)
        with pytest.raises(ValueError, match=r"^Gauge 'g' has no label names, so it has no labelled series to remove$"):
            g.remove_by_labels({"a": "b"})

    def test_on_a_series(self, registry):
        c = self.make(registry)
        with pytest.raises(ValueError, match=r"this is one labelled series .* call remove_by_labels\(\) on the metric"):
            c.labels("a", "ok").remove_by_labels({"queue": "a"})

    def test_family_no_longer_in_its_registry(self, registry):
        c = self.make(registry)
        other = CollectorRegistry()
        other.register(c)
        registry.unregister(c)
        c.remove_by_labels({"queue": "a"})
        assert len(series(other, "jobs_total")) == 2

    def test_remove_and_clear(self, registry):
        g = self.make(registry, Gauge)
        g.remove("a", "ok")
        g.remove("no", "such")  # absent: nothing happens, as in prometheus_client
        assert len(series(registry, "jobs")) == 3
        with pytest.raises(ValueError, match=r"gauge 'jobs' expects 2 label value\(s\)"):
            g.remove("a")
        g.clear()
        assert series(registry, "jobs") == []
        unlabelled = Gauge("u", "d", registry=registry)
        unlabelled.clear()  # nothing to clear, as in prometheus_client
        with pytest.raises(ValueError, match=r"gauge 'u' has no label names: its one series cannot be removed"):
            unlabelled.remove()


# --- code written for prometheus_client, unchanged but for the import ---------------


def test_prometheus_client_readme_example_runs(registry):
    REQUEST_TIME = Summary("request_processing_seconds", "Time spent processing request", registry=registry)
    IN_PROGRESS = Gauge("inprogress_requests", "Requests in progress", registry=registry)
    FAILURES = Counter("my_failures", "Failures", registry=registry)
    LATENCY = Histogram("request_latency_seconds", "Latency", ["endpoint"], registry=registry)

    @REQUEST_TIME.time()
    @IN_PROGRESS.track_inprogress()
    @FAILURES.count_exceptions()
    def process_request(t):
        with LATENCY.labels("/work").time():
            time.sleep(t)
        if t > 0.02:
            raise TimeoutError

    process_request(0.001)
    with pytest.raises(TimeoutError):
        process_request(0.03)
    assert registry.get_sample_value("request_processing_seconds_count") == 2
    assert registry.get_sample_value("request_processing_seconds_sum") >= 0.031
    assert registry.get_sample_value("inprogress_requests") == 0
    assert registry.get_sample_value("my_failures_total") == 1
    assert registry.get_sample_value("request_latency_seconds_count", {"endpoint": "/work"}) == 2
