"""The shipped Prometheus agent/central configs and the file_sd file PyVeda workers keep.

Unit tests of :mod:`pyveda.telemetry.file_sd` (the file's contents, re-registering,
close, concurrent writers, pruning of dead writers, fork, bad input), and the real
thing: Debian's Prometheus twice on 127.0.0.1, an agent (``--enable-feature=agent``)
configured from ``deploy/prometheus/agent.yml`` that finds PyVeda worker processes
through one shared file_sd file and remote-writes their series to a central one
(``--web.enable-remote-write-receiver``) configured from ``deploy/prometheus/central.yml``;
the central answers the sums of the workers' task counts and native histograms exactly.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyveda.telemetry.file_sd import FileSDTarget, read_targets
from servers import binary, fetch, query, start_server, stop_server, values, wait_until

yaml = pytest.importorskip("yaml", reason="PyYAML not installed")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
HOST = socket.gethostname()


def groups_by_target(path):
    return {group["targets"][0]: group["labels"] for group in read_targets(path)}


def plain_labels(labels):
    """The labels without PyVeda's ``__meta_pyveda_*`` bookkeeping."""
    return {k: v for k, v in labels.items() if not k.startswith("__")}


# --- the file ------------------------------------------------------------------------------


def test_the_file_holds_one_group_per_target_with_its_writer(tmp_path):
    path = tmp_path / "targets.json"
    assert read_targets(path) == []
    with FileSDTarget(path, "127.0.0.1:9101", {"worker": "a"}) as a, FileSDTarget(str(path), "127.0.0.1:9102"):
        groups = json.loads(path.read_text())  # what Prometheus reads: a JSON list of target groups
        assert [g["targets"] for g in groups] == [["127.0.0.1:9101"], ["127.0.0.1:9102"]]
        assert plain_labels(groups[0]["labels"]) == {"worker": "a"}
        assert plain_labels(groups[1]["labels"]) == {}
        for group in groups:
            assert group["labels"]["__meta_pyveda_pid"] == str(os.getpid())
            assert group["labels"]["__meta_pyveda_host"] == HOST
        assert read_targets(path) == groups
        assert not a.closed
        assert oct(path.stat().st_mode & 0o777) == oct(0o644)  # Prometheus may run as another user
    assert read_targets(path) == []
    assert a.closed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["targets.json", "targets.json.lock"]  # no temp files left


def test_reregistering_a_target_replaces_its_group_in_place(tmp_path):
    path = tmp_path / "targets.json"
    first = FileSDTarget(path, "127.0.0.1:9101", {"worker": "old"})
    other = FileSDTarget(path, "127.0.0.1:9102", {"worker": "b"})
    second = FileSDTarget(path, "127.0.0.1:9101", {"worker": "new"})
    assert [(g["targets"], plain_labels(g["labels"])) for g in read_targets(path)] == [
        (["127.0.0.1:9101"], {"worker": "new"}), (["127.0.0.1:9102"], {"worker": "b"})]
    second.close()
    first.close()  # the replaced object leaves the (same-pid) group of the same target: it is gone already
    assert list(groups_by_target(path)) == ["127.0.0.1:9102"]
    other.close()


def test_close_is_idempotent_and_keeps_groups_pyveda_did_not_write(tmp_path):
    path = tmp_path / "targets.json"
    by_hand = [{"targets": ["10.0.0.1:9100", "10.0.0.2:9100"], "labels": {"env": "prod"}},
               {"targets": ["127.0.0.1:9101"]}]
    path.write_text(json.dumps(by_hand))
    entry = FileSDTarget(path, "127.0.0.1:9101", {"worker": "a"})
    assert read_targets(path)[:2] == by_hand and len(read_targets(path)) == 3
    entry.close()
    entry.close()
    entry.__exit__(None, None, None)
    assert read_targets(path) == by_hand
    path.write_text("[]")
    entry.close()  # closed: does not touch the file again
    assert path.read_text() == "[]"


def test_a_blank_file_is_an_empty_list(tmp_path):
    path = tmp_path / "targets.json"
    path.write_text("\n")
    with FileSDTarget(path, "127.0.0.1:9101"):
        assert list(groups_by_target(path)) == ["127.0.0.1:9101"]


