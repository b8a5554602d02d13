"""Multi-process mode under gunicorn (PyPI) with 4 sync workers, with and without --preload.

Every scrape of /metrics, whichever worker answers, shows exactly the
requests made; a worker killed with SIGKILL (gunicorn starts another) loses
no count, and a livesum gauge drops its share. Debian's Prometheus scrapes
the app and sum() equals the requests made.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from servers import fetch, free_port, start_prometheus, stop_server, values, wait_until

psutil = pytest.importorskip("psutil")
pytest.importorskip("gunicorn")

HERE = Path(__file__).resolve().parent
WORKERS = 4
REQUESTS = 240  # 60 per route


def sample(text, name, labels=""):
    """The value of one sample line, or None."""
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def total(text, name):
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def start_gunicorn(tmp_path, preload):
    directory = tmp_path / "multiproc"
    directory.mkdir()
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(textwrap.dedent("""
        from pyveda.telemetry import multiprocess

        def post_worker_init(worker):
            import _multiprocess_app as app
            app.WORKERS_UP.set(1)
            app.WORKERS_EVER.set(1)

        def child_exit(server, worker):
            multiprocess.mark_process_dead(worker.pid)
    """))
    port = free_port()
    env = dict(os.environ, PYVEDA_MULTIPROC_DIR=str(directory), PYTHONPATH=str(HERE))
    argv = [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-k", "sync", "-b", f"127.0.0.1:{port}",
            "-c", str(config), "--graceful-timeout", "5", "--timeout", "30"]
    if preload:
        argv.append("--preload")
    argv.append("_multiprocess_app:app")
    log = open(tmp_path / "gunicorn.log", "wb")
    process = subprocess.Popen(argv, env=env, cwd=str(HERE), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready():
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{(tmp_path / 'gunicorn.log').read_text()}")
        try:
            status, _, body = fetch(url + "/metrics")
        except OSError:
            return False
        return status == 200 and sample(body.decode(), "app_workers_up") == WORKERS

    wait_until(ready, 60, "gunicorn's 4 workers")
    return process, log, url, directory


def scrape(url):
    status, _, body = fetch(url + "/metrics")
    assert status == 200
    return body.decode()


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_gunicorn_workers_aggregate_exactly(tmp_path, preload):
    process, log, url, directory = start_gunicorn(tmp_path, preload)
    prometheus = None
    try:
        routes = ["a", "b", "c", "d"]
        errors = []

        def client():
            try:
                for i in range(REQUESTS):
                    status, _, _ = fetch(f"{url}/{routes[i % 4]}/{'x' * (i % 50)}")
                    assert status == 200
            except Exception as e:  # reported by the main thread
                errors.append(e)

        thread = threading.Thread(target=client)
        thread.start()
        thread.join(120)
        assert not thread.is_alive() and not errors, errors

        # Many scrapes: whichever worker answers, the totals are exact.
        for _ in range(12):
            text = scrape(url)
            assert total(text, "app_requests_total") == REQUESTS, text
            for route in routes:
                assert sample(text, "app_requests_total", f'{{route="{route}"}}') == REQUESTS / 4
            assert sample(text, "app_request_size_bytes_count") == REQUESTS
            assert sample(text, "app_request_size_bytes_bucket", '{le="+Inf"}') == REQUESTS
            assert sample(text, "app_workers_up") == WORKERS
        # One file per live process (the workers and the master), and the archive at most.
        assert len(list(directory.glob("pyveda-*.mp"))) == WORKERS + 1

        # SIGKILL one worker; gunicorn starts another.
        master = psutil.Process(process.pid)
        workers = master.children()
        assert len(workers) == WORKERS
        victim = workers[0].pid
        os.kill(victim, signal.SIGKILL)

        def replaced():
            pids = {c.pid for c in master.children()}
            return len(pids) == WORKERS and victim not in pids and sample(scrape(url), "app_workers_started") == WORKERS + 1

        wait_until(replaced, 60, "gunicorn to replace the killed worker")
        text = scrape(url)
        assert total(text, "app_requests_total") == REQUESTS, text  # nothing lost with the killed worker
        assert sample(text, "app_request_size_bytes_count") == REQUESTS
        assert sample(text, "app_workers_up") == WORKERS  # livesum: the dead worker's 1 is gone
        assert sample(text, "app_workers_started") == WORKERS + 1  # sum: it stays
        # child_exit folded the killed worker: still one file per live process.
        assert len(list(directory.glob("pyveda-*.mp"))) == WORKERS + 1
        assert (directory / "pyveda-archive.bin").exists()

        # Debian's Prometheus scrapes the app: sum() is the number of requests.
        port = int(url.rsplit(":", 1)[1])
        (tmp_path / "prometheus").mkdir()
        prometheus = start_prometheus(tmp_path / "prometheus", {"app": (port, [])})
        wait_until(lambda: values(prometheus[2], "sum(app_requests_total)") == [float(REQUESTS)], 60,
                   "Prometheus' sum(app_requests_total)")
        assert values(prometheus[2], "sum(app_request_size_bytes_count)") == [float(REQUESTS)]
    finally:
        if prometheus is not None:
            stop_server(prometheus[0], prometheus[1])
        stop_server(process, log)  # SIGTERM: gunicorn stops its workers and exits
