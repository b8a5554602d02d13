"""The ``pyveda`` command line: ``demo`` and ``top``, piped and on a real terminal (tmux)."""

import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

import pyveda as veda
from pyveda.telemetry import start_http_server
from pyveda.telemetry.dashboard import Dashboard, History, format_line, sparkline

PY = sys.executable
SPARK = set("▁▂▃▄▅▆▇█")


def _run(*args, timeout=120):
    return subprocess.run(
        [PY, "-m", "pyveda", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


# -- pieces --------------------------------------------------------------------------------------


def test_sparkline_scales_to_the_maximum():
    assert sparkline([0, 1, 2, 4]) == "▁▃▅█"
    assert sparkline([5, 5]) == "██"
    assert sparkline([0, 0, float("nan")]) == "▁▁▁"
    assert sparkline([]) == ""
    assert sparkline(range(100), width=10) == sparkline(range(90, 100))


def test_history_keeps_only_the_last_minute():
    history = History(seconds=60)
    for t in range(0, 120, 10):
        history.add({"system": {"throughput_tasks_per_sec": float(t)}, "latency": {"p99_ms": t / 10}}, now=t)
    assert history.throughput == [50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 110.0]
    assert history.p99 == [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]


SNAPSHOT = {
    "timestamp": 1.0,
    "tasks": {"executed": 1000, "failed": 80, "pending": 7},
    "latency": {"avg_ms": 1.5, "p50_ms": 1.0, "p95_ms": 3.0, "p99_ms": 4.25},
    "system": {"cpu_percent": 12.5, "memory_mb": 2048.0, "throughput_tasks_per_sec": 321.0,
               "gpu_percent": 40.0, "gpu_memory_mb": 1234.0},
    "gpus": [{"index": 0, "name": "Fake H100", "utilization_percent": 40.0, "memory_used_mb": 1234.0,
              "memory_total_mb": 81559.0, "temperature_c": 45.0, "power_w": 120.5}],
}


def test_render_shows_the_figures_gpu_rows_and_a_red_failure_rate():
    from rich.console import Console

    board = Dashboard(lambda: SNAPSHOT, failure_threshold=0.05)
    board.poll()
    board.poll()
    console = Console(width=120, height=40, record=True, force_terminal=True, color_system="standard")
    console.print(board.render())
    text = console.export_text(clear=False)
    for expected in ("PyVeda Live Dashboard", "Tasks Executed", "1,000", "Tasks Pending", "321.0 tasks/sec",
                     "4.25 ms", "12.5%", "2,048 MB", "GPU Usage", "40.0%", "Fake H100", "1,234 / 81,559"):
        assert expected in text, expected
    assert "8.0%" in text and SPARK & set(text)
    styled = console.export_text(styles=True)
    assert re.search(r"\x1b\[1;31m\s*8\.0%", styled), "failure rate above 5% should be bold red"

    ok = dict(SNAPSHOT, tasks={"executed": 1000, "failed": 10, "pending": 0})
    calm = Dashboard(lambda: ok)
    calm.poll()
    console = Console(width=120, height=40, record=True, force_terminal=True, color_system="standard")
    console.print(calm.render())
    styled = console.export_text(styles=True)
    assert "1.0%" in styled and not re.search(r"\x1b\[1;31m\s*1\.0%", styled)


def test_format_line_and_waiting_state():
    line = format_line(SNAPSHOT)
    assert "1000 executed" in line and "80 failed" in line and "321.0 tasks/s" in line and "GPU  40.0%" in line

    def broken():
        raise ConnectionError("connection refused")

    board = Dashboard(broken, waiting_for="http://x/metrics.json")
    assert board.poll() is None and board.error == "connection refused" and board.reads == 0


# -- pyveda demo, piped --------------------------------------------------------------------------


def test_demo_piped_prints_plain_lines_and_the_exposition():
    result = _run("demo", "--tasks", "300", "--threads", "2", "--port", "0")
    assert result.returncode == 0, result.stderr
    # stdout is exactly the exposition, so `pyveda demo | promtool check metrics` works.
    assert result.stdout.startswith("# HELP ")
    executed = re.search(r"^pyveda_tasks_executed_total (\d+)", result.stdout, re.M)
    assert executed and int(executed.group(1)) >= 300  # nested tasks spawn children
    assert re.search(r'^demo_requests_total\{route="/nested",outcome="ok"\} \d+', result.stdout, re.M)
    # stderr: the URL, plain periodic lines (no escape sequences), the final snapshot and summary.
    assert re.search(r"serving http://127\.0\.0\.1:\d+/metrics", result.stderr)
    lines = re.findall(r"^# +(\d+) executed .* tasks/s .* p99 .* ms", result.stderr, re.M)
    assert lines and 0 < int(lines[-1]) <= int(executed.group(1))
    assert "\x1b" not in result.stderr
    assert re.search(r"# demo: 300 tasks \(\d+ failed\) on 2 threads in [\d.]+s, \d+ spans", result.stderr)


def test_demo_rejects_bad_arguments():
    result = _run("demo", "--port", "70000")
    assert result.returncode == 2 and "0..65535" in result.stderr


# -- pyveda top ----------------------------------------------------------------------------------


@pytest.fixture
def served_runtime():
    runtime = veda.Runtime(veda.Config.builder().threads(2).telemetry(True).build())
    server = start_http_server(port=0, runtime=runtime)
    try:
        yield runtime, server
    finally:
        server.shutdown()
        runtime.shutdown()


def test_top_reads_metrics_json_of_another_process(served_runtime):
    runtime, server = served_runtime
    futures = [runtime.spawn(pow, 2, i) for i in range(250)]
    futures += [runtime.spawn(int, "not a number") for _ in range(9)]
    for f in futures:
        f.exception()
    # A future can resolve a moment before the core counts its task: wait for the count.
    deadline = time.monotonic() + 10
    while runtime.telemetry.snapshot().tasks_executed < 259 and time.monotonic() < deadline:
        time.sleep(0.01)
    expected = runtime.telemetry.snapshot()
    base = server.url[: -len("/metrics")]
    for url in (base, server.url, server.url + ".json"):  # any of the three spellings
        result = _run("top", url, "--iterations", "2", "--interval", "0.1")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 2, result.stdout
        match = re.match(r"\s*(\d+) executed\s+(\d+) failed \(\s*([\d.]+)%\)\s+(\d+) pending", lines[-1])
        assert match, lines[-1]
        assert int(match.group(1)) == expected.tasks_executed == 259
        assert int(match.group(2)) == expected.tasks_failed == 9
        assert float(match.group(3)) == pytest.approx(100 * 9 / 259, abs=0.05)
        assert f"p99 {expected.p99_latency_ms:7.2f} ms" in lines[-1]


def test_top_waits_and_retries_when_nothing_listens():
    with start_http_server(port=0) as server:
        port = server.port  # a port that was free a moment ago and is closed now
    result = _run("top", f"http://127.0.0.1:{port}", "--iterations", "2", "--interval", "0.1")
    assert result.returncode == 1  # a bounded run that never read a snapshot
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"waiting for http://127.0.0.1:{port}/metrics.json (") for line in lines)


