"""The runtime: a native work-stealing scheduler running Python callables.

>>> import pyveda as veda
>>> veda.init(veda.Config.builder().threads(2).telemetry(True).build())
>>> veda.spawn(sum, [1, 2, 3]).result()
6

``spawn`` returns a :class:`Future`, a ``concurrent.futures.Future``
subclass: ``result``, ``exception``, ``cancel``, ``add_done_callback``,
``concurrent.futures.wait``/``as_completed`` and ``asyncio.wrap_future`` all
work. A task (or any thread but the main one) that waits on ``result()``
runs queued tasks while it waits, so a task may spawn children and wait for
them even with one worker thread. The main thread only waits, so Ctrl-C
reaches it as a KeyboardInterrupt and never lands inside a task.
"""

from __future__ import annotations

import atexit
import contextvars
import math
import os
import sys
import threading
import weakref
from concurrent.futures import CancelledError
from concurrent.futures import Future as _BaseFuture
from typing import TYPE_CHECKING, Any, Callable, List, Optional, TypeVar

from pyveda import _core
from pyveda._checks import MAX_SECONDS
from pyveda.config import Config
from pyveda.telemetry.system import TelemetrySystem
from pyveda.telemetry.tracing import TracingSystem, _current_span, _task_name, _traced_call

if TYPE_CHECKING:
    from pyveda.telemetry.gpu import GpuMonitor

__all__ = [
    "Future",
    "QueueFullError",
    "Runtime",
    "Scope",
    "get_runtime",
    "init",
    "scope",
    "shutdown",
    "spawn",
]

T = TypeVar("T")

_MAIN_THREAD_ID = threading.main_thread().ident

# The outcome codes of _core.FutureCore._peek()/_attach() (bindings/future.hpp).
_PENDING = _core.FutureCore.PENDING
_RUNNING = _core.FutureCore.RUNNING
_RETURNED = _core.FutureCore.RETURNED
_RAISED = _core.FutureCore.RAISED
_CANCELLED = _core.FutureCore.CANCELLED
_CANCELLED_NOTIFIED = _core.FutureCore.CANCELLED_NOTIFIED
_ATTACHED = _core.FutureCore.ATTACHED
# The fields concurrent.futures.Future() creates, learned from one instance
# rather than named, and the lock under which a Future creates them.
_BASE_FIELDS = frozenset(vars(_BaseFuture()))
_ATTACH_LOCK = threading.Lock()


def _wait_seconds(timeout: float) -> float:
    """A checked timeout as the core takes it: negative and NaN wait not at all (as
    concurrent.futures), anything past about 31 years (an int too big for a float,
    inf) is no limit."""
    if not timeout > 0:
        return 0.0
    return float(timeout) if timeout < MAX_SECONDS else math.inf


class QueueFullError(RuntimeError):
    """``Runtime.try_spawn`` found the queue still full when its timeout ran out."""


