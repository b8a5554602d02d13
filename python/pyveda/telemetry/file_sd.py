"""A Prometheus file_sd target file that the PyVeda processes of a host share and keep up to date.

>>> from pyveda.telemetry import start_http_server
>>> from pyveda.telemetry.file_sd import FileSDTarget, read_targets
>>> server = start_http_server(port=0)                                          # doctest: +SKIP
>>> entry = FileSDTarget("/var/lib/pyveda/targets.json", f"127.0.0.1:{server.port}",
...                      {"worker": "w1"})                                     # doctest: +SKIP
>>> read_targets("/var/lib/pyveda/targets.json")                               # doctest: +SKIP
[{'targets': ['127.0.0.1:40123'], 'labels': {'worker': 'w1', '__meta_pyveda_pid': '4242', ...}}]
>>> entry.close()                                                              # doctest: +SKIP

Prometheus' ``file_sd_configs`` reads a JSON list of target groups,
``[{"targets": ["host:port"], "labels": {...}}, ...]``, and re-reads it
when it changes. Each :class:`FileSDTarget` is one group of exactly one
target: created, it adds its group to the file (replacing a group of the
same target that PyVeda wrote before, e.g. a restarted worker's);
:meth:`FileSDTarget.close` removes it again.

**Many writers, one file.** Every change takes an exclusive ``fcntl.flock``
on the side file ``<path>.lock`` (waiting at most 10 s, then
``TimeoutError``), reads the current list, changes only its own group and
writes the new list to a temporary file in the same directory
(``.<name>.<random>.tmp``, which a ``*.json`` pattern does not match) that
then replaces the file with ``os.replace``: Prometheus reads either the old
or the new list, never half of one. Nothing is written when nothing
changed. The directory must exist (``FileNotFoundError`` otherwise); the
file need not (a missing or blank file is an empty list). A file that is
not a file_sd list raises ``ValueError`` naming it and is left as it is:
fix or remove it. Groups that PyVeda did not write are kept untouched.

**Dead writers.** Each group records its writer in the labels
``__meta_pyveda_pid`` and ``__meta_pyveda_host`` (plus
``__meta_pyveda_start``, the process start time from ``/proc`` where there
is one, so that a reused pid is not taken for its dead owner). Prometheus
drops labels starting with ``__`` after relabeling, so they never reach a
series. Every change by any process also removes the groups that processes
of this host wrote and that are no longer running (gone, or zombies): a
SIGKILLed worker's group disappears at the next change anyone makes.
Groups from other hosts are left alone; their own processes prune them.

**Lifetime.** A group stays until ``close()`` (idempotent; also the end of a
``with`` block), the interpreter's exit (an at-exit hook closes the targets
still open) or its process's death (pruned as above). After ``fork()``, the
child does not own its parent's targets: their ``close()`` does nothing in
the child, and neither does the child's exit.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import re
import socket
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from pyveda._checks import shown

__all__ = ["FileSDTarget", "read_targets"]

#: The labels recording which process wrote a group (dropped by Prometheus after relabeling).
PID_LABEL = "__meta_pyveda_pid"
HOST_LABEL = "__meta_pyveda_host"
START_LABEL = "__meta_pyveda_start"

_LOCK_TIMEOUT_S = 10.0
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_SUFFIXES = (".json", ".yml", ".yaml")
PathLike = Union[str, "os.PathLike[str]"]


# --- checks ----------------------------------------------------------------------------


def _path(path: Any, owner: str) -> str:
    try:
        text = os.fspath(path)
    except TypeError:
        raise TypeError(f"{owner}: path must be a str or os.PathLike naming a .json file, got "
                        f"{type(path).__name__} ({shown(path)})") from None
    if not isinstance(text, str) or not text:
        raise ValueError(f"{owner}: path must be a non-empty file name, got {shown(path)}")
    if not text.endswith(_SUFFIXES):
        raise ValueError(f"{owner}: path must end in .json, .yml or .yaml (the files Prometheus' file_sd reads), "
                         f"got {text!r}")
    return text


def _target(target: Any) -> str:
    rule = "'host:port' with a port 1-65535 (an IPv6 host in brackets: '[::1]:9090'), without a scheme or path"
    if not isinstance(target, str):
        raise TypeError(f"FileSDTarget: target must be a str {rule}, got {type(target).__name__} ({shown(target)})")
    host, colon, port = target.rpartition(":")
    bad_host = (not host or any(c.isspace() or c in "/?#@" for c in host)
                or (host.startswith("[") != host.endswith("]")) or (":" in host and not host.startswith("[")))
    if not colon or bad_host or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ValueError(f"FileSDTarget: target must be {rule}, got {target!r}")
    return target


def _labels(labels: Any) -> Dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise TypeError(f"FileSDTarget: labels must be a mapping of label name to str value or None, "
                        f"got {type(labels).__name__}")
    checked: Dict[str, str] = {}
    for name, value in labels.items():
        if not isinstance(name, str) or not _LABEL_NAME.match(name):
            raise ValueError(f"FileSDTarget: label name {shown(name)} is not allowed: label names must match "
                             f"[a-zA-Z_][a-zA-Z0-9_]*")
        if name.startswith("__"):
            raise ValueError(f"FileSDTarget: label name {name!r} is not allowed: names starting with '__' are "
                             f"reserved for Prometheus (and PyVeda's {PID_LABEL}/{HOST_LABEL})")
        if not isinstance(value, str):
            raise TypeError(f"FileSDTarget: the value of label {name!r} must be a str, got "
                            f"{type(value).__name__} ({shown(value)})")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"FileSDTarget: the value of label {name!r} must be valid UTF-8, got {value!r}") from None
        checked[name] = value
    return checked


# --- the file --------------------------------------------------------------------------


def _malformed(path: str, reason: str) -> ValueError:
    return ValueError(f"the file_sd file {path} is not a Prometheus file_sd target list ({reason}); "
                      f"PyVeda leaves it as it is: fix or remove it")


def _parse(path: str, text: str) -> List[Dict[str, Any]]:
    if not text.strip():
        return []
    try:
        groups = json.loads(text)
    except ValueError as e:
        raise _malformed(path, f"not JSON: {e}") from None
    if not isinstance(groups, list):
        raise _malformed(path, f"the top level is a JSON {type(groups).__name__}, not a list of target groups")
    for i, group in enumerate(groups):
        if not isinstance(group, dict):
            raise _malformed(path, f"group {i} is not an object")
        targets = group.get("targets")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise _malformed(path, f"group {i} has no \"targets\" list of strings")
        labels = group.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise _malformed(path, f"group {i} has \"labels\" that are not an object of string values")
    return groups


def _read(path: str) -> List[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise _malformed(path, "not UTF-8 text") from None
    return _parse(path, text)


def read_targets(path: PathLike) -> List[Dict[str, Any]]:
    """The file's target groups as Prometheus reads them (labels with PyVeda's ``__meta_pyveda_*``); [] when missing.

    A file that is not a file_sd list raises ValueError naming it. Reads
    without the lock: the file is only ever replaced whole.
    """
    return _read(_path(path, "read_targets"))


def _write(path: str, groups: List[Dict[str, Any]]) -> None:
    directory, name = os.path.split(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644  # Prometheus often runs as another user: it must be able to read the file
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(groups, f, indent=2)
            f.write("\n")
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _directory(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"the directory of the file_sd file {path} does not exist "
                                f"(create {directory} first)", directory)
    return directory


def _lock(path: str) -> int:
    """An fd holding the exclusive flock on ``<path>.lock`` (closing it releases the lock)."""
    _directory(path)
    lock = path + ".lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    deadline = time.monotonic() + _LOCK_TIMEOUT_S
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise TimeoutError(f"the file_sd lock {lock} stayed taken for {_LOCK_TIMEOUT_S:g} s") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        except BaseException:
            os.close(fd)
            raise


# --- writers ---------------------------------------------------------------------------


def _start_time(pid: int) -> Optional[str]:
    """The process' start time (clock ticks since boot, /proc/<pid>/stat field 22), or None without /proc."""
    state = _proc_stat(pid)
    return None if state is None else state[1]


