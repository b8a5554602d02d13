"""Multi-process mode (pyveda.telemetry.multiprocess): processes made by fork
and by multiprocessing record into one directory and any of them renders
the exact aggregate in every format; bad directories and damaged files give
errors and warnings that say what is wrong.

The mode holds for the rest of a process once on, so each test runs its
scenario in a fresh interpreter (run()).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def run(code, directory=None, env=None, expect_ok=True, timeout=120):
    """Runs ``code`` in a new interpreter (with PYVEDA_MULTIPROC_DIR=directory); returns (rc, stdout, stderr)."""
    environment = {k: v for k, v in os.environ.items() if "MULTIPROC" not in k}
    environment["PYTHONPATH"] = HERE + os.pathsep + environment.get("PYTHONPATH", "")
    if directory is not None:
        environment["PYVEDA_MULTIPROC_DIR"] = str(directory)
    environment.update(env or {})
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment, capture_output=True,
                            text=True, timeout=timeout)
    if expect_ok:
        assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.returncode, result.stdout, result.stderr


def test_forked_children_sum_exactly_in_every_format(tmp_path):
    run("""
        import os
        import pyveda as veda
        from pyveda.telemetry import Counter, Gauge, Histogram, REGISTRY, generate_latest, multiprocess
        from pyveda.telemetry import otlp
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
        import prometheus_proto

        assert multiprocess.enabled() and multiprocess.process_file().startswith(multiprocess.directory())
        c = Counter("jobs", "Jobs.", ["kind"])
        h = Histogram("job_seconds", "Job time.", buckets=(0.1, 1.0))
        g = Gauge("busy", "Busy.", multiprocess_mode="livesum")
        c.labels("a").inc()
        h.observe(0.05)
        g.set(1)
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                c.labels("a").inc(2)
                c.labels("b").inc(5)
                h.observe(0.5)
                g.set(7)  # gone with the child
                os._exit(0)
            os.waitpid(pid, 0)

        text = generate_latest().decode()
        assert 'jobs_total{kind="a"} 9.0' in text or 'jobs_total{kind="a"} 9' in text, text
        assert 'jobs_total{kind="b"} 20' in text, text
        assert "job_seconds_count 5" in text and 'job_seconds_bucket{le="0.1"} 1' in text, text
        assert "busy 1" in text, text
        om = REGISTRY.generate_openmetrics()
        assert 'jobs_total{kind="b"} 20' in om and om.endswith("# EOF\\n"), om
        families = {f.name: f for f in prometheus_proto.parse_delimited(REGISTRY.generate_protobuf())}
        hist = families["job_seconds"].metric[0].histogram
        assert hist.sample_count == 5 and sum(prometheus_proto.native_buckets(hist).values()) == 5, hist
        request = ExportMetricsServiceRequest.FromString(REGISTRY._core.encode_otlp({}, "s", "1", 1))
        points = {m.name: m for m in request.resource_metrics[0].scope_metrics[0].metrics}
        assert sum(p.as_double for p in points["jobs"].sum.data_points) == 29, points["jobs"]
        [point] = points["job_seconds"].histogram.data_points  # classic buckets: an explicit-bucket Histogram
        assert point.count == 5 and sum(point.bucket_counts) == 5 and list(point.explicit_bounds) == [0.1, 1.0]
        # Sample values as prometheus_client's API reads them.
        assert REGISTRY.get_sample_value("jobs_total", {"kind": "b"}) == 20
        names = os.listdir(multiprocess.directory())
        assert sorted(n.rsplit("-", 1)[0] for n in names if n.endswith(".mp")) == [f"pyveda-{os.getpid()}"], names
        print("ok")
    """, tmp_path)


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_multiprocessing_pools_share_one_view(tmp_path, method):
    _, out, _ = run(f"""
        import multiprocessing
        import pyveda as veda
        from pyveda.telemetry import REGISTRY
        import _multiprocess_workers as w

        if __name__ == "__main__":
            context = multiprocessing.get_context({method!r})
            with context.Pool(3) as pool:
                assert sum(pool.map(w.count_tasks, range(12))) == 12 * 5
            # The children's runtimes counted their tasks; the families came from the children only.
            print(REGISTRY.get_sample_value("pool_items_total"), REGISTRY.get_sample_value("pyveda_tasks_executed_total"))
    """, tmp_path)
    items, tasks = out.split()
    assert float(items) == 12 * 5
    assert float(tasks) == 12 * 5


def test_prometheus_client_style_collector_and_mark_process_dead(tmp_path):
    run("""
        import os
        from pyveda.telemetry import CollectorRegistry, Counter, generate_latest
        from pyveda.telemetry.multiprocess import MultiProcessCollector, mark_process_dead

        c = Counter("hits", "Hits.")
        pid = os.fork()
        if pid == 0:
            c.inc(3)
            os._exit(0)
        os.waitpid(pid, 0)
        files = [n for n in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]) if n.endswith(".mp")]
        assert len(files) == 2, files
        assert mark_process_dead(pid) == 1
        assert mark_process_dead(pid) == 0
        assert mark_process_dead(os.getpid()) == 0  # alive: left alone
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        assert "hits_total 3\\n" in generate_latest(registry).decode()
        assert [m.samples[0].value for m in MultiProcessCollector(None).collect() if m.name == "hits"] == [3.0]
    """, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})


def test_a_missing_directory_is_named_at_import(tmp_path):
    rc, _, err = run("import pyveda", tmp_path / "missing", expect_ok=False)
    assert rc != 0
    assert f"ValueError: the multi-process directory '{tmp_path / 'missing'}' does not exist" in err, err
    (tmp_path / "file").write_text("x")
    rc, _, err = run("import pyveda", tmp_path / "file", expect_ok=False)
    assert f"ValueError: the multi-process directory '{tmp_path / 'file'}' is not a directory" in err, err


@pytest.mark.skipif(os.geteuid() != 0 and not hasattr(os, "chmod"), reason="needs root or chmod")
def test_a_directory_that_is_not_writable_is_named():
    import shutil
    import tempfile
    from pathlib import Path

    directory = Path(tempfile.mkdtemp(prefix="pyveda-ro-"))  # in /tmp, which anyone may enter
    directory.chmod(0o555)
    try:
        # root writes anywhere: drop to nobody (after loading the extension, which nobody may not read).
        code = ("import os\nfrom pyveda.telemetry import multiprocess\n"
                + ("os.setgid(65534); os.setuid(65534)\n" if os.geteuid() == 0 else "")
                + f"multiprocess.enable({str(directory)!r})\n")
        rc, _, err = run(code, expect_ok=False)
        assert rc != 0
        assert f"RuntimeError: cannot create a multi-process file in '{directory}': Permission denied" in err, err
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


def test_bad_arguments_say_what_is_allowed(tmp_path):
    run(f"""
        import pytest
        from pyveda.telemetry import Gauge, multiprocess

        with pytest.raises(ValueError, match="^multiprocess.enable\\\\(\\\\): no directory given and neither "
                                             "PYVEDA_MULTIPROC_DIR nor PROMETHEUS_MULTIPROC_DIR is set$"):
            multiprocess.enable()
        with pytest.raises(ValueError, match="file_mb must be a whole number of MiB >= 1, got 0"):
            multiprocess.enable({str(tmp_path)!r}, file_mb=0)
        with pytest.raises(ValueError, match="no multi-process directory: pass path= or set PYVEDA_MULTIPROC_DIR"):
            multiprocess.mark_process_dead(123)
        with pytest.raises(ValueError, match="pid must be a positive int, got -1"):
            multiprocess.mark_process_dead(-1, {str(tmp_path)!r})
        with pytest.raises(ValueError, match="MultiProcessCollector: None is not a directory"):
            multiprocess.MultiProcessCollector(None)
        with pytest.raises(ValueError, match="kind must be 'counter', 'gauge' or 'histogram'"):
            multiprocess.series_bytes("summary")
        assert multiprocess.series_bytes("gauge") == 64 and multiprocess.series_bytes("counter") == 1152 + 704
        multiprocess.enable({str(tmp_path)!r})
        with pytest.raises(ValueError, match="already records into the multi-process directory"):
            multiprocess.enable({str(tmp_path / "other")!r})
        g = Gauge("mp_g", "G.", multiprocess_mode="livemax")
        with pytest.raises(ValueError, match="invalid multiprocess mode 'nope'; expected one of: all, liveall"):
            Gauge("mp_h", "H.", multiprocess_mode="nope")
    """)


def test_bad_file_size_in_the_environment_warns_and_uses_the_default(tmp_path):
    _, out, err = run("""
        import warnings
        warnings.simplefilter("always")
        import pyveda
        from pyveda.telemetry import multiprocess
        print(multiprocess.enabled())
    """, tmp_path, env={"PYVEDA_MULTIPROC_FILE_MB": "lots"})
    assert out.strip() == "True"
    assert "ignoring PYVEDA_MULTIPROC_FILE_MB='lots': expected a whole number of MiB >= 1; using 256" in err, err


def test_damaged_and_foreign_files_are_named_in_warnings(tmp_path):
    (tmp_path / "pyveda-4242-00ff.mp").write_bytes(b"\0" * 10000)
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"x")
    _, out, _ = run("""
        import warnings
        from pyveda.telemetry import Counter, generate_latest
        Counter("safe", "Safe.").inc(2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text = generate_latest().decode()
        assert "safe_total 2\\n" in text, text
        for w in caught:
            print(w.category.__name__, w.message)
    """, tmp_path)
    assert f"RuntimeWarning pyveda: '{tmp_path}/pyveda-4242-00ff.mp' is left out of the multi-process aggregate: " \
           "it is not a PyVeda multi-process file (wrong magic bytes)" in out, out
    assert f"RuntimeWarning pyveda: ignoring '{tmp_path}/gauge_livesum_4242.db' in the multi-process directory: " \
           "not a PyVeda file (prometheus_client's? give each library a directory of its own)" in out, out


def test_a_gauge_with_a_function_stores_its_value_at_collection(tmp_path):
    run("""
        import os
        from pyveda.telemetry import Gauge, generate_latest
        g = Gauge("queue_depth", "Depth.", multiprocess_mode="livesum")
        g.set_function(lambda: 5)
        pid = os.fork()
        if pid == 0:
            generate_latest()  # stores this child's 5 ...
            os._exit(0)
        os.waitpid(pid, 0)
        # ... which leaves with it; the parent's own collection stores its 5.
        assert "queue_depth 5\\n" in generate_latest().decode()
    """, tmp_path)


def test_exemplars_json_and_the_pid_label(tmp_path):
    run("""
        import json, os, urllib.request
        import pyveda as veda
        from pyveda.telemetry import Counter, REGISTRY, start_http_server

        jobs = Counter("jobs", "Jobs.")
        pid = os.fork()
        if pid == 0:
            jobs.inc(2, exemplar={"job_id": "child-7"})
            veda.init(veda.Config.builder().telemetry(True).build())
            assert [veda.spawn(pow, 2, k).result(timeout=30) for k in range(5)] == [1, 2, 4, 8, 16]
            veda.shutdown()
            os._exit(0)
        os.waitpid(pid, 0)
        jobs.inc(1)
        om = REGISTRY.generate_openmetrics()
        # The child's exemplar outlives it (folded into the archive with its count).
        assert 'jobs_total{pid="' not in om
        assert 'jobs_total 3 # {job_id="child-7"} 2' in om, om
        # /metrics.json: every process's runtime summed; this one started none.
        with start_http_server(port=0, registry=REGISTRY) as server:
            with urllib.request.urlopen(server.url + ".json", timeout=10) as reply:
                data = json.load(reply)
        assert data["tasks"]["executed"] == 5, data
        assert data["tasks"]["failed"] == 0 and data["latency"]["p99_ms"] >= 0, data
        print("ok")
    """, tmp_path)
    apart = tmp_path / "apart"
    apart.mkdir()
    run("""
        import os
        from pyveda.telemetry import Counter, generate_latest
        c = Counter("apart", "Apart.")
        c.inc()
        pid = os.fork()
        if pid == 0:
            c.inc(4)
            os._exit(0)
        os.waitpid(pid, 0)
        text = generate_latest().decode()
        assert f'apart_total{{pid="{pid}"}} 4' in text and f'apart_total{{pid="{os.getpid()}"}} 1' in text, text
    """, apart, env={"PYVEDA_MULTIPROC_PID_LABEL": "1"})
