"""A batch span processor, as the OpenTelemetry SDK defines one, reading PyVeda's span store.

>>> from pyveda.telemetry import BatchSpanProcessor, OTLPExporter, TracingSystem
>>> tracing = TracingSystem()
>>> processor = BatchSpanProcessor(OTLPExporter("http://localhost:4318"), tracing)   # doctest: +SKIP
>>> with tracing.span("work"):                                                        # doctest: +SKIP
...     pass
>>> processor.force_flush()                                                           # doctest: +SKIP
True

Finished spans are already in the tracing system's store (a ring with
sequence numbers), so the processor needs no hook on each span's end: a
daemon thread sleeps in the store (without the GIL) until a full batch of
spans has ended or the schedule delay has passed, reads the spans after its
cursor and hands them to ``exporter.send`` in batches. Each span is read, and
sent, once; ``get_spans()`` still returns them all.

Settings, each an argument or else an environment variable as the
OpenTelemetry specification names it (:class:`BatchSettings` is the one
reader):

- ``max_queue_size`` / ``OTEL_BSP_MAX_QUEUE_SIZE`` (2048): at most this many
  spans wait for export. When more have ended by the time the thread reads,
  the newest past the limit are dropped (as arriving at a full queue) and
  counted in ``dropped``, as are spans the store's ring evicted before they
  were read.
- ``schedule_delay_millis`` / ``OTEL_BSP_SCHEDULE_DELAY`` (5000 ms): the
  longest a span waits for a batch to fill; 0 exports as soon as spans end.
- ``max_export_batch_size`` / ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` (512): the
  most spans per send, and the count that wakes the thread before the delay
  is up. At most ``max_queue_size``.
- ``export_timeout_millis`` / ``OTEL_BSP_EXPORT_TIMEOUT`` (30000 ms): the
  longest one send may take, passed to the exporter as its ``timeout``
  (0: no limit beyond the exporter's own).

A bad argument is a ValueError naming it and what is allowed. A bad variable
(not a non-negative integer, or 0 for a size) is ignored with a
RuntimeWarning naming it, and the default is used, as the specification
asks; a batch size from the environment above the queue size is lowered to
it, with a warning.

Stopping is bounded as in :mod:`pyveda.telemetry.pusher`: ``force_flush`` and
``shutdown`` take a timeout and pass what is left of it to each send; at
interpreter exit a running processor is shut down within ``exit_timeout``
seconds; after ``fork()`` the child's processor starts a fresh thread that
reads only the spans the child ends.
"""

from __future__ import annotations

import inspect
import os
import re
import threading
import time
import warnings
from collections import deque
from typing import Any, Deque, List, Mapping, NamedTuple, Optional, Tuple

from pyveda import _core
from pyveda._checks import MAX_SECONDS, seconds, shown
from pyveda.telemetry.pusher import DEFAULT_EXIT_TIMEOUT_S, LiveThreads
from pyveda.telemetry.transport import ExportResult

__all__ = ["BatchSettings", "BatchSpanProcessor"]

_NEWEST = (1 << 64) - 1  # _spans_since(_NEWEST): no spans, just the newest sequence number
_IDLE_WAIT_S = 3600.0  # schedule delay 0, nothing queued: sleep until a span ends (or a wake)
_MAX_MILLIS = MAX_SECONDS * 1000.0
_STOP_POLL_S = 0.05  # shutdown wakes the thread this often until it has stopped


class BatchSettings(NamedTuple):
    """The four settings of a :class:`BatchSpanProcessor`. Build with :meth:`from_env`."""

    max_queue_size: int
    schedule_delay_millis: float
    max_export_batch_size: int
    export_timeout_millis: float  # 0: no limit

    @classmethod
    def from_env(
        cls,
        max_queue_size: Optional[int] = None,
        schedule_delay_millis: Optional[float] = None,
        max_export_batch_size: Optional[int] = None,
        export_timeout_millis: Optional[float] = None,
        *,
        environ: Optional[Mapping[str, str]] = None,
    ) -> "BatchSettings":
        """Each setting: the argument (checked), else its ``OTEL_BSP_*`` variable, else the default.

        ``environ`` defaults to ``os.environ``. See the module docs for the
        rules and what a bad argument or variable does.
        """
        env = os.environ if environ is None else environ
        queue, queue_from = _setting(env, "max_queue_size", max_queue_size, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, True)
        delay, _ = _setting(env, "schedule_delay_millis", schedule_delay_millis, "OTEL_BSP_SCHEDULE_DELAY", 5000, False)
        batch, batch_from = _setting(
            env, "max_export_batch_size", max_export_batch_size, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, True
        )
        timeout, _ = _setting(env, "export_timeout_millis", export_timeout_millis, "OTEL_BSP_EXPORT_TIMEOUT", 30000,
                              False)
        if batch > queue:
            if batch_from == "argument":
                where = {"argument": "", "environment": " (from OTEL_BSP_MAX_QUEUE_SIZE)"}.get(queue_from, " (its default)")
                raise ValueError(
                    f"max_export_batch_size must be <= max_queue_size{where}, got {batch} > {queue}"
                )
            if batch_from == "environment":
                warnings.warn(
                    f"pyveda: OTEL_BSP_MAX_EXPORT_BATCH_SIZE={batch} is above the max queue size {queue}; "
                    f"using {queue}",
                    RuntimeWarning,
                    stacklevel=3,
                )
            batch = queue  # the default 512 above a smaller queue size is lowered silently
        return cls(queue, float(delay), batch, float(timeout))


