import shutil
import subprocess

import pytest

from pyveda.telemetry import CollectorRegistry


@pytest.fixture
def registry():
    """A fresh registry, so tests never collide on metric names."""
    return CollectorRegistry()


@pytest.fixture
def legacy_names():
    """Legacy name validation ([a-zA-Z_:][a-zA-Z0-9_:]*) for one test, as PROMETHEUS_LEGACY_NAME_VALIDATION=true."""
    from pyveda.telemetry import disable_legacy_validation, enable_legacy_validation, get_legacy_validation

    before = get_legacy_validation()
    enable_legacy_validation()
    yield
    (enable_legacy_validation if before else disable_legacy_validation)()


@pytest.fixture(scope="session")
def promtool():
    """Path to Prometheus' promtool (Debian package `prometheus`)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (apt-get install prometheus; .ci/run does this)")
    return path


# promtool's naming-convention lint flags units such as "_ms". The telemetry
# guide names its metrics in milliseconds (pyveda_latency_ms), so that one lint
# may be allowed by a test; format errors never are.
UNIT_LINT = "metric names should not contain abbreviated units"


@pytest.fixture
def check_metrics(promtool):
    """Runs `promtool check metrics` on exposition text; returns its lint lines.

    Fails on any parse error, and on any lint problem not in ``allow``.
    """

    def check(text: str, allow=()) -> list:
        result = subprocess.run(
            [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
        )
        output = (result.stdout + result.stderr).decode()
        problems = [line for line in output.splitlines() if line.strip()]
        unexpected = [p for p in problems if not any(a in p for a in allow)]
        assert result.returncode in (0, 3) and not unexpected, (
            f"promtool rejected the exposition (exit {result.returncode}):\n{output}\n---\n{text}"
        )
        return problems

    return check


# --- runtime fixtures (test_runtime, test_telemetry, test_guide_examples) ---


@pytest.fixture
def global_runtime():
    """Shuts the process-wide runtime (``pyveda.init``) down after the test, always.

    Queued tasks are cancelled, running ones may finish: tasks that block must
    wait on events with a timeout so that a failing test cannot hang here.
    """
    import pyveda as veda

    veda.shutdown(wait=False)  # one left over by a test without this fixture
    yield veda
    veda.shutdown(wait=False)


@pytest.fixture
def make_runtime():
    """Factory for standalone ``pyveda.Runtime`` objects, all shut down after the test.

    ``make_runtime(threads=2, telemetry=True)`` calls the ``Config.builder()``
    methods of those names.
    """
    import pyveda as veda

    runtimes = []

    def make(**settings):
        builder = veda.Config.builder()
        for name, value in settings.items():
            getattr(builder, name)(value)
        runtime = veda.Runtime(builder.build())
        runtimes.append(runtime)
        return runtime

    yield make
    for runtime in runtimes:
        runtime.shutdown(wait=False)