def _register_many(path, worker, count, barrier):
    barrier.wait(10)
    for i in range(count):
        FileSDTarget(path, f"127.0.0.{worker}:{9100 + i}", {"worker": str(worker)})
    barrier.wait(10)  # alive until both are done: a dead writer's groups would be pruned by the other
    os._exit(0)  # no at-exit hook: the groups stay, and the writer is dead afterwards


def test_concurrent_writers_in_two_processes_keep_every_group(tmp_path):
    path = str(tmp_path / "targets.json")
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    writers = [context.Process(target=_register_many, args=(path, w, 25, barrier)) for w in (1, 2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(30)
        assert writer.exitcode == 0
    groups = read_targets(path)
    assert sorted(g["targets"][0] for g in groups) == sorted(
        f"127.0.0.{w}:{9100 + i}" for w in (1, 2) for i in range(25))
    # Both writers are gone (and reaped): the next change by anyone prunes their groups.
    with FileSDTarget(path, "127.0.0.1:9000"):
        assert list(groups_by_target(path)) == ["127.0.0.1:9000"]


def test_a_killed_writers_group_goes_at_the_next_change_but_other_hosts_stay(tmp_path):
    path = tmp_path / "targets.json"
    other_host = {"targets": ["10.0.0.9:9100"],
                  "labels": {"__meta_pyveda_pid": "1", "__meta_pyveda_host": HOST + "-elsewhere"}}
    path.write_text(json.dumps([other_host]))
    script = ("import sys, time; from pyveda.telemetry.file_sd import FileSDTarget; "
              "t = FileSDTarget(sys.argv[1], '127.0.0.1:9555'); print('ready', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert groups_by_target(path)["127.0.0.1:9555"]["__meta_pyveda_pid"] == str(child.pid)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert "127.0.0.1:9555" in groups_by_target(path)  # nobody changed the file yet
    with FileSDTarget(path, "127.0.0.1:9556"):
        assert list(groups_by_target(path)) == ["10.0.0.9:9100", "127.0.0.1:9556"]


def test_a_zombie_or_reused_pid_counts_as_dead(tmp_path):
    path = tmp_path / "targets.json"
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_until(lambda: open(f"/proc/{zombie.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", 10,
               "the child to exit (a zombie: not reaped yet)")
    reused = {"__meta_pyveda_pid": str(os.getpid()), "__meta_pyveda_host": HOST, "__meta_pyveda_start": "1"}
    path.write_text(json.dumps([
        {"targets": ["127.0.0.1:9001"], "labels": {"__meta_pyveda_pid": str(zombie.pid), "__meta_pyveda_host": HOST}},
        {"targets": ["127.0.0.1:9002"], "labels": reused},  # this pid, but not this process' start time
    ]))
    try:
        with FileSDTarget(path, "127.0.0.1:9003"):
            assert list(groups_by_target(path)) == ["127.0.0.1:9003"]
    finally:
        zombie.wait()


def test_a_forked_child_does_not_remove_its_parents_group(tmp_path):
    path = tmp_path / "targets.json"
    entry = FileSDTarget(path, "127.0.0.1:9101", {"worker": "parent"})
    child = os.fork()
    if child == 0:  # the child: close() and the exit hooks must leave the parent's group alone
        try:
            code = 0 if entry.closed else 3
            entry.close()
            with FileSDTarget(path, "127.0.0.1:9102", {"worker": "child"}):
                pass
            from pyveda.telemetry import file_sd

            file_sd._close_at_exit()  # the module's at-exit hook, as the child's exit would run it
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert {t: plain_labels(l) for t, l in groups_by_target(path).items()} == {"127.0.0.1:9101": {"worker": "parent"}}
    assert not entry.closed
    entry.close()
    assert read_targets(path) == []


@pytest.mark.parametrize("text, reason", [
    ("{not json", "not JSON"),
    ('{"targets": ["a:1"]}', "the top level is a JSON dict, not a list of target groups"),
    ('[{"labels": {}}]', 'group 0 has no "targets" list of strings'),
    ('[{"targets": ["a:1"], "labels": {"x": 1}}]', 'group 0 has "labels" that are not an object of string values'),
])
def test_a_malformed_file_is_an_error_naming_it_and_is_left_alone(tmp_path, text, reason):
    path = tmp_path / "targets.json"
    path.write_text(text)
    expected = f"the file_sd file {path} is not a Prometheus file_sd target list ({reason}"
    with pytest.raises(ValueError) as error:
        FileSDTarget(path, "127.0.0.1:9101")
    assert str(error.value).startswith(expected)
    assert str(error.value).endswith("PyVeda leaves it as it is: fix or remove it")
    with pytest.raises(ValueError, match="is not a Prometheus file_sd target list"):
        read_targets(path)
    assert path.read_text() == text


def test_a_missing_directory_is_a_clear_error(tmp_path):
    path = tmp_path / "nowhere" / "targets.json"
    with pytest.raises(FileNotFoundError, match=f"the directory of the file_sd file {path} does not exist"):
        FileSDTarget(path, "127.0.0.1:9101")


TARGET_RULE = "'host:port' with a port 1-65535 (an IPv6 host in brackets: '[::1]:9090'), without a scheme or path"


@pytest.mark.parametrize("target", ["localhost", "localhost:0", "localhost:65536", "localhost:http", ":9090",
                                    "http://localhost:9090", "host:90/metrics", "::1:9090", "a b:1", "host:-1"])
def test_a_bad_target_is_refused_with_the_rule(tmp_path, target):
    with pytest.raises(ValueError) as error:
        FileSDTarget(tmp_path / "t.json", target)
    assert str(error.value) == f"FileSDTarget: target must be {TARGET_RULE}, got {target!r}"
    assert not (tmp_path / "t.json").exists()


def test_good_targets_are_taken(tmp_path):
    for target in ("localhost:1", "[::1]:65535", "worker-3.example.com:9100"):
        with FileSDTarget(tmp_path / "t.json", target):
            assert list(groups_by_target(tmp_path / "t.json")) == [target]
    with pytest.raises(TypeError, match="FileSDTarget: target must be a str 'host:port'"):
        FileSDTarget(tmp_path / "t.json", 9100)


@pytest.mark.parametrize("labels, error, message", [
    ({"1worker": "a"}, ValueError,
     "FileSDTarget: label name '1worker' is not allowed: label names must match [a-zA-Z_][a-zA-Z0-9_]*"),
    ({"dask-worker": "a"}, ValueError,
     "FileSDTarget: label name 'dask-worker' is not allowed: label names must match [a-zA-Z_][a-zA-Z0-9_]*"),
    ({3: "a"}, ValueError, "FileSDTarget: label name 3 is not allowed: label names must match [a-zA-Z_][a-zA-Z0-9_]*"),
    ({"__meta_pyveda_pid": "1"}, ValueError,
     "FileSDTarget: label name '__meta_pyveda_pid' is not allowed: names starting with '__' are reserved for "
     "Prometheus (and PyVeda's __meta_pyveda_pid/__meta_pyveda_host)"),
    ({"worker": 3}, TypeError, "FileSDTarget: the value of label 'worker' must be a str, got int (3)"),
    ({"worker": "\udc80"}, ValueError, "FileSDTarget: the value of label 'worker' must be valid UTF-8, got '\\udc80'"),
    (["worker"], TypeError, "FileSDTarget: labels must be a mapping of label name to str value or None, got list"),
])
def test_bad_labels_are_refused_with_the_rule(tmp_path, labels, error, message):
    with pytest.raises(error) as raised:
        FileSDTarget(tmp_path / "t.json", "127.0.0.1:9101", labels)
    assert str(raised.value) == message


def test_a_path_prometheus_would_not_read_is_refused(tmp_path):
    with pytest.raises(ValueError) as error:
        FileSDTarget(tmp_path / "targets.txt", "127.0.0.1:9101")
    assert str(error.value) == ("FileSDTarget: path must end in .json, .yml or .yaml (the files Prometheus' file_sd "
                                f"reads), got {str(tmp_path / 'targets.txt')!r}")
    with pytest.raises(TypeError, match="read_targets: path must be a str or os.PathLike"):
        read_targets(None)


def test_open_targets_are_closed_at_exit(tmp_path):
    path = tmp_path / "targets.json"
    script = ("import sys; from pyveda.telemetry.file_sd import FileSDTarget, read_targets; "
              "FileSDTarget(sys.argv[1], '127.0.0.1:9101'); assert len(read_targets(sys.argv[1])) == 1")
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=30)
    assert read_targets(path) == []


def test_the_shipped_configs_pass_promtool(tmp_path):
    promtool = binary("promtool", "prometheus")
    for name in ("agent.yml", "central.yml"):
        result = subprocess.run([promtool, "check", "config", str(DEPLOY / name)], capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


# --- agent and central -------------------------------------------------------------------------


WORKER = textwrap.dedent("""
    import sys
    import pyveda as veda
    from pyveda.telemetry import Histogram, start_http_server
    from pyveda.telemetry.file_sd import FileSDTarget

    name, path, total, failing = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    veda.init(veda.Config.builder().threads(2).telemetry(True).build())
    duration = Histogram("agent_test_task_ms", "Per-task duration (a native histogram over protobuf).")

    def ok(i):
        return i

    def bad(i):
        raise RuntimeError(f"task {i} fails on purpose")

    futures = [veda.spawn(bad if i < failing else ok, i) for i in range(total)]
    for i, future in enumerate(futures):
        try:
            future.result(timeout=30)
        except RuntimeError:
            pass
        duration.observe(0.5 + i % 40)
    server = start_http_server(port=0, addr="127.0.0.1")
    # "junk": a label the shipped agent config's labelkeep must drop.
    entry = FileSDTarget(path, f"127.0.0.1:{server.port}", {"worker": name, "junk": "dropped"})
    print("ready", server.port, flush=True)
    sys.stdin.read()  # until the test closes stdin
    entry.close()
    server.shutdown()
""")

# (name, tasks, failing) of the first workers, and the one started after the kill.
WORKERS = [("w0", 120, 7), ("w1", 200, 11), ("w2", 90, 0)]
LATE = ("w3", 60, 5)


class Worker:
    def __init__(self, tmp, path, name, total, failing):
        self.name, self.total, self.failing = name, total, failing
        self.log = open(tmp / f"{name}.log", "wb")
        self.process = subprocess.Popen([sys.executable, "-c", WORKER, name, str(path), str(total), str(failing)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.port = None

    def ready(self):
        line = self.process.stdout.readline().split()  # the worker prints at once or dies (EOF)
        assert line[:1] == ["ready"], f"{self.name} did not start: {open(self.log.name).read()}"
        self.port = int(line[1])
        self.target = f"127.0.0.1:{self.port}"

    def stop(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.log.close()


def agent_config(tmp, file_sd, central_url):
    """deploy/prometheus/agent.yml with this test's file, central and a 1 s interval: nothing else changes."""
    config = yaml.safe_load((DEPLOY / "agent.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s")
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "pyveda"
    (sd,) = job["file_sd_configs"]
    sd["files"] = [str(file_sd)]
    (remote,) = config["remote_write"]
    assert remote["url"].endswith("/api/v1/write")
    remote["url"] = central_url + "/api/v1/write"
    remote["queue_config"] = {"batch_send_deadline": "1s"}  # send within a second instead of 5 s
    path = tmp / "agent.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def central_config(tmp):
    config = yaml.safe_load((DEPLOY / "central.yml").read_text())
    config.setdefault("global", {})["evaluation_interval"] = "1s"
    path = tmp / "central.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def shipped_flags(role):
    """The flags deploy/prometheus/README.md gives for ``role`` (agent or central), from its command lines."""
    readme = (DEPLOY / "README.md").read_text()
    for line in readme.splitlines():
        if line.strip().startswith("prometheus ") and f"{role}.yml" in line:
            return [word for word in line.split() if word.startswith("--enable-feature") or
                    word == "--web.enable-remote-write-receiver"]
    raise AssertionError(f"no prometheus command line for {role}.yml in {DEPLOY / 'README.md'}")


@pytest.fixture
def servers(tmp_path):
    prometheus = binary("prometheus", "prometheus")
    file_sd = tmp_path / "sd" / "targets.json"
    file_sd.parent.mkdir()
    running = []
    try:
        central_yml = central_config(tmp_path)
        central = start_server(
            lambda port: [prometheus, f"--config.file={central_yml}", f"--storage.tsdb.path={tmp_path / 'central'}",
                          f"--web.listen-address=127.0.0.1:{port}", *shipped_flags("central")],
            "/-/ready", tmp_path / "central.log")
        running.append(central)
        agent_yml = agent_config(tmp_path, file_sd, central[2])
        agent = start_server(
            lambda port: [prometheus, f"--config.file={agent_yml}", f"--storage.agent.path={tmp_path / 'agent'}",
                          f"--web.listen-address=127.0.0.1:{port}", *shipped_flags("agent")],
            "/-/ready", tmp_path / "agent.log")
        running.append(agent)
        yield central[2], agent[2], file_sd
    finally:
        for process, log, _ in reversed(running):
            stop_server(process, log)


def test_the_readme_flags_are_the_ones_2_42_needs():
    assert shipped_flags("agent") == ["--enable-feature=agent,native-histograms"]
    assert shipped_flags("central") == ["--web.enable-remote-write-receiver", "--enable-feature=native-histograms"]


def test_the_central_prometheus_sums_the_workers_exactly(tmp_path, servers):
    central, agent, file_sd = servers
    workers = [Worker(tmp_path, file_sd, *spec) for spec in WORKERS]
    try:
        for worker in workers:
            worker.ready()
        # The series names the workers really serve (the agent asks for protobuf; text is enough here).
        status, _, body = fetch(f"http://{workers[0].target}/metrics")
        assert status == 200
        for name in (b"pyveda_tasks_executed_total ", b"pyveda_tasks_failed_total ", b"agent_test_task_ms_count "):
            assert name in body

        total = sum(w.total for w in workers)
        executed = 'sum(pyveda_tasks_executed_total{job="pyveda"})'
        wait_until(lambda: values(central, executed) == [float(total)], 40,
                   f"{executed} == {total} on the central Prometheus (remote-written by the agent)")
        by_worker = {r["metric"]["worker"]: float(r["value"][1]) for r in
                     query(central, 'sum by (worker) (pyveda_tasks_executed_total{job="pyveda"})')}
        assert by_worker == {w.name: float(w.total) for w in workers}
        failed = float(sum(w.failing for w in workers))
        assert values(central, 'sum(pyveda_tasks_failed_total{job="pyveda"})') == [failed]
        # Native histograms reach the central through remote write (send_native_histograms with the
        # native-histograms feature on both): one observation per task, summed bucket for bucket.
        count = 'histogram_count(sum(agent_test_task_ms{job="pyveda"}))'
        wait_until(lambda: values(central, count) == [float(total)], 20, f"{count} == {total}")
        assert values(central, 'sum(histogram_sum(agent_test_task_ms{job="pyveda"}))') == [
            float(sum(sum(0.5 + i % 40 for i in range(w.total)) for w in workers))]
        assert query(central, 'agent_test_task_ms_count{job="pyveda"}') == []  # native, not classic/summary series
        # The labels that reach the series: the labelkeep kept worker and dropped junk and __meta_pyveda_*.
        (series, *_) = query(central, 'pyveda_tasks_executed_total{job="pyveda"}')
        assert sorted(series["metric"]) == ["__name__", "instance", "job", "worker"]

        # SIGKILL one worker and start another: the newcomer's registration prunes the dead one's group.
        victim = workers[0]
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        assert victim.target in groups_by_target(file_sd)
        late = Worker(tmp_path, file_sd, *LATE)
        workers.append(late)
        late.ready()
        live = [w for w in workers if w is not victim]
        assert sorted(groups_by_target(file_sd)) == sorted(w.target for w in live)
        assert {plain_labels(l)["worker"] for l in groups_by_target(file_sd).values()} == {w.name for w in live}

        # The agent follows the file, and the newcomer's series reach the central.
        def agent_targets():
            targets = json.loads(fetch(agent + "/api/v1/targets")[2])["data"]["activeTargets"]
            return sorted(t["labels"]["instance"] for t in targets)

        wait_until(lambda: agent_targets() == sorted(w.target for w in live), 20, "the agent's targets == the file's")
        late_count = f'sum(pyveda_tasks_executed_total{{job="pyveda",worker="{late.name}"}})'
        wait_until(lambda: values(central, late_count) == [float(late.total)], 20, f"{late_count} == {late.total}")
        wait_until(lambda: values(central, f'histogram_count(agent_test_task_ms{{worker="{late.name}"}})') ==
                   [float(late.total)], 20, "the newcomer's native histogram")
    finally:
        for worker in workers:
            worker.stop()
    # The workers that exited normally closed their groups; the killed one's went at the newcomer's start.
    assert read_targets(file_sd) == []
