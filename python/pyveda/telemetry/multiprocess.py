"""Multi-process mode: one service's metrics across its worker processes.

Set ``PYVEDA_MULTIPROC_DIR`` (or, as for prometheus_client,
``PROMETHEUS_MULTIPROC_DIR``) to an empty directory before the service
starts, or call :func:`enable` before the first metric is created. Each
process then records into a shared-memory file of its own in that
directory, with the same cost per ``inc()``/``observe()`` as without the
mode, and :data:`~pyveda.telemetry.REGISTRY` in any of the processes renders
the aggregate of all of them (every format: text, OpenMetrics, protobuf,
OTLP, JSON).

- A child made by ``fork()`` (gunicorn workers, multiprocessing's fork)
  records into a new file of its own from zero; processes started with
  ``spawn``/``forkserver`` read the environment variable at import.
- Counters and histograms are summed exactly; gauges are combined by their
  ``multiprocess_mode`` (``all``, ``liveall``, ``min``, ``livemin``, ``max``,
  ``livemax``, ``sum``, ``livesum``, ``mostrecent``, ``livemostrecent``), as in
  prometheus_client; ``all`` modes add a ``pid`` label.
- A process that ends (even by SIGKILL) keeps its counts: the next scrape
  folds its file into ``pyveda-archive.bin`` and deletes it, so the
  directory holds one file per live process plus the archive.
- Damaged or foreign files, files of another service (``OTEL_SERVICE_NAME``
  differs) and metrics defined differently by two processes are left out
  with a RuntimeWarning naming the file.

With gunicorn, also fold a worker as soon as it exits (the next scrape
would do it anyway)::

    # gunicorn.conf.py
    from pyveda.telemetry import multiprocess

    def child_exit(server, worker):
        multiprocess.mark_process_dead(worker.pid)

``PYVEDA_MULTIPROC_FILE_MB`` (default 256) is the room in each process's
file: address space and a sparse file of which only the pages in use take
memory or disk (see :func:`series_bytes`).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional

from pyveda import _core

__all__ = [
    "MultiProcessCollector",
    "directory",
    "enable",
    "enabled",
    "mark_process_dead",
    "process_file",
    "series_bytes",
]

_DIRECTORY_VARIABLES = ("PYVEDA_MULTIPROC_DIR", "PROMETHEUS_MULTIPROC_DIR")
_DEFAULT_FILE_MB = 256


def _directory_from_environment() -> Optional[str]:
    for name in _DIRECTORY_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _file_mb_from_environment() -> int:
    text = os.environ.get("PYVEDA_MULTIPROC_FILE_MB", "").strip()
    if not text:
        return _DEFAULT_FILE_MB
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        warnings.warn(
            f"pyveda: ignoring PYVEDA_MULTIPROC_FILE_MB={text!r}: expected a whole number of MiB >= 1; "
            f"using {_DEFAULT_FILE_MB}",
            RuntimeWarning,
            stacklevel=3,
        )
        return _DEFAULT_FILE_MB
    return value


def enable(path: Optional[str] = None, *, service: Optional[str] = None, file_mb: Optional[int] = None,
           pid_label: Optional[bool] = None) -> str:
    """Records every metric created from now on into this process's file in ``path``.

    ``path`` defaults to ``PYVEDA_MULTIPROC_DIR`` / ``PROMETHEUS_MULTIPROC_DIR``;
    ``service`` to ``OTEL_SERVICE_NAME`` (files of another service are left
    out of the aggregate with a warning); ``file_mb`` to
    ``PYVEDA_MULTIPROC_FILE_MB``; ``pid_label`` to ``PYVEDA_MULTIPROC_PID_LABEL``
    (``1``/``true``: the aggregate this process renders keeps each process's
    series apart under a ``pid`` label instead of summing them; give every
    process the same setting). Metrics created before stay in this process
    only. Returns the directory. ValueError when no directory is given or set,
    when it does not exist or is not a directory, or when this process already
    records into another one; RuntimeError when the file cannot be created
    (e.g. the directory is not writable).
    """
    if path is None:
        path = _directory_from_environment()
        if path is None:
            raise ValueError(
                "multiprocess.enable(): no directory given and neither PYVEDA_MULTIPROC_DIR nor "
                "PROMETHEUS_MULTIPROC_DIR is set"
            )
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"multiprocess.enable(): path must be a str or os.PathLike, got {type(path).__name__}")
    if service is None:
        service = os.environ.get("OTEL_SERVICE_NAME", "").strip()
    if file_mb is None:
        file_mb = _file_mb_from_environment()
    elif isinstance(file_mb, bool) or not isinstance(file_mb, int) or file_mb < 1:
        raise ValueError(f"multiprocess.enable(): file_mb must be a whole number of MiB >= 1, got {file_mb!r}")
    if pid_label is None:
        pid_label = os.environ.get("PYVEDA_MULTIPROC_PID_LABEL", "").strip().lower() in ("1", "true", "yes")
    elif not isinstance(pid_label, bool):
        raise TypeError(f"multiprocess.enable(): pid_label must be a bool, got {type(pid_label).__name__}")
    _core.multiprocess_enable(os.path.abspath(path), service, file_mb << 20, pid_label)
    return directory()


def enabled() -> bool:
    """Whether this process records into a multi-process directory."""
    return bool(_core.multiprocess_enabled())


def directory() -> str:
    """The directory this process records into ('' when the mode is off)."""
    return str(_core.multiprocess_directory())


def process_file() -> str:
    """This process's own file in the directory ('' when the mode is off)."""
    return str(_core.multiprocess_process_file())