def _proc_stat(pid: int) -> Optional[tuple]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        return fields[0].decode("ascii"), fields[19].decode("ascii")  # state, starttime
    except (IndexError, UnicodeDecodeError):
        return None


def _alive(pid: int, start: Optional[str]) -> bool:
    if pid <= 0:
        return True  # not a pid we can judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process, but running
    except OSError:
        return True
    state = _proc_stat(pid)
    if state is None:
        return True  # no /proc to look closer: it answered the signal
    if state[0] in ("Z", "X"):  # exited, not yet reaped
        return False
    return start is None or state[1] == start  # another start time: the pid was reused


def _dead_here(group: Dict[str, Any], host: str) -> bool:
    """Whether the group was written by a process of this host that is no longer running."""
    labels = group.get("labels") or {}
    if labels.get(HOST_LABEL) != host:
        return False
    try:
        pid = int(labels.get(PID_LABEL, ""))
    except ValueError:
        return False
    return not _alive(pid, labels.get(START_LABEL))


def _change(path: str, edit: Callable[[List[Dict[str, Any]]], List[Dict[str, Any]]]) -> None:
    """Under the lock: read, prune this host's dead writers, ``edit``, write (only if anything changed)."""
    fd = _lock(path)
    try:
        groups = _read(path)
        host = socket.gethostname()
        changed = edit([g for g in groups if not _dead_here(g, host)])
        if changed != groups:
            _write(path, changed)
    finally:
        os.close(fd)