def test_top_shows_why_a_server_has_no_snapshot():
    runtime = veda.Runtime(veda.Config.builder().threads(1).telemetry(False).build())
    try:
        with start_http_server(port=0, runtime=runtime) as server:
            result = _run("top", server.url, "--once")
    finally:
        runtime.shutdown()
    assert result.returncode == 1
    assert result.stdout == f"waiting for {server.url}.json (HTTP 503: telemetry is disabled)\n"


class _HostileServer:
    """A /metrics.json on 127.0.0.1 that misbehaves as ``mode`` says, on a thread of its own."""

    def __init__(self, mode):
        import http.server
        import threading

        outer = self
        self.stop = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                try:
                    if mode == "endless":  # a body that never ends, as fast as it can go
                        self.wfile.write(b'{"tasks": {"executed": ' + b"1" * 65536)
                        while not outer.stop.is_set():
                            self.wfile.write(b"1" * 65536)
                    elif mode == "trickle":  # one byte at a time, each well inside the socket timeout
                        for byte in b'{"tasks": {"executed": 1' + b" " * 1000:
                            if outer.stop.wait(0.2):
                                return
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                    else:
                        self.wfile.write(mode.encode())
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _top_against(mode, *extra):
    server = _HostileServer(mode)
    try:
        started = time.monotonic()
        result = _run("top", server.url, "--once", *extra, timeout=60)
        return result, time.monotonic() - started, server.url
    finally:
        server.close()


