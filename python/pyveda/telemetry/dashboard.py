"""A live terminal dashboard of runtime snapshots (``pyveda demo``, ``pyveda top``).

>>> from pyveda.telemetry.dashboard import Dashboard
>>> board = Dashboard(lambda: runtime.telemetry.snapshot().export_json(), title="my service")
>>> board.run()          # until q / Ctrl+C, or until ``board.stop()`` from another thread

The dashboard reads snapshots as the dict of
:meth:`~pyveda.telemetry.MetricsSnapshot.export_json` (so the same code shows
this process and, through ``/metrics.json``, another one). On a terminal it is
a full-screen ``rich`` layout (the alternate screen, so the terminal is given
back untouched on exit) with the telemetry guide's figures, sparklines of
throughput and p99 latency over the last minute and one row per GPU; the
terminal is put in cbreak mode while a thread reads keys, and restored on
exit. Elsewhere (a pipe, a file) it prints one plain line per refresh.

``rich`` is imported only when the full-screen view starts. Not thread-safe:
one thread runs a dashboard; :meth:`Dashboard.stop` may be called from any.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, TextIO, Tuple

__all__ = ["Dashboard", "History", "format_line", "format_summary", "sparkline"]

#: Source of snapshots: returns an ``export_json()`` dict, or raises (shown as "waiting").
Source = Callable[[], Dict[str, Any]]

_BLOCKS = "▁▂▃▄▅▆▇█"
_HISTORY_SECONDS = 60.0
_HISTORY_CAP = 1024  # samples kept at most, whatever the refresh rate


def sparkline(values: Iterable[float], width: Optional[int] = None) -> str:
    """Unicode block sparkline of ``values`` (the last ``width`` of them), scaled 0..max.

    Zero (and NaN or negative values) draws the lowest block, so a flat idle
    line is still visible; an empty input gives "".
    """
    data = [v if isinstance(v, (int, float)) and math.isfinite(v) and v > 0 else 0.0 for v in values]
    if width is not None:
        data = data[-width:] if width > 0 else []
    if not data:
        return ""
    top = max(data)
    if top <= 0:
        return _BLOCKS[0] * len(data)
    last = len(_BLOCKS) - 1
    return "".join(_BLOCKS[min(last, int(round(v / top * last)))] for v in data)


class History:
    """Throughput and p99 latency samples of the last ``seconds`` (bounded)."""

    def __init__(self, seconds: float = _HISTORY_SECONDS) -> None:
        self.seconds = seconds
        self._samples: Deque[Tuple[float, float, float]] = deque(maxlen=_HISTORY_CAP)

    def add(self, data: Dict[str, Any], now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        system = data.get("system", {})
        latency = data.get("latency", {})
        self._samples.append(
            (now, float(system.get("throughput_tasks_per_sec", 0.0)), float(latency.get("p99_ms", 0.0)))
        )
        while self._samples and self._samples[0][0] < now - self.seconds:
            self._samples.popleft()

    @property
    def throughput(self) -> List[float]:
        return [s[1] for s in self._samples]

    @property
    def p99(self) -> List[float]:
        return [s[2] for s in self._samples]

    def __len__(self) -> int:
        return len(self._samples)


def _failure_rate(data: Dict[str, Any]) -> float:
    tasks = data.get("tasks", {})
    executed = tasks.get("executed", 0)
    return tasks.get("failed", 0) / executed if executed else 0.0


def format_line(data: Dict[str, Any]) -> str:
    """One plain line with the dashboard's figures (the non-terminal view)."""
    tasks, latency, system = data.get("tasks", {}), data.get("latency", {}), data.get("system", {})
    line = (
        f"{tasks.get('executed', 0):7d} executed  {tasks.get('failed', 0):5d} failed "
        f"({_failure_rate(data):5.1%})  {tasks.get('pending', 0):5d} pending  "
        f"{system.get('throughput_tasks_per_sec', 0.0):8.1f} tasks/s  "
        f"avg {latency.get('avg_ms', 0.0):7.2f} ms  p99 {latency.get('p99_ms', 0.0):7.2f} ms  "
        f"CPU {system.get('cpu_percent', 0.0):5.1f}%  mem {system.get('memory_mb', 0.0):7.0f} MB"
    )
    if system.get("gpu_percent") is not None:
        line += f"  GPU {system['gpu_percent']:5.1f}%"
    if system.get("gpu_memory_mb") is not None:
        line += f"  GPU mem {system['gpu_memory_mb']:.0f} MB"
    return line


