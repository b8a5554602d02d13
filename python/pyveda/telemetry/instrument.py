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

The three classes are native (``pyveda._core``, re-exported here): their
``with`` / ``async with`` methods, and the wrapper a decorated plain function
gets, a callable that binds as a method, carries ``functools.wraps``'
attributes and is pickled by reference as a function is. A decorated plain
function pays for two clock reads (a timer), one ``inc()`` and one ``dec()``
(a tracker) or an exception check (an exception counter) around the call,
and allocates nothing per call. This module decides how to decorate
(``_decorate``, which ``instrument(f)`` calls) and holds the wrappers of
generator, coroutine and async generator functions, which call the native
``_begin()`` and ``_end()``. Durations are seconds, from the monotonic
clock :func:`time.perf_counter` reads.

Thread-safety: a decorated function may be called from any number of threads
and tasks at once. A ``with`` object keeps the start time on itself, so one
object must not be entered twice at the same time (make one per block:
``with h.time():``), as in prometheus_client.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Tuple, Type, TypeVar, Union

from pyveda import _core

__all__ = ["ExceptionCounter", "InprogressTracker", "Timer"]

F = TypeVar("F", bound=Callable[..., Any])
ExceptionTypes = Union[Type[BaseException], Tuple[Type[BaseException], ...]]


def _decorate(instrument: Any, f: F) -> F:
    """What ``instrument(f)`` returns: ``f`` wrapped for its kind, with ``f``'s name, docstring and signature.

    A plain function gets the native wrapper ``instrument._plain(f)``
    (TypeError, naming the instrument, for something not callable); the other
    kinds get the wrappers below, which call the native ``instrument._begin()``
    when the generator or coroutine starts and ``instrument._end(token,
    error)`` once when it finishes, with the exception that ended it or None.
    """
    if inspect.isasyncgenfunction(f):
        wrapper = _async_generator_wrapper(f, instrument._begin, instrument._end)
    elif inspect.iscoroutinefunction(f):
        wrapper = _coroutine_wrapper(f, instrument._begin, instrument._end)
    elif inspect.isgeneratorfunction(f):
        wrapper = _generator_wrapper(f, instrument._begin, instrument._end)
    else:
        wrapper = instrument._plain(f)
    return functools.wraps(f)(wrapper)  # type: ignore[no-any-return]


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


#: Times a block or function and records the seconds (``Histogram.time()``,
#: ``Summary.time()``, ``Gauge.time()``, or ``Timer(metric, "observe")``); see its docstring.
Timer = _core.Timer
#: Adds 1 to a gauge while a block or function runs (``Gauge.track_inprogress()``, or ``InprogressTracker(gauge)``).
InprogressTracker = _core.InprogressTracker
#: Adds 1 to a counter per exception of the given type(s) (``Counter.count_exceptions()``, or
#: ``ExceptionCounter(counter, exception)``).
ExceptionCounter = _core.ExceptionCounter

_core._set_instrument_decorator(_decorate)