def _setting(env: Mapping[str, str], name: str, value: Any, env_name: str, default: int,
             size: bool) -> Tuple[Any, str]:
    """(the setting, where it came from: "argument", "environment" or "the default").

    ``size``: a positive int; else a number of milliseconds >= 0.
    """
    if value is not None:
        if size:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int or None, got {shown(value)}")
        elif (isinstance(value, bool) or not isinstance(value, (int, float))
              or not 0 <= value < _MAX_MILLIS):
            raise ValueError(
                f"{name} must be a number of milliseconds >= 0 (below 1e12) or None, got {shown(value)}"
            )
        return value, "argument"
    text = str(env.get(env_name, "")).strip()
    if not text:
        return default, "the default"
    if re.fullmatch(r"[0-9]+", text) and (int(text) >= 1 or not size) and int(text) < _MAX_MILLIS:
        return int(text), "environment"
    rule = "a positive integer" if size else "a non-negative integer number of milliseconds"
    warnings.warn(f"pyveda: ignoring {env_name}={text!r}: not {rule}; using the default {default}",
                  RuntimeWarning, stacklevel=4)
    return default, "the default"


def _millis(value: Any, what: str) -> Optional[float]:
    """A timeout in milliseconds (>= 0, or None for no limit) as seconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < _MAX_MILLIS:
        raise ValueError(f"{what} must be a number of milliseconds >= 0 or None, got {shown(value)}")
    return value / 1000.0


def _takes_timeout(send: Any) -> bool:
    """Whether ``send`` has a ``timeout`` keyword (PyVeda's OTLPExporter.send does)."""
    try:
        parameter = inspect.signature(send).parameters.get("timeout")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)