class Future(_core.FutureCore, _BaseFuture):
    """The result of a spawned task; a ``concurrent.futures.Future``.

    Differences from the base class are internal. The state and the result
    live in the native part (``_core.FutureCore``), which the worker completes
    without running Python code. The base class's condition, waiter list and
    callback list are created only when something asks for them (a callback,
    ``concurrent.futures.wait``/``as_completed``): the first such request calls
    the base class's constructor and replays the state through its public
    methods, and from then on the base class holds the state.

    ``result()``/``exception()`` wait inside the runtime, running queued tasks
    meanwhile (except on the main thread, which only waits). With a timeout,
    such a waiter may overrun it by the length of the task it is running.
    """

    def __getattr__(self, name: str) -> Any:
        # Reached only for names not set yet: the base class's fields before
        # the first use that needs them.
        if name in _BASE_FIELDS and self._attach_base():
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _attach_base(self) -> bool:
        """Creates the base class's fields from the native state; False if already done."""
        with _ATTACH_LOCK:
            if self._attached:
                return False
            _BaseFuture.__init__(self)
            # The worker drives an attached future through the base class's
            # methods, which take this condition: it waits until the replay is done.
            with self._condition:
                outcome, value = self._attach()
                if outcome in (_RUNNING, _RETURNED, _RAISED):
                    _BaseFuture.set_running_or_notify_cancel(self)
                if outcome == _RETURNED:
                    _BaseFuture.set_result(self, value)
                elif outcome == _RAISED:
                    _BaseFuture.set_exception(self, value)
                elif outcome in (_CANCELLED, _CANCELLED_NOTIFIED):
                    _BaseFuture.cancel(self)
                    if outcome == _CANCELLED_NOTIFIED:
                        _BaseFuture.set_running_or_notify_cancel(self)
            return True

    def cancel(self) -> bool:
        """Cancels the task unless it has started; True if it is cancelled."""
        cancelled = self._try_cancel()
        if cancelled is None:
            return _BaseFuture.cancel(self)
        return cancelled

    def result(self, timeout: Optional[float] = None) -> Any:
        """The task's return value; re-raises its exception.

        Raises ``concurrent.futures.CancelledError`` if it was cancelled and
        ``TimeoutError`` if it is not done within ``timeout`` seconds.
        """
        outcome, value = self._peek()
        if outcome == _RETURNED:
            return value
        if outcome in (_PENDING, _RUNNING, _ATTACHED):
            self._wait(timeout)
            outcome, value = self._peek()
        if outcome == _RETURNED:
            return value
        if outcome == _RAISED:
            try:
                raise value
            finally:
                value = None  # drop the frame's reference, as the base class does
        if outcome == _ATTACHED:
            return _BaseFuture.result(self, 0)
        if outcome in (_CANCELLED, _CANCELLED_NOTIFIED):
            raise CancelledError()
        raise TimeoutError()

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The task's exception (None if it returned); waits like :meth:`result`."""
        outcome, value = self._peek()
        if outcome in (_PENDING, _RUNNING, _ATTACHED):
            self._wait(timeout)
            outcome, value = self._peek()
        if outcome == _RETURNED:
            return None
        if outcome == _RAISED:
            return value
        if outcome == _ATTACHED:
            return _BaseFuture.exception(self, 0)
        if outcome in (_CANCELLED, _CANCELLED_NOTIFIED):
            raise CancelledError()
        raise TimeoutError()

    def _wait(self, timeout: Optional[float]) -> None:
        if timeout is not None:
            if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
                raise TypeError(f"timeout must be a number of seconds or None, got {type(timeout).__name__} ({timeout!r})")
            timeout = _wait_seconds(timeout)
        # The main thread only waits: signals go to it, and a task it ran
        # itself would receive the KeyboardInterrupt meant for the waiter.
        self._runtime.wait(self, timeout, threading.get_ident() != _MAIN_THREAD_ID)


