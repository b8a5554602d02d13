"""Real servers for tests: start Prometheus, the Pushgateway and friends on
127.0.0.1, query them, and stop them within bounded time."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest


def fetch(url, headers=None, method="GET", context=None, data=None):
    """(status, headers, raw body) without raising for HTTP errors."""
    request = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def binary(name, package):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (apt-get install {package}; .ci/run does this)")
    return path


def start_server(make_argv, ready_path, log_path, timeout=30):
    """Starts ``make_argv(port)`` on a free port; returns (process, log, base URL).

    Another process may take the port between free_port() and the bind (other
    test runs start these servers too), so a start whose process exits is
    retried on a new port, and a server counts as ready only if it is still
    running a moment after /-/ready answered.
    """
    for _attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = make_argv(port)
        log = open(log_path, "wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = fetch(url + ready_path)[0] == 200
            except (urllib.error.URLError, ConnectionError, OSError):
                ready = False
            if ready:
                time.sleep(0.3)
                if process.poll() is None:
                    return process, log, url
                break
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()
            process.wait()
            log.close()
            raise AssertionError(f"{argv[0]} not ready after {timeout} s:\n{open(log_path).read()}")
        log.close()
    raise AssertionError(f"{argv[0]} kept exiting ({process.returncode}):\n{open(log_path).read()}")


def stop_server(process, log):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def query(prom_url, expr):
    url = prom_url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, _, body = fetch(url)
    data = json.loads(body)
    assert status == 200 and data["status"] == "success", (expr, data)
    return data["data"]["result"]


def values(prom_url, expr):
    return sorted(float(r["value"][1]) for r in query(prom_url, expr))


def start_prometheus(tmp, jobs, flags=()):
    """Debian's Prometheus on a free 127.0.0.1 port, scraping every second.

    ``jobs``: ``{job_name: (target_port or None, extra_yaml_lines)}``; ``flags``: more
    command-line flags (``--enable-feature=...``). Returns (process, log, URL)
    for :func:`stop_server`; skips the test when Prometheus is not installed.
    """
    prometheus = binary("prometheus", "prometheus")
    config = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
    for job, (port, extra) in jobs.items():
        config += f"  - job_name: {job}\n"
        config += "".join(f"    {line}\n" for line in extra)
        if port is not None:  # None: the extra lines say where the targets are (file_sd_configs, ...)
            config += f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    (tmp / "prometheus.yml").write_text(config)
    return start_server(
        lambda port: [prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                      f"--web.listen-address=127.0.0.1:{port}", *flags],
        "/-/ready", tmp / "prometheus.log",
    )