def test_top_caps_an_endless_reply():
    result, _, url = _top_against("endless")
    assert result.returncode == 1, result.stderr
    assert result.stdout == f"waiting for {url}/metrics.json (the reply is larger than 4 MiB)\n"


def test_top_holds_its_timeout_against_a_trickling_reply():
    # --interval 0.5 gives a 1.5 s deadline for the whole read; the server would take 200 s.
    result, elapsed, url = _top_against("trickle", "--interval", "0.5")
    assert result.returncode == 1, result.stderr
    assert result.stdout == f"waiting for {url}/metrics.json (no complete reply within 1.5 s)\n"
    assert elapsed < 30  # bounded (not a timing threshold on speed: the unfixed read takes over 200 s)


@pytest.mark.parametrize(
    "body, reason",
    [
        ("[1, 2]", "the response is not a pyveda snapshot"),
        ("{oops", "the response is not JSON"),
        ('{"timestamp": 1, "tasks": {"executed": NaN, "failed": 0, "pending": 0}, '
         '"latency": {"avg_ms": 1, "p50_ms": 1, "p95_ms": 1, "p99_ms": 1}, '
         '"system": {"cpu_percent": 1, "memory_mb": 1, "throughput_tasks_per_sec": 1}}',
         "not a valid pyveda snapshot: MetricsSnapshot: tasks_executed must be an int >= 0, got nan"),
        ('{"timestamp": 1, "tasks": {"executed": 5, "failed": 0, "pending": 0}, "latency": "fast", '
         '"system": {"cpu_percent": 1, "memory_mb": 1, "throughput_tasks_per_sec": 1}}',
         "not a valid pyveda snapshot: MetricsSnapshot.from_json: missing 'latency.avg_ms'"),
        ('{"timestamp": 1, "tasks": {"executed": 5, "failed": 0, "pending": 0}, '
         '"latency": {"avg_ms": "1", "p50_ms": 1, "p95_ms": 1, "p99_ms": 1}, '
         '"system": {"cpu_percent": 1, "memory_mb": 1, "throughput_tasks_per_sec": 1}}',
         "not a valid pyveda snapshot: MetricsSnapshot: avg_latency_ms must be a finite number >= 0, got '1'"),
    ],
)
def test_top_reports_a_malformed_snapshot_in_one_line(body, reason):
    result, _, url = _top_against(body)
    assert result.returncode == 1
    assert result.stderr == ""  # no traceback
    assert result.stdout == f"waiting for {url}/metrics.json ({reason})\n"


@pytest.mark.parametrize(
    "url, reason",
    [("ftp://example.com", "http:// or https://"), ("http://:9464", "no host"), ("http://h:99999", "invalid port"),
     ("localhost:9464", "http:// or https://")],
)
def test_top_bad_url_exits_2(url, reason):
    result = _run("top", url, "--once")
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"pyveda top: invalid URL {url!r}" in result.stderr and reason in result.stderr


# -- the dashboard on a real terminal (tmux) ------------------------------------------------------

# After the command exits, the shell prints its exit status and the terminal modes
# (icanon/echo, or -icanon/-echo while cbreak is still on), then stays for the capture.
AFTER = "; echo PYVEDA_EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo; sleep 120"