def _written_by_pyveda(group: Dict[str, Any]) -> bool:
    return PID_LABEL in (group.get("labels") or {})


class FileSDTarget:
    """This process's group ``{"targets": [target], "labels": labels}`` in a shared file_sd file; see the module docs.

    ``path``: the file (``.json``, ``.yml`` or ``.yaml``, written as JSON) in
    an existing directory. ``target``: where Prometheus scrapes,
    ``host:port``. ``labels``: label names matching
    ``[a-zA-Z_][a-zA-Z0-9_]*`` and not starting with ``__``, str values.

    Creating it adds the group now, replacing any group of the same single
    target that PyVeda wrote earlier. Raises TypeError/ValueError (naming
    the argument) for bad arguments, ValueError for a malformed file,
    FileNotFoundError for a missing directory, TimeoutError when the lock
    stays taken. Thread-safe; a context manager (``with`` closes it).
    """

    def __init__(self, path: PathLike, target: str, labels: Optional[Mapping[str, str]] = None) -> None:
        self.path = _path(path, "FileSDTarget")
        self.target = _target(target)
        self.labels = _labels(labels)
        self._pid = os.getpid()
        self._closed = False
        self._lock = threading.Lock()
        start = _start_time(self._pid)
        self._mine = {**self.labels, PID_LABEL: str(self._pid), HOST_LABEL: socket.gethostname()}
        if start is not None:
            self._mine[START_LABEL] = start
        group = {"targets": [self.target], "labels": self._mine}

        def add(groups: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
            for i, old in enumerate(groups):  # a restarted writer keeps its place in the list
                if old.get("targets") == [self.target] and _written_by_pyveda(old):
                    rest = [g for g in groups[i + 1:] if not (g.get("targets") == [self.target]
                                                            and _written_by_pyveda(g))]
                    return [*groups[:i], group, *rest]
            return [*groups, group]

        with self._lock:
            _change(self.path, add)
            _OPEN.add(self)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has removed the group (always True in a forked child: it owns none)."""
        return self._closed or self._pid != os.getpid()

    def close(self) -> None:
        """Removes this process's group from the file; later calls do nothing, as does a call in a forked child.

        Only the group this object wrote goes (same target, this pid and
        host): if another process has since registered the same target, its
        group stays. Raises as the constructor does for a malformed file or
        a missing directory, and then stays open (a retry may succeed).
        """
        if self.closed:  # checked before the lock: a forked child may have inherited it taken
            return
        with self._lock:
            if self.closed:
                return

            def mine(group: Dict[str, Any]) -> bool:
                labels = group.get("labels") or {}
                return (group.get("targets") == [self.target] and labels.get(PID_LABEL) == self._mine[PID_LABEL]
                        and labels.get(HOST_LABEL) == self._mine[HOST_LABEL])

            def remove(groups: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
                return [g for g in groups if not mine(g)]

            _change(self.path, remove)
            self._closed = True
            _OPEN.discard(self)

    def __enter__(self) -> "FileSDTarget":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"FileSDTarget({self.path!r}, {self.target!r}, {self.labels!r}) [{state}]"


# Open targets, held until closed so the at-exit hook can close them (in a forked child
# they are all ``closed``, so its exit leaves the parent's groups alone).
_OPEN: "set[FileSDTarget]" = set()


@atexit.register
def _close_at_exit() -> None:
    for target in list(_OPEN):
        try:
            target.close()
        except (OSError, ValueError):
            pass  # the directory or file went bad: the group is pruned once this process is gone
