"""A background thread that sends telemetry every interval: the piece every pushing exporter shares.

>>> pusher = PeriodicPusher(exporter.send, name="pyveda-otlp-exporter")   # doctest: +SKIP
>>> pusher.start(10.0, telemetry.snapshot)                                 # doctest: +SKIP

Every ``interval`` seconds the pusher calls ``source()`` and queues what it
returns (None: nothing this time), then sends the queue in order through
``send(item)``. ``submit(item)`` queues from any thread; the queue is bounded
(``max_queue_size``) and drops its oldest item when full, counting it in
``dropped``.

Stopping is bounded in time:

- ``shutdown(timeout)`` takes a last collection, sends what is queued and
  returns within about ``timeout`` seconds (None: waits for the sends). If the
  sends are not done by then, ``cancelled`` is set: a send that passes it to
  the transport (the OTLP exporter's do) is cut off, and what is still queued
  is dropped and counted in ``dropped``.
- At interpreter exit every running pusher is shut down the same way, within
  ``exit_timeout`` seconds (as opentelemetry-sdk flushes its processors at exit),
  so what was recorded since the last push is not lost.
- After ``fork()`` the child has no thread of the parent's: a pusher that was
  running starts a fresh one in the child, with an empty queue.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable, Deque, Optional

from pyveda._checks import seconds

__all__ = ["DEFAULT_EXIT_TIMEOUT_S", "PeriodicPusher"]

#: How long the exit flush of one pusher may take by default.
DEFAULT_EXIT_TIMEOUT_S = 5.0


class PeriodicPusher:
    """Sends ``source()`` through ``send`` every interval from a daemon thread; see the module docs.

    ``send(item)`` returns a result kept in ``last_result`` (an exception it
    raises is kept as a failed result's message). Thread-safety: every method
    may be called from any thread.
    """

    def __init__(
        self,
        send: Callable[[Any], Any],
        *,
        name: str = "pyveda-pusher",
        max_queue_size: int = 64,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT_S,
        failure: Callable[[str], Any] = lambda message: message,
    ) -> None:
        if isinstance(max_queue_size, bool) or not isinstance(max_queue_size, int) or max_queue_size < 1:
            raise ValueError(f"max_queue_size must be an int >= 1, got {max_queue_size!r}")
        self.exit_timeout = seconds(exit_timeout, "exit_timeout")
        self._send = send
        self._failure = failure
        self._name = name
        self.max_queue_size = max_queue_size
        self.dropped = 0
        self.last_result: Any = None
        self._init_state()
        _LIVE.add(self)

    def _init_state(self) -> None:
        self._queue: Deque[Any] = deque()
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # one drain at a time keeps the order
        self._wake = threading.Event()
        self._stop = threading.Event()
        #: Set when shutdown() gives up waiting; sends in flight should stop.
        self.cancelled = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._interval = 0.0
        self._source: Optional[Callable[[], Any]] = None

    @property
    def running(self) -> bool:
        """Whether the background thread is alive and has not been told to stop."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def submit(self, item: Any) -> bool:
        """Queues ``item``; when the queue is full the oldest item is dropped, counted, and False returned."""
        with self._lock:
            accepted = True
            if len(self._queue) >= self.max_queue_size:
                self._queue.popleft()
                self.dropped += 1
                accepted = False
            self._queue.append(item)
        self._wake.set()
        return accepted

    def start(self, interval: float, source: Optional[Callable[[], Any]] = None) -> None:
        """Starts the thread: ``source()`` every ``interval`` seconds (> 0), plus what ``submit`` queues."""
        interval = seconds(interval, "interval", positive=True)
        if source is not None and not callable(source):
            raise TypeError(f"source must be callable or None, got {type(source).__name__}")
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("already started; call shutdown() first")
        self._interval = float(interval)
        self._source = source
        self._stop = threading.Event()
        self.cancelled.clear()
        self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        source = self._source
        if source is None:
            return
        try:
            item = source()
        except Exception as e:
            self.last_result = self._failure(f"source failed: {e}")
            return
        if item is not None:
            self.submit(item)

    def _drain(self) -> None:
        with self._send_lock:
            while True:
                with self._lock:
                    if not self._queue:
                        return
                    item = self._queue.popleft()
                try:
                    self.last_result = self._send(item)
                except Exception as e:
                    self.last_result = self._failure(f"{type(e).__name__}: {e}")

    def _final(self) -> None:
        self._collect()
        self._drain()

    def _run(self) -> None:
        next_at = time.monotonic() + self._interval
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_at - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                break
            if time.monotonic() >= next_at:
                next_at = time.monotonic() + self._interval
                self._collect()
            self._drain()
        self._final()

    def force_flush(self, timeout: Optional[float] = None) -> bool:
        """Sends what is queued now; True if that finished within ``timeout`` seconds (None: waits)."""
        timeout = seconds(timeout, "timeout", allow_none=True)
        return self._bounded(self._drain, timeout)

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Stops the thread after a last collection and send; True if all that finished within ``timeout``.

        Returns within about ``timeout`` seconds (None: waits). Calling it
        again, or on a pusher never started, runs the last collection and send again.
        """
        timeout = seconds(timeout, "timeout", allow_none=True)
        thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)  # the thread runs _final() as it stops
            done = not thread.is_alive()
        else:
            thread = None
            done = self._bounded(self._final, timeout)
        if not done:
            self._give_up()
            if thread is not None:
                thread.join(0.5)  # a cancelled send ends at once
        self._thread = None
        self._source = None  # let go of what it read from (a tracing system, a runtime)
        return done

    def _give_up(self) -> None:
        self.cancelled.set()
        with self._lock:
            self.dropped += len(self._queue)
            self._queue.clear()

    @staticmethod
    def _bounded(work: Callable[[], None], timeout: Optional[float]) -> bool:
        if timeout is None:
            work()
            return True
        helper = threading.Thread(target=work, name="pyveda-pusher-flush", daemon=True)
        helper.start()
        helper.join(timeout)
        return not helper.is_alive()

    def _reinit_after_fork(self) -> None:
        # The parent's thread does not exist in the child, and its locks may be held.
        was_running = self._thread is not None and not self._stop.is_set()
        interval, source = self._interval, self._source
        self._init_state()
        if was_running:
            self._interval, self._source = interval, source
            self._start_thread()


class LiveThreads:
    """The live background senders of one kind, for the fork and exit hooks they all need.

    Each member has ``_reinit_after_fork()`` (called in a forked child, where
    its thread does not exist) and ``running``; at interpreter exit each
    running member is passed to ``at_exit`` (which shuts it down within its
    exit timeout). Members are held weakly; ``add`` and ``discard`` are
    thread-safe (a WeakSet's are).
    """

    def __init__(self, at_exit: Callable[[Any], Any]) -> None:
        self._members: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._at_exit = at_exit
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)
        atexit.register(self._flush_at_exit)

    def add(self, member: Any) -> None:
        self._members.add(member)

    def discard(self, member: Any) -> None:
        self._members.discard(member)

    def _after_fork_in_child(self) -> None:
        for member in list(self._members):
            member._reinit_after_fork()

    def _flush_at_exit(self) -> None:
        for member in list(self._members):
            if member.running:
                self._at_exit(member)


_LIVE = LiveThreads(lambda pusher: pusher.shutdown(timeout=pusher.exit_timeout))
