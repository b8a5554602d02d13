import shutil
import subprocess

import pytest

from pyveda.telemetry import CollectorRegistry


@pytest.fixture
def registry():
    """A fresh registry, so tests never collide on metric names."""
    return CollectorRegistry()


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