def format_summary(data: Dict[str, Any]) -> str:
    """The guide's dashboard figures as a multi-line block (printed after the live view)."""
    tasks, latency, system = data.get("tasks", {}), data.get("latency", {}), data.get("system", {})
    lines = [
        f"Tasks Executed: {tasks.get('executed', 0)}",
        f"Tasks Failed:   {tasks.get('failed', 0)} ({_failure_rate(data):.1%})",
        f"Tasks Pending:  {tasks.get('pending', 0)}",
        f"Throughput:     {system.get('throughput_tasks_per_sec', 0.0):.1f} tasks/sec",
        f"Avg Latency:    {latency.get('avg_ms', 0.0):.2f}ms",
        f"P99 Latency:    {latency.get('p99_ms', 0.0):.2f}ms",
        f"CPU Usage:      {system.get('cpu_percent', 0.0):.1f}%",
        f"Memory:         {system.get('memory_mb', 0.0):.0f}MB",
    ]
    if system.get("gpu_percent") is not None:
        lines.append(f"GPU Usage:      {system['gpu_percent']:.1f}%")
    if system.get("gpu_memory_mb") is not None:
        lines.append(f"GPU Memory:     {system['gpu_memory_mb']:.0f}MB")
    return "\n".join(lines)


class _KeyReader:
    """Cbreak mode on the controlling terminal and a thread that reads keys; restores on exit.

    Calls ``on_quit`` when q (or Q) is pressed. Ctrl+C still raises
    KeyboardInterrupt in the main thread (cbreak keeps signals). Does nothing
    when stdin is not a terminal.
    """

    def __init__(self, on_quit: Callable[[], None]) -> None:
        self._on_quit = on_quit
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._saved: Any = None
        self._fd = -1

    def __enter__(self) -> "_KeyReader":
        try:
            import termios
            import tty

            fd = sys.stdin.fileno()
            if not os.isatty(fd):
                return self
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        except (ImportError, OSError, ValueError, AttributeError):
            return self  # no terminal (or not POSIX): Ctrl+C still quits
        self._fd = fd
        self._thread = threading.Thread(target=self._read, name="pyveda-dashboard-keys", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        import select

        while not self._done.is_set():
            try:
                ready, _, _ = select.select([self._fd], [], [], 0.1)
                if not ready:
                    continue
                key = os.read(self._fd, 1)
            except OSError:
                return
            if not key:  # EOF: the terminal went away
                return
            if key in (b"q", b"Q"):
                self._on_quit()

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)