class Tmux:
    """One tmux server (own socket) with one 120x40 session running a command."""

    def __init__(self, cwd):
        self.socket = f"pyveda-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.cwd = str(cwd)
        self.env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
        self.env.pop("TMUX", None)

    def __call__(self, *args):
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=self.env, timeout=30
        )

    def start(self, command):
        started = self("-u", "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", "-c", self.cwd, command + AFTER)
        assert started.returncode == 0, started.stderr

    def pane(self):
        return self("capture-pane", "-p", "-t", "t").stdout

    def alternate_screen(self):
        return self("display", "-p", "-t", "t", "#{alternate_on}").stdout.strip() == "1"

    def wait_for(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        text = self.pane()
        while not predicate(text) and time.monotonic() < deadline:
            time.sleep(0.25)
            text = self.pane()
        return text

    def wait_for_exit(self):
        return self.wait_for(lambda text: "PYVEDA_EXIT=" in text and re.search(r"^-?echo$", text, re.M), 30)


@pytest.fixture
def tmux(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed (apt-get install tmux; .ci/run does this)")
    session = Tmux(tmp_path)
    try:
        yield session
    finally:
        session("kill-server")


def _restored(text):
    """The shell's report after the command: canonical input and echo are on again."""
    return re.search(r"^icanon$", text, re.M) and re.search(r"^echo$", text, re.M)


def test_demo_dashboard_in_a_terminal_quits_on_q_and_restores_it(tmux):
    tmux.start(f"{PY} -m pyveda demo --tasks 5000 --threads 2 --port 0 --duration 30")

    def live(text):
        return ("PyVeda Live Dashboard" in text and re.search(r"Tasks Executed\s+[1-9][\d,]*", text)
                and re.search(r"Throughput\s+[▁▂▃▄▅▆▇█]{3,}", text))

    screen = tmux.wait_for(live, 30)
    assert live(screen), f"dashboard not shown:\n{screen}"
    assert re.search(r"P99 Latency\s+[\d.]+ ms", screen) and re.search(r"CPU Usage\s+[\d.]+%", screen)
    assert re.search(r"P99 Latency\s+[▁▂▃▄▅▆▇█]{3,}", screen)
    assert re.search(r"metrics at http://127\.0\.0\.1:\d+/metrics", screen)
    assert tmux.alternate_screen()

    tmux("send-keys", "-t", "t", "q")
    after = tmux.wait_for_exit()
    assert "PYVEDA_EXIT=0" in after, after
    # Back on the normal screen: the dashboard is gone, the summary and the shell remain,
    # and cbreak mode was undone.
    assert not tmux.alternate_screen()
    assert "PyVeda Live Dashboard" not in after and not SPARK & set(after)
    assert re.search(r"^Tasks Executed: [1-9]\d*$", after, re.M), after
    assert "(stopped early)" in after  # q ended it well before the 30 s
    assert _restored(after), after


def test_demo_without_duration_keeps_running_rounds_in_a_terminal_until_ctrl_c(tmux):
    # The README's first command: `pyveda demo`, no --duration. One round is 300
    # tasks; the dashboard must still be up after more than three rounds.
    tmux.start(f"{PY} -m pyveda demo --tasks 300 --threads 2 --port 0")

    def executed(text):
        match = re.search(r"Tasks Executed\s+([\d,]+)", text)
        return int(match.group(1).replace(",", "")) if match else 0

    screen = tmux.wait_for(lambda text: executed(text) > 1000, 60)
    assert executed(screen) > 1000, f"the demo stopped after its first round:\n{screen}"
    assert tmux.alternate_screen()

    tmux("send-keys", "-t", "t", "C-c")
    after = tmux.wait_for_exit()
    assert "PYVEDA_EXIT=0" in after and "Traceback" not in after, after
    match = re.search(r"^# demo: (\d+) tasks", after, re.M)
    assert match and int(match.group(1)) > 1000, after
    assert _restored(after), after


def test_top_in_a_terminal_waits_for_the_url_and_quits_on_ctrl_c(tmux):
    with start_http_server(port=0) as server:
        port = server.port  # free a moment ago, closed now: nothing answers
    url = f"http://127.0.0.1:{port}/metrics.json"
    tmux.start(f"{PY} -m pyveda top http://127.0.0.1:{port} --interval 0.2")
    screen = tmux.wait_for(lambda text: f"waiting for {url}" in text, 30)
    assert f"waiting for {url}" in screen and "Tasks Executed" in screen, screen
    assert tmux.alternate_screen()

    tmux("send-keys", "-t", "t", "C-c")
    after = tmux.wait_for_exit()
    assert "PYVEDA_EXIT=0" in after and "Traceback" not in after, after
    assert not tmux.alternate_screen() and "waiting for" not in after
    assert _restored(after), after