class Runtime:
    """A scheduler with its worker threads and, if enabled, telemetry.

    Create one through :func:`pyveda.init`; ``pyveda.get_runtime()`` returns it.
    """

    def __init__(self, config: Optional[Config] = None) -> None:
        if config is None:
            config = Config()
        elif not isinstance(config, Config):
            raise TypeError(f"config must be a pyveda.Config, got {type(config).__name__}")
        self.config = config
        self._core = _core.Runtime(config._to_options())
        _live_runtimes.add(self._core)
        core_telemetry = self._core.telemetry
        #: The TelemetrySystem, or None when telemetry is disabled.
        self.telemetry: Optional[TelemetrySystem] = (
            TelemetrySystem(core_telemetry) if core_telemetry is not None else None
        )
        core_gpu = self._core.gpu
        self._gpu: Optional[GpuMonitor] = None
        if core_gpu is not None:
            from pyveda.telemetry.gpu import GpuMonitor  # loaded only when GPU telemetry is on

            self._gpu = GpuMonitor._for_runtime(core_gpu)
        #: The TracingSystem giving every task a span, or None when tracing is disabled.
        self.tracing: Optional[TracingSystem] = TracingSystem() if config.enable_tracing else None
        #: Where spawned tasks run when not on this runtime's threads (Config.executor "dask").
        self.executor: Any = None
        if config.executor == "dask":
            from pyveda.dask import DaskExecutor  # imports distributed only now

            try:
                self.executor = DaskExecutor(self.telemetry, **config.executor_options)
            except BaseException:
                self._core.shutdown(False)
                raise

    def spawn(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future:
        """Runs ``fn(*args, **kwargs)`` on a worker; returns its :class:`Future`
        (with the Dask executor: a :class:`pyveda.dask.DaskFuture`, run on the cluster).

        With a bounded queue (``Config.queue_size``) this blocks while the
        queue is full. Raises TypeError if ``fn`` is not callable and
        RuntimeError after :meth:`shutdown`.
        """
        if not callable(fn):
            raise TypeError(f"spawn() needs a callable, got {type(fn).__name__} ({fn!r})")
        if self.executor is not None:
            return self.executor.submit(fn, args, kwargs)  # a DaskFuture; the spawner's span goes along
        if self.tracing is not None or _current_span.get() is not None:
            fn, args, kwargs = self._traced(fn, args, kwargs)
        future = Future(self._core)
        if not self._core.submit(future, fn, args, kwargs):
            raise RuntimeError(self._refusal())
        return future

    def try_spawn(self, timeout: float, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future:
        """Like :meth:`spawn`, but raises :class:`QueueFullError` if the queue is
        still full after ``timeout`` seconds."""
        if not callable(fn):
            raise TypeError(f"try_spawn() needs a callable, got {type(fn).__name__} ({fn!r})")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout != timeout:
            raise TypeError(f"try_spawn() timeout must be a number of seconds, got {timeout!r}")
        if self.executor is not None:
            return self.executor.submit(fn, args, kwargs)  # no local queue to be full
        if self._core.is_shutdown or self._core.is_inherited:
            raise RuntimeError(self._refusal())
        if self.tracing is not None or _current_span.get() is not None:
            fn, args, kwargs = self._traced(fn, args, kwargs)
        future = Future(self._core)
        if not self._core.try_submit(future, fn, args, kwargs, _wait_seconds(timeout)):
            if self._core.is_shutdown or self._core.is_inherited:
                raise RuntimeError(self._refusal())
            raise QueueFullError(f"the task queue stayed full ({self.config.queue_size} tasks) for {timeout} s")
        return future

    def _refusal(self) -> str:
        # Why the core refused a task.
        if self._core.is_inherited:
            return (
                "cannot spawn: this Runtime was created in the parent process before os.fork(), and its worker "
                "threads stayed there; create a new pyveda.Runtime in the child (pyveda.spawn() starts a fresh "
                "process-wide runtime in the child by itself)"
            )
        return "cannot spawn: the runtime has been shut down"

    def _traced(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        # Wraps a task in a span (tracing on) and runs it in a copy of the
        # spawner's context when a span is current, so it continues that trace.
        tracing = self.tracing
        if tracing is not None:
            fn, args, kwargs = _traced_call, (tracing, _task_name(fn), fn, args, kwargs), {}
        if _current_span.get() is not None:
            fn, args = contextvars.copy_context().run, (fn, *args)
        return fn, args, kwargs

    def scope(self) -> "Scope":
        """A :class:`Scope` spawning on this runtime."""
        return Scope(self)

    def shutdown(self, wait: bool = True) -> None:
        """Stops the runtime and joins its threads.

        ``wait=True`` runs every queued task first; ``wait=False`` cancels the
        queued ones (their futures report cancelled) and lets running ones end.
        Called from inside one of its own tasks it only starts the shutdown
        (a worker cannot join itself); the threads are joined by a later
        ``shutdown()`` from another thread, at the latest at interpreter exit.
        With the Dask executor, ``wait=True`` also waits for the tasks in
        flight on the cluster, and a client the executor made is closed.
        """
        wait = _check_wait(wait)
        if self.executor is not None:
            self.executor.shutdown(wait)
        self._core.shutdown(wait)

    @property
    def is_shutdown(self) -> bool:
        return self._core.is_shutdown

    @property
    def num_threads(self) -> int:
        return self._core.num_threads

    @property
    def gpu(self) -> Optional[GpuMonitor]:
        """The :class:`~pyveda.telemetry.gpu.GpuMonitor`, or None unless GPU telemetry is enabled.

        Enable it with ``Config.builder().gpu(True)`` (``Config.enable_gpu``).
        When enabled but no NVIDIA driver or device is found, this is still a
        monitor: ``gpu.is_available()`` is False and ``gpu.unavailable_reason``
        says why. After :meth:`shutdown` it reads as unavailable (NVML released).
        """
        return self._gpu

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        state = "shut down" if self.is_shutdown else "running"
        return f"<pyveda.Runtime {state}, {self.num_threads} threads, telemetry {'on' if self.telemetry else 'off'}>"


class Scope:
    """Joins the tasks spawned through it when the ``with`` block ends.

    >>> with pyveda.scope() as s:
    ...     s.spawn(work, 1)
    ...     s.spawn(work, 2)

    On exit every task is waited for; if any raised, the exception of the
    first one spawned is re-raised (unless the block itself raised).
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._futures: List[Future] = []

    def spawn(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future:
        future = self._runtime.spawn(fn, *args, **kwargs)
        self._futures.append(future)
        return future

    @property
    def futures(self) -> List[Future]:
        return list(self._futures)

    def __enter__(self) -> "Scope":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        first: Optional[BaseException] = None
        for future in self._futures:
            try:
                future.result()
            except BaseException as error:  # noqa: BLE001 - re-raised below
                if first is None:
                    first = error
        if first is not None and exc_type is None:
            raise first
        return False


def _check_wait(wait: Any) -> bool:
    if not isinstance(wait, bool):
        raise TypeError(f"shutdown(): wait must be True or False, got {type(wait).__name__} ({wait!r})")
    return wait


_lock = threading.Lock()
_runtime: Optional[Runtime] = None
_restart_config: Optional[Config] = None  # the forked-from runtime's, for the child's first use
# Every core runtime still alive (futures keep theirs alive), for the exit hook.
_live_runtimes: "weakref.WeakSet[_core.Runtime]" = weakref.WeakSet()
_was_shut_down = False


def init(config: Optional[Config] = None) -> Runtime:
    """Starts the process-wide runtime (default settings when ``config`` is None).

    Raises RuntimeError if a runtime is already running: call
    :func:`shutdown` first.
    """
    global _runtime, _was_shut_down
    with _lock:
        if _runtime is not None and not _runtime.is_shutdown:
            raise RuntimeError(
                "pyveda is already initialised; call pyveda.shutdown() before pyveda.init() again"
            )
        _runtime = Runtime(config)
        _was_shut_down = False
        return _runtime


def get_runtime() -> Runtime:
    """The process-wide runtime, started with default settings on first use.

    After :func:`shutdown`, raises RuntimeError until :func:`init` is called.
    """
    global _runtime
    runtime = _runtime
    if runtime is not None and not runtime.is_shutdown:
        return runtime
    with _lock:
        if _runtime is not None and not _runtime.is_shutdown:
            return _runtime
        if _was_shut_down or (_runtime is not None and _runtime.is_shutdown):
            raise RuntimeError("the pyveda runtime has been shut down; call pyveda.init() to start a new one")
        _runtime = Runtime(_restart_config)
        return _runtime


def spawn(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future:
    """Runs ``fn(*args, **kwargs)`` on the process-wide runtime; see :meth:`Runtime.spawn`."""
    if not callable(fn):
        raise TypeError(f"spawn() needs a callable, got {type(fn).__name__} ({fn!r})")
    return get_runtime().spawn(fn, *args, **kwargs)


def scope() -> Scope:
    """A :class:`Scope` on the process-wide runtime."""
    return Scope(get_runtime())


def shutdown(wait: bool = True) -> None:
    """Shuts the process-wide runtime down (see :meth:`Runtime.shutdown`); no-op if none."""
    global _was_shut_down
    _check_wait(wait)
    with _lock:
        runtime = _runtime
        if runtime is None:
            return
        _was_shut_down = True
    runtime.shutdown(wait)


def _after_fork_in_child() -> None:
    # The parent's runtimes have no workers here (Scheduler::is_inherited):
    # the process-wide one starts afresh on first use, with task counts from
    # zero, and the exit hook has nothing of the parent's to join. A Runtime
    # the program holds itself refuses tasks with a message saying so.
    global _runtime, _lock, _restart_config
    _lock = threading.Lock()  # another thread of the parent may have held it
    if _runtime is not None:
        _restart_config = _runtime.config  # the child's runtime is set up as the parent's was
    _runtime = None
    _live_runtimes.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _shutdown_at_exit() -> None:
    # Joins every runtime's workers while the interpreter is still whole (a
    # worker taking the GIL during finalisation would be torn down mid-task).
    # Queued tasks are cancelled rather than run; running ones may finish.
    # After a second of waiting it says so on stderr; Ctrl-C then exits at
    # once (status 130) without the tasks that are still running.
    runtimes = list(_live_runtimes)
    waited = False
    try:
        for runtime in runtimes:
            if runtime.join_for(False, 0.0 if waited else 1.0):
                continue
            if not waited:
                waited = True
                running = sum(r.running for r in runtimes)
                print(
                    f"pyveda: waiting for {running} running task(s) to finish before exiting; "
                    "press Ctrl-C to exit without them",
                    file=sys.stderr,
                    flush=True,
                )
            while not runtime.join_for(False, 1.0):
                pass
    except KeyboardInterrupt:
        running = sum(r.running for r in runtimes)
        print(f"pyveda: exiting without waiting for {running} running task(s)", file=sys.stderr, flush=True)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        # The tasks' threads are still inside Python code: finalising the
        # interpreter under them is not safe, so leave now.
        os._exit(130)