class Dashboard:
    """Shows snapshots from ``source`` every ``interval`` seconds until stopped.

    ``source`` returns an ``export_json()`` dict or raises; while it raises the
    view says "waiting for <waiting_for>" and keeps retrying. ``subtitle`` is
    shown under the title (a URL, say). The failure rate is shown red above
    ``failure_threshold`` (a fraction). ``stream`` (default stdout) decides the
    mode: full screen when it is a terminal, plain lines otherwise.
    """

    def __init__(
        self,
        source: Source,
        *,
        title: str = "PyVeda Live Dashboard",
        subtitle: str = "",
        waiting_for: str = "data",
        interval: float = 1.0,
        failure_threshold: float = 0.05,
        stream: Optional[TextIO] = None,
        plain_prefix: str = "",
        plain: bool = False,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.source = source
        self.title = title
        self.subtitle = subtitle
        self.waiting_for = waiting_for
        self.interval = float(interval)
        self.failure_threshold = float(failure_threshold)
        self.stream = stream if stream is not None else sys.stdout
        self.plain_prefix = plain_prefix
        self.plain = plain
        self.history = History()
        self.latest: Optional[Dict[str, Any]] = None  # the last snapshot read
        self.error: Optional[str] = None  # why the last read failed, or None
        self.reads = 0  # successful reads so far
        self._stop = threading.Event()

    # -- control --

    def stop(self) -> None:
        """Ends :meth:`run` at its next wake-up (thread-safe)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def is_fullscreen(self) -> bool:
        if self.plain:
            return False
        isatty = getattr(self.stream, "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # closed stream
            return False

    def poll(self) -> Optional[Dict[str, Any]]:
        """Reads one snapshot from the source into ``latest``/``history``; None (and ``error``) on failure."""
        try:
            data = self.source()
        except Exception as exc:  # noqa: BLE001 - any failure of the source means "not yet"
            self.error = str(exc) or type(exc).__name__
            return None
        self.error = None
        self.latest = data
        self.reads += 1
        self.history.add(data)
        return data

    def run(self, iterations: Optional[int] = None, until: Optional[Callable[[], bool]] = None) -> None:
        """Refreshes until q, Ctrl+C, :meth:`stop`, ``iterations`` refreshes or ``until()`` is true.

        Ctrl+C ends the view quietly (no KeyboardInterrupt escapes).
        """
        try:
            if self.is_fullscreen():
                self._run_fullscreen(iterations, until)
            else:
                self._run_plain(iterations, until)
        except KeyboardInterrupt:
            self._stop.set()

    def _ticks(self, iterations: Optional[int], until: Optional[Callable[[], bool]]) -> Iterable[bool]:
        """Yields once per refresh; True on the last one."""
        count = 0
        while True:
            count += 1
            last = (
                self._stop.is_set()
                or (iterations is not None and count >= iterations)
                or (until is not None and until())
            )
            yield last
            if last:
                return
            self._stop.wait(self.interval)

    def _run_plain(self, iterations: Optional[int], until: Optional[Callable[[], bool]]) -> None:
        for _ in self._ticks(iterations, until):
            data = self.poll()
            if data is None:
                text = f"waiting for {self.waiting_for} ({self.error})"
            else:
                text = format_line(data)
            print(f"{self.plain_prefix}{text}", file=self.stream, flush=True)

    def _run_fullscreen(self, iterations: Optional[int], until: Optional[Callable[[], bool]]) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.stream)
        with _KeyReader(self.stop):
            self.poll()
            with Live(self.render(), console=console, screen=True, auto_refresh=False, transient=True) as live:
                for _ in self._ticks(iterations, until):
                    self.poll()
                    live.update(self.render(), refresh=True)

    # -- rendering (rich) --

    def render(self) -> Any:
        """The full-screen view of ``latest`` and ``history`` as a rich renderable."""
        from rich import box
        from rich.console import Group
        from rich.layout import Layout
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        header = Text(self.title, style="bold cyan")
        if self.subtitle:
            header.append(f"   {self.subtitle}", style="dim")
        if self.error is not None:
            header.append(f"\nwaiting for {self.waiting_for} ({self.error})", style="bold yellow")
        else:
            header.append(f"\nupdated {time.strftime('%H:%M:%S')}", style="dim")

        data = self.latest or {}
        tasks, latency, system = data.get("tasks", {}), data.get("latency", {}), data.get("system", {})

        def figures(rows: List[Tuple[str, Any]]) -> Table:
            table = Table.grid(padding=(0, 2))
            table.add_column(style="bold")
            table.add_column(justify="right")
            for label, value in rows:
                table.add_row(label, value)
            return table

        rate = _failure_rate(data)
        bad = rate > self.failure_threshold
        rate_text = Text(f"{rate:.1%}", style="bold red" if bad else "green")
        if bad:
            rate_text.append(f"  > {self.failure_threshold:.0%}", style="red")
        task_rows = [
            ("Tasks Executed", f"{tasks.get('executed', 0):,}"),
            ("Tasks Failed", Text(f"{tasks.get('failed', 0):,}", style="bold red" if bad else "")),
            ("Failure Rate", rate_text),
            ("Tasks Pending", f"{tasks.get('pending', 0):,}"),
            ("Throughput", f"{system.get('throughput_tasks_per_sec', 0.0):,.1f} tasks/sec"),
            ("Avg Latency", f"{latency.get('avg_ms', 0.0):.2f} ms"),
            ("P99 Latency", f"{latency.get('p99_ms', 0.0):.2f} ms"),
        ]
        system_rows = [
            ("CPU Usage", f"{system.get('cpu_percent', 0.0):.1f}%"),
            ("Memory", f"{system.get('memory_mb', 0.0):,.0f} MB"),
        ]
        if system.get("gpu_percent") is not None:
            system_rows.append(("GPU Usage", f"{system['gpu_percent']:.1f}%"))
        if system.get("gpu_memory_mb") is not None:
            system_rows.append(("GPU Memory", f"{system['gpu_memory_mb']:,.0f} MB"))

        width = 60
        throughput, p99 = self.history.throughput, self.history.p99
        trends = Table.grid(padding=(0, 2))
        trends.add_column(style="bold")
        trends.add_column()
        trends.add_column(justify="right", style="dim")
        trends.add_row(
            "Throughput",
            Text(sparkline(throughput, width), style="cyan"),
            f"max {max(throughput, default=0.0):,.1f}/s",
        )
        trends.add_row(
            "P99 Latency", Text(sparkline(p99, width), style="magenta"), f"max {max(p99, default=0.0):.2f} ms"
        )

        layout = Layout(name="root")
        parts = [
            Layout(Panel(header, box=box.ROUNDED), name="header", size=4),
            Layout(name="figures", size=11),
            Layout(Panel(trends, title="last minute", box=box.ROUNDED), name="trends", size=4),
        ]
        gpus = data.get("gpus") or []
        if gpus:
            gpu_table = Table(box=box.SIMPLE_HEAD, expand=True)
            for column in ("GPU", "Name", "Util %", "Memory MB", "Temp °C", "Power W"):
                gpu_table.add_column(column, justify="left" if column == "Name" else "right")
            for gpu in gpus:
                gpu_table.add_row(
                    str(gpu.get("index", "")),
                    str(gpu.get("name", "")),
                    _fmt(gpu.get("utilization_percent"), "{:.1f}"),
                    f"{_fmt(gpu.get('memory_used_mb'), '{:,.0f}')} / {_fmt(gpu.get('memory_total_mb'), '{:,.0f}')}",
                    _fmt(gpu.get("temperature_c"), "{:.0f}"),
                    _fmt(gpu.get("power_w"), "{:.1f}"),
                )
            parts.append(Layout(Panel(gpu_table, title="GPUs", box=box.ROUNDED), name="gpus", size=len(gpus) + 5))
        parts.append(Layout(Text(" q / Ctrl+C: quit", style="dim"), name="footer", size=1))
        parts.append(Layout(Text(" "), name="rest"))  # blank filler ("" would show a placeholder)
        layout.split_column(*parts)
        layout["figures"].split_row(
            Layout(Panel(figures(task_rows), title="Tasks", box=box.ROUNDED)),
            Layout(Panel(Group(figures(system_rows)), title="System", box=box.ROUNDED)),
        )
        return layout


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else spec.format(value)