class BatchSpanProcessor:
    """Sends the spans a TracingSystem finishes through ``exporter.send`` in batches, from a daemon thread.

    ``exporter``: a :class:`~pyveda.telemetry.OTLPExporter`, or any object
    whose ``send(list_of_spans)`` returns something truthy on success (it is
    given ``timeout=`` seconds too when it takes that keyword); anything else
    is a TypeError. ``tracing``: the :class:`~pyveda.telemetry.TracingSystem`
    to read; None leaves the processor idle until :meth:`attach` (which
    ``pyveda.otel.TracerProvider.add_span_processor`` calls). Spans that ended
    before it was attached are not sent. The other settings are described in
    the module docs; the resolved ones are ``settings`` (:class:`BatchSettings`).

    Counts: ``exported_spans`` (sends that succeeded), ``failed_spans`` (sends
    that failed or raised; kept in ``last_result``, never raised), ``dropped``
    (queue full, or evicted from the store before being read).

    ``on_start``/``on_end`` exist for the shape of the SDK's SpanProcessor and
    do nothing. Thread-safety: every method may be called from any thread;
    sends happen one at a time, oldest spans first.
    """

    def __init__(
        self,
        exporter: Any,
        tracing: Optional[Any] = None,
        *,
        max_queue_size: Optional[int] = None,
        schedule_delay_millis: Optional[float] = None,
        max_export_batch_size: Optional[int] = None,
        export_timeout_millis: Optional[float] = None,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT_S,
    ) -> None:
        if not callable(getattr(exporter, "send", None)):
            raise TypeError(
                "exporter must be a pyveda OTLPExporter or an object with send(list_of_spans) returning a truthy "
                f"result on success, got {type(exporter).__name__}"
            )
        self.settings = BatchSettings.from_env(max_queue_size, schedule_delay_millis, max_export_batch_size,
                                               export_timeout_millis)
        self.exit_timeout = seconds(exit_timeout, "exit_timeout")
        self.exporter = exporter
        self._send_takes_timeout = _takes_timeout(exporter.send)
        self.tracing: Optional[Any] = None
        self._cursor = 0  # sequence number of the newest span read from the store
        self._exported = 0
        self._failed = 0
        self._dropped = 0
        self._last_result: Any = None
        self._shutdown = False
        self._shutdown_result = True
        self._init_state()
        if tracing is not None:
            self.attach(tracing)

    def _init_state(self) -> None:
        self._state_lock = threading.Lock()  # attach/shutdown; never held during a send
        self._lock = threading.Lock()  # held to read the store and send: one export at a time, in order
        self._queue: Deque[Tuple[int, Any]] = deque()  # (sequence number, span) read but not yet sent
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- state --

    @property
    def exported_spans(self) -> int:
        """Spans handed to the exporter in sends that succeeded."""
        return self._exported

    @property
    def failed_spans(self) -> int:
        """Spans in sends that failed (a falsy result or an exception)."""
        return self._failed

    @property
    def dropped(self) -> int:
        """Spans never sent: past ``max_queue_size`` when read, or evicted (or cleared) from the store unread."""
        return self._dropped

    @property
    def last_result(self) -> Any:
        """What the latest send returned (an ExportResult for PyVeda's exporter; None before the first)."""
        return self._last_result

    @property
    def running(self) -> bool:
        """Whether the background thread is alive and has not been told to stop."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    # -- binding --

    def attach(self, tracing: Any) -> "BatchSpanProcessor":
        """Starts reading ``tracing`` (a TracingSystem) from now on; returns self.

        Attaching the same tracing system again does nothing; another one is a
        ValueError, a shut-down processor a RuntimeError.
        """
        if not isinstance(tracing, _core.Tracer):
            raise TypeError(f"tracing must be a pyveda.telemetry.TracingSystem, got {type(tracing).__name__}")
        with self._state_lock:
            if self.tracing is tracing:
                return self
            if self._shutdown:
                raise RuntimeError("this BatchSpanProcessor is shut down; make a new one")
            if self.tracing is not None:
                raise ValueError("this BatchSpanProcessor already reads another TracingSystem")
            self.tracing = tracing
            self._cursor = tracing._spans_since(_NEWEST)[1]
            self._start_thread()
        _LIVE.add(self)
        return self

    def _start_thread(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="pyveda-batch-span-processor",
                                        daemon=True)
        self._thread.start()

    # -- the SDK's SpanProcessor shape --

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        """Nothing: spans are read from the store once they end."""

    def on_end(self, span: Any) -> None:
        """Nothing: the store already holds every finished span."""

    # -- the worker --

    def _run(self, stop: threading.Event) -> None:
        tracing = self.tracing
        delay = self.settings.schedule_delay_millis / 1000.0
        batch = self.settings.max_export_batch_size
        next_at = time.monotonic() + delay
        while not stop.is_set():
            queued = len(self._queue)
            if delay == 0.0:
                if queued == 0:
                    tracing._wait_for_spans(self._cursor + 1, _IDLE_WAIT_S)
            elif queued < batch:
                left = next_at - time.monotonic()
                if left > 0:
                    # Wakes when a batch is ready (queued + unread), at the delay, or on a wake.
                    tracing._wait_for_spans(self._cursor + batch - queued, left)
            if stop.is_set():
                break
            due = time.monotonic() >= next_at
            with self._lock:
                if stop.is_set():
                    break
                try:
                    # At the delay: what ended by now (not what ends meanwhile); before it: full batches.
                    through = tracing._spans_since(_NEWEST)[1] if due else None
                    sent = self._export(through, None)
                except Exception as e:  # never raise from the worker
                    self._last_result, sent = ExportResult(False, error=f"{type(e).__name__}: {e}"), 0
            if due or sent:
                next_at = time.monotonic() + delay

    def _pull(self) -> None:
        """Moves the spans ended since the cursor into the queue (lock held); counts what does not fit."""
        room = self.settings.max_queue_size - len(self._queue)
        if room <= 0:
            newest = self.tracing._spans_since(_NEWEST)[1]
            self._dropped += max(0, newest - self._cursor)
            self._cursor = max(self._cursor, newest)
            return
        spans, newest = self.tracing._spans_since(self._cursor)
        unread = newest - self._cursor
        if unread <= 0:
            return
        first = newest - len(spans) + 1  # the store returns the newest unread spans, in order
        keep = spans[:room]
        self._dropped += unread - len(keep)
        self._queue.extend(zip(range(first, first + len(keep)), keep))
        self._cursor = newest

    def _export(self, through: Optional[int], deadline: Optional[float]) -> int:
        """Sends batches (lock held); returns the spans sent or tried.

        ``through`` None: only full batches; else until no queued span has a
        sequence number <= ``through``. Stops at ``deadline`` (monotonic).
        """
        batch = self.settings.max_export_batch_size
        handled = 0
        while True:
            self._pull()
            queue = self._queue
            if not queue or (len(queue) < batch if through is None else queue[0][0] > through):
                return handled
            if deadline is not None and time.monotonic() >= deadline:
                return handled
            spans = [queue.popleft()[1] for _ in range(min(batch, len(queue)))]
            self._send(spans, deadline)
            handled += len(spans)

    def _pending(self, through: int) -> bool:
        return self._cursor < through or bool(self._queue and self._queue[0][0] <= through)

    def _send(self, spans: List[Any], deadline: Optional[float]) -> None:
        timeout = self.settings.export_timeout_millis / 1000.0 or None
        if deadline is not None:
            left = max(0.0, deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        try:
            if self._send_takes_timeout:
                result = self.exporter.send(spans, timeout=timeout)
            else:
                result = self.exporter.send(spans)
            ok = bool(result)
        except Exception as e:  # an exporter's trouble is counted, not raised
            result, ok = ExportResult(False, error=f"{type(e).__name__}: {e}"), False
        self._last_result = result
        if ok:
            self._exported += len(spans)
        else:
            self._failed += len(spans)

    # -- flushing and stopping --

    def force_flush(self, timeout_millis: Optional[float] = 30000) -> bool:
        """Sends every span that ended before the call; True if that finished within ``timeout_millis``.

        None waits without a limit. What is left of the timeout bounds each
        send. A send that fails still counts as done (see ``failed_spans`` and
        ``last_result``). After :meth:`shutdown`, returns False and sends nothing.
        """
        timeout = _millis(timeout_millis, "timeout_millis")
        if self._shutdown:
            return False
        if self.tracing is None:
            return True
        return self._flush(time.monotonic(), timeout)

    def _flush(self, start: float, timeout: Optional[float]) -> bool:
        deadline = None if timeout is None else start + timeout
        through = self.tracing._spans_since(_NEWEST)[1]
        if not self._lock.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
            return False
        try:
            self._export(through, deadline)
            return not self._pending(through)
        finally:
            self._lock.release()

    def shutdown(self, timeout_millis: Optional[float] = 30000) -> bool:
        """Sends what ended before the call, then stops the thread; later spans are not sent.

        True if that finished within ``timeout_millis`` (None: no limit).
        Calling it again does nothing and returns the first call's answer.
        """
        timeout = _millis(timeout_millis, "timeout_millis")
        start = time.monotonic()
        with self._state_lock:
            if self._shutdown:
                return self._shutdown_result
            self._shutdown = True
            self._stop.set()
        _LIVE.discard(self)
        thread, tracing = self._thread, self.tracing
        if tracing is None:
            return True
        done = True
        if thread is not None and thread.is_alive():
            if thread is threading.current_thread():
                done = False  # called from inside a send: the flush cannot wait for itself
            else:
                deadline = None if timeout is None else start + timeout
                while thread.is_alive():
                    # The thread may be waiting for a batch. A wake reaches only a wait under way,
                    # and the thread may have seen the stop unset just before it: wake until it ends.
                    tracing._wake_span_waiters()
                    left = _STOP_POLL_S if deadline is None else min(_STOP_POLL_S, deadline - time.monotonic())
                    if left <= 0:
                        break
                    thread.join(left)
                done = not thread.is_alive()  # else a send is still under way
        if done:
            done = self._flush(start, timeout)
        self._thread = None
        self._shutdown_result = done
        return done

    def _reinit_after_fork(self) -> None:
        # The parent's thread does not exist in the child and its lock may be held; the
        # parent sends its own spans, so the child starts reading at the store's newest.
        was_running = self._thread is not None and not self._shutdown
        self._init_state()
        if self.tracing is not None:
            self._cursor = self.tracing._spans_since(_NEWEST)[1]
        if was_running:
            self._start_thread()

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown else "running" if self.running else "idle"
        return (f"<pyveda BatchSpanProcessor {state}: {self._exported} exported, {self._failed} failed, "
                f"{self._dropped} dropped>")


# Every attached processor not yet shut down: re-made in a forked child, shut down at exit.
_LIVE = LiveThreads(lambda processor: processor.shutdown(timeout_millis=processor.exit_timeout * 1000.0))