def mark_process_dead(pid: int, path: Optional[str] = None) -> int:
    """Folds the files of process ``pid`` into the archive now, if it has exited.

    For gunicorn's ``child_exit`` hook (see the module docstring); a scrape
    folds every dead process anyway. A live process's file is left alone, so
    a pid already reused by a new worker is harmless. ``path`` defaults to the
    directory this process records into, else the environment variable.
    Returns the number of files folded.
    """
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"mark_process_dead(): pid must be a positive int, got {pid!r}")
    if path is None:
        path = directory() or _directory_from_environment()
        if not path:
            raise ValueError(
                "mark_process_dead(): no multi-process directory: pass path= or set PYVEDA_MULTIPROC_DIR"
            )
    return int(_core.multiprocess_mark_process_dead(os.fspath(path), pid))


def series_bytes(kind: str, buckets: int = 0) -> int:
    """Bytes of a process's file that one series' values take.

    ``kind`` is ``'counter'``, ``'gauge'`` or ``'histogram'`` (``buckets``: its
    classic bucket count); each series also stores its label values once.
    """
    return int(_core.multiprocess_series_bytes(kind, buckets))


class MultiProcessCollector:
    """prometheus_client's ``MultiProcessCollector``: ``registry`` renders the aggregate of ``path``.

    ``path`` defaults to ``PYVEDA_MULTIPROC_DIR`` / ``PROMETHEUS_MULTIPROC_DIR``.
    The usual prometheus_client code works unchanged::

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        data = generate_latest(registry)

    (With the mode on, :data:`~pyveda.telemetry.REGISTRY` already renders the
    aggregate.) ``collect()`` yields the aggregate's metric families.
    """

    def __init__(self, registry: Any, path: Optional[str] = None) -> None:
        from pyveda.telemetry.registry import CollectorRegistry

        if path is None:
            path = _directory_from_environment()
        if not path or not os.path.isdir(path):
            raise ValueError(
                f"MultiProcessCollector: {path!r} is not a directory; set PYVEDA_MULTIPROC_DIR "
                "(or PROMETHEUS_MULTIPROC_DIR) or pass path= an existing directory"
            )
        self._path = os.path.abspath(path)
        self._view = CollectorRegistry._wrap(_core.Registry())
        self._view._core.set_multiprocess_directory(self._path)
        if registry is not None:
            if not isinstance(registry, CollectorRegistry):
                raise TypeError(
                    f"MultiProcessCollector: registry must be a CollectorRegistry, got {type(registry).__name__}"
                )
            registry._core.set_multiprocess_directory(self._path)

    def collect(self) -> Any:
        """The aggregate's metric families (prometheus_client ``Metric`` objects)."""
        return self._view.collect()


def _enable_from_environment() -> None:
    """Called once at ``import pyveda``: the mode is on when the environment says so."""
    if _directory_from_environment() is not None:
        enable()
