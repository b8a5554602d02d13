"""Timers, in-progress trackers and exception counters, as prometheus_client's.

``Histogram.time()``, ``Summary.time()``, ``Gauge.time()``,
``Gauge.track_inprogress()`` and ``Counter.count_exceptions()`` return one of
these. Each works

* as ``with`` and ``async with``;
* as a decorator on a plain function, a generator function (the whole
  iteration is covered, from its first step until it finishes or is
  closed), an ``async def`` function (the awaited execution, where
  prometheus_client only covers making the coroutine) and an async
  generator function (its whole iteration).

A decorated function keeps its name, docstring and signature
(``functools.wraps``) and its kind: a decorated generator function is still a
generator function, a coroutine function still a coroutine function.

Cost: a decorated plain function pays for two ``perf_counter()`` calls (a
timer), one ``inc()`` and one ``dec()`` (a tracker) or a ``try`` (an
exception counter) around the call, and allocates nothing per call.
Durations are seconds, from :func:`time.perf_counter`.

Thread-safety: a decorated function may be called from any number of threads
and tasks at once. A ``with`` object keeps the start time on itself, so one
object must not be entered twice at the same time (make one per block:
``with h.time():``), as in prometheus_client.
"""

from __future__ import annotations

import functools
import inspect
from time import perf_counter
from typing import Any, Callable, Optional, Tuple, Type, TypeVar, Union

__all__ = ["ExceptionCounter", "InprogressTracker", "Timer"]

F = TypeVar("F", bound=Callable[..., Any])
ExceptionTypes = Union[Type[BaseException], Tuple[Type[BaseException], ...]]


class _Instrument:
    """The decorator logic the three helpers share.

    A subclass gives ``_plain(f)``, its fastest wrapper for a plain function,
    and ``_begin()`` / ``_end(token, error)`` for the other kinds: ``_begin``
    runs when the generator or coroutine starts and returns a token,
    ``_end`` runs once when it finishes, with the exception that ended it or
    None.
    """

    __slots__ = ()

    def _plain(self, f: Callable[..., Any]) -> Callable[..., Any]:
        raise NotImplementedError

    def _begin(self) -> Any:
        raise NotImplementedError

    def _end(self, token: Any, error: Optional[BaseException]) -> None:
        raise NotImplementedError

    def __call__(self, f: F) -> F:
        if not callable(f):
            raise TypeError(f"{type(self).__name__} decorates a function, got {type(f).__name__} ({f!r})")
        if inspect.isasyncgenfunction(f):
            wrapper = _async_generator_wrapper(f, self._begin, self._end)
        elif inspect.iscoroutinefunction(f):
            wrapper = _coroutine_wrapper(f, self._begin, self._end)
        elif inspect.isgeneratorfunction(f):
            wrapper = _generator_wrapper(f, self._begin, self._end)
        else:
            wrapper = self._plain(f)
        return functools.wraps(f)(wrapper)  # type: ignore[return-value]


def _generator_wrapper(f: Callable[..., Any], begin: Callable[[], Any], end: Callable[[Any, Any], None]) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = begin()
        try:
            result = yield from f(*args, **kwargs)  # forwards send(), throw() and close()
        except BaseException as error:
            end(token, error)
            raise
        end(token, None)
        return result

    return wrapper


def _coroutine_wrapper(f: Callable[..., Any], begin: Callable[[], Any], end: Callable[[Any, Any], None]) -> Any:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = begin()
        try:
            result = await f(*args, **kwargs)
        except BaseException as error:
            end(token, error)
            raise
        end(token, None)
        return result

    return wrapper


def _async_generator_wrapper(f: Callable[..., Any], begin: Callable[[], Any], end: Callable[[Any, Any], None]) -> Any:
    # An async generator has no `yield from`: forward asend(), athrow() and aclose() by hand.
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = begin()
        try:
            inner = f(*args, **kwargs)
            try:
                item = await inner.__anext__()
                while True:
                    try:
                        sent = yield item
                    except GeneratorExit:
                        await inner.aclose()
                        raise
                    except BaseException as thrown:
                        item = await inner.athrow(thrown)
                    else:
                        item = await inner.asend(sent)
            except StopAsyncIteration:
                pass
        except BaseException as error:
            end(token, error)
            raise
        end(token, None)

    return wrapper


class Timer(_Instrument):
    """Times a block or a function and records the duration in seconds.

    ``Timer(metric, "observe")`` records into ``metric.observe`` (a
    Histogram or Summary), ``Timer(gauge, "set")`` sets a Gauge; the
    metrics' ``time()`` make faster ones of the same class. After a ``with``
    block, ``duration`` holds the seconds recorded (None before).

    On a labelled metric, pick the series before the block ends:
    ``with h.labels("GET").time():``, or, as prometheus_client allows, call
    ``labels(...)`` on the timer itself (``with h.time() as t: ...;
    t.labels(status)``). A timer of a labelled metric whose series was never
    chosen raises the metric's ValueError when it records, as there.
    """

    __slots__ = ("_metric", "_start", "_duration", "_callback_name")

    def __init__(self, metric: Any, callback_name: str) -> None:
        if not callable(getattr(metric, callback_name, None)):
            raise TypeError(f"Timer: {type(metric).__name__} has no method {callback_name!r} to record with")
        self._metric = metric
        self._callback_name = callback_name

    def _record(self, duration: float) -> None:
        getattr(self._metric, self._callback_name)(duration)

    @property
    def duration(self) -> Optional[float]:
        """The seconds the last ``with`` block took, or None before it ends."""
        return getattr(self, "_duration", None)

    def labels(self, *values: Any, **named_values: Any) -> "Timer":
        """Records into ``metric.labels(...)`` from now on; returns the timer (prometheus_client returns None)."""
        self._metric = self._metric.labels(*values, **named_values)
        return self

    def __enter__(self) -> "Timer":
        self._start = perf_counter()
        return self

    def __exit__(self, typ: Any, value: Any, traceback: Any) -> None:
        # perf_counter is monotonic: the difference is never negative.
        self._duration = duration = perf_counter() - self._start
        self._record(duration)

    async def __aenter__(self) -> "Timer":
        self._start = perf_counter()
        return self

    async def __aexit__(self, typ: Any, value: Any, traceback: Any) -> None:
        self.__exit__(typ, value, traceback)

    def _plain(self, f: Callable[..., Any]) -> Callable[..., Any]:
        record = self._record  # reads the metric at each call, so a later timer.labels(...) applies

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                record(perf_counter() - start)

        return wrapper

    _begin = staticmethod(perf_counter)

    def _end(self, start: float, error: Optional[BaseException]) -> None:
        self._record(perf_counter() - start)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._metric!r})"


# What Histogram.time(), Summary.time() and Gauge.time() return: Timer with
# the metric's method called directly, which saves about a third of the cost
# of a `with` block (no bound method made at creation, no getattr at the end).


class _ObservingTimer(Timer):
    __slots__ = ()
    _callback_name = "observe"  # type: ignore[misc]  # read-only here; the slot serves plain Timers

    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def _record(self, duration: float) -> None:
        self._metric.observe(duration)

    def __exit__(self, typ: Any, value: Any, traceback: Any) -> None:
        self._duration = duration = perf_counter() - self._start
        self._metric.observe(duration)

    def _plain(self, f: Callable[..., Any]) -> Callable[..., Any]:
        timer = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                timer._metric.observe(perf_counter() - start)

        return wrapper


class _SettingTimer(Timer):
    __slots__ = ()
    _callback_name = "set"  # type: ignore[misc]

    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def _record(self, duration: float) -> None:
        self._metric.set(duration)

    def __exit__(self, typ: Any, value: Any, traceback: Any) -> None:
        self._duration = duration = perf_counter() - self._start
        self._metric.set(duration)

    def _plain(self, f: Callable[..., Any]) -> Callable[..., Any]:
        timer = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                timer._metric.set(perf_counter() - start)

        return wrapper


def _check_exception_types(exception: Any) -> ExceptionTypes:
    types = exception if isinstance(exception, tuple) else (exception,)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(
                "count_exceptions() takes an exception class or a tuple of them, "
                f"got {exception!r}"
            )
    return exception  # type: ignore[no-any-return]


class ExceptionCounter(_Instrument):
    """Adds 1 to a counter each time an exception of the given type(s) leaves a block or function.

    The exception is never swallowed. ``GeneratorExit`` (a generator closed
    early) and ``asyncio.CancelledError`` derive from BaseException, so the
    default ``Exception`` does not count them.
    """

    __slots__ = ("_counter", "_exception")

    def __init__(self, counter: Any, exception: ExceptionTypes = Exception) -> None:
        self._counter = counter
        self._exception = exception if exception is Exception else _check_exception_types(exception)

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, value: Any, traceback: Any) -> bool:
        if value is not None and isinstance(value, self._exception):
            self._counter.inc()
        return False

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, typ: Any, value: Any, traceback: Any) -> bool:
        if value is not None and isinstance(value, self._exception):
            self._counter.inc()
        return False

    def _plain(self, f: Callable[..., Any]) -> Callable[..., Any]:
        exception = self._exception
        inc = self._counter.inc

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return f(*args, **kwargs)
            except exception:
                inc()
                raise

        return wrapper

    def _begin(self) -> None:
        return None

    def _end(self, token: None, error: Optional[BaseException]) -> None:
        if error is not None and isinstance(error, self._exception):
            self._counter.inc()

    def __repr__(self) -> str:
        return f"ExceptionCounter({self._counter!r}, {self._exception!r})"


class InprogressTracker(_Instrument):
    """Adds 1 to a gauge while a block or function runs (``inc()`` on entry, ``dec()`` on exit)."""

    __slots__ = ("_gauge",)

    def __init__(self, gauge: Any) -> None:
        self._gauge = gauge

    def __enter__(self) -> None:
        self._gauge.inc()

    def __exit__(self, typ: Any, value: Any, traceback: Any) -> None:
        self._gauge.dec()

    async def __aenter__(self) -> None:
        self._gauge.inc()

    async def __aexit__(self, typ: Any, value: Any, traceback: Any) -> None:
        self._gauge.dec()

    def _plain(self, f: Callable[..., Any]) -> Callable[..., Any]:
        inc = self._gauge.inc
        dec = self._gauge.dec

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            inc()
            try:
                return f(*args, **kwargs)
            finally:
                dec()

        return wrapper

    def _begin(self) -> None:
        self._gauge.inc()

    def _end(self, token: None, error: Optional[BaseException]) -> None:
        self._gauge.dec()

    def __repr__(self) -> str:
        return f"InprogressTracker({self._gauge!r})"
