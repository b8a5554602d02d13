"""Info and Enum: metrics whose value is a set of labels, as prometheus_client's.

>>> build = Info("build", "Build information.")
>>> build.info({"version": "1.4.2", "commit": "9f2c1e0"})
>>> state = Enum("worker_state", "What the worker does.", states=["idle", "busy", "draining"])
>>> state.state("busy")

An Info is exposed as ``build_info{commit="9f2c1e0",version="1.4.2"} 1``
(an OpenMetrics info family; a gauge in text format 0.0.4), an Enum as one
sample per state, 1 for the current one and 0 for the others (an
OpenMetrics state set). Both are collectors: their registry calls them at
each scrape, and the C++ core renders what they yield beside the other
metrics. Setting a value is one assignment under the GIL, no lock.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from pyveda import _core
from pyveda.telemetry.metrics_core import InfoMetricFamily, StateSetMetricFamily, _sample
from pyveda.telemetry.registry import REGISTRY, CollectorRegistry

__all__ = ["Enum", "Info"]



class _LabelSetMetric:
    """What Info and Enum share: naming, registration, labels(), remove(), clear() and collect()."""

    _what = "metric"

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str], namespace: str, subsystem: str,
                 unit: str, registry: Any, labelvalues: Optional[Sequence[str]]) -> None:
        from pyveda.telemetry.metrics import _full_name, _label_names

        owner = type(self).__name__
        if unit:
            raise ValueError(f"{owner} {name!r}: an {self._what} metric cannot have a unit, got unit={unit!r}")
        self._name = _full_name(owner, self._what, name, namespace, subsystem, "")
        try:
            _core.check_metric_name(self._name)
        except ValueError as error:
            raise ValueError(f"{owner}: {error}") from None
        if not isinstance(documentation, str):
            raise TypeError(f"{owner} {self._name!r}: documentation must be a str, got {type(documentation).__name__}")
        self._documentation = documentation
        self._labelnames: Tuple[str, ...] = _label_names(owner, labelnames)
        for label in self._labelnames:
            try:
                _core.check_label_name(label)
            except ValueError as error:
                raise ValueError(f"{owner} {self._name!r}: {error}") from None
        self._labelvalues: Tuple[str, ...] = tuple(str(v) for v in labelvalues) if labelvalues else ()
        self._children: Dict[Tuple[str, ...], Any] = {}
        self._init_value()
        if registry is not None and not self._labelvalues:
            if not isinstance(registry, CollectorRegistry):
                raise TypeError(f"{owner}: registry must be a CollectorRegistry or None, got {type(registry).__name__}")
            registry.register(self)

    # -- labels -----------------------------------------------------------------

    def labels(self, *values: Any, **named: Any) -> Any:
        """The child for these label values (by position or by name), created on first use."""
        owner = f"{type(self).__name__} {self._name!r}"
        if not self._labelnames:
            raise ValueError(f"{owner} has no label names, so labels() takes no values")
        if self._labelvalues:
            raise ValueError(f"{owner} already has its label values set {self._labelvalues!r}; labels() cannot be chained")
        if values and named:
            raise ValueError(f"{owner}: pass label values by position or by name, not both")
        if named:
            if set(named) != set(self._labelnames):
                raise ValueError(f"{owner}: labels() got the names {sorted(named)}, expected {list(self._labelnames)}")
            values = tuple(named[n] for n in self._labelnames)
        if len(values) != len(self._labelnames):
            raise ValueError(
                f"{owner} expects {len(self._labelnames)} label value(s) for {self._labelnames!r}, got {len(values)}"
            )
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, self._child(key))
        return child

    def _child(self, values: Tuple[str, ...]) -> Any:
        child = type(self).__new__(type(self))
        child.__dict__.update(self.__dict__)
        child._labelvalues = values
        child._children = {}
        child._init_value()
        return child

    def remove(self, *values: Any) -> None:
        """Stops exposing the child with these label values."""
        if len(values) != len(self._labelnames):
            raise ValueError(
                f"{type(self).__name__} {self._name!r}: remove() expects {len(self._labelnames)} label value(s), "
                f"got {len(values)}"
            )
        self._children.pop(tuple(str(v) for v in values), None)

    def remove_by_labels(self, labels: Dict[str, str]) -> None:
        """Removes every child whose labels include all of ``labels``."""
        unknown = set(labels) - set(self._labelnames)
        if unknown:
            raise ValueError(
                f"{type(self).__name__} {self._name!r}: remove_by_labels() got unknown label names {sorted(unknown)}"
            )
        at = {name: i for i, name in enumerate(self._labelnames)}
        for key in [k for k in self._children if all(k[at[n]] == str(v) for n, v in labels.items())]:
            del self._children[key]

    def clear(self) -> None:
        """Removes every child."""
        self._children.clear()

    def _series(self) -> Iterator[Tuple[Tuple[str, ...], Any]]:
        if self._labelnames:
            for values, child in list(self._children.items()):
                yield values, child
        else:
            yield (), self

    def describe(self) -> List[Any]:
        return [self._describe_family()]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, labelnames={self._labelnames!r})"


class Info(_LabelSetMetric):
    """Key-value information about the target (build, version, configuration), value 1.

    ``info(values)`` replaces the dict; its keys become labels and may not
    repeat the metric's own label names.
    """

    _what = "info"

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (), namespace: str = "",
                 subsystem: str = "", unit: str = "", registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None) -> None:
        super().__init__(name, documentation, labelnames, namespace, subsystem, unit, registry, _labelvalues)

    def _init_value(self) -> None:
        self._value: Dict[str, str] = {}

    def info(self, val: Dict[str, str]) -> None:
        """Sets the information: a dict of str to str."""
        owner = f"Info {self._name!r}"
        if self._labelnames and not self._labelvalues:
            raise ValueError(f"{owner} has label names {self._labelnames!r}: call labels(...).info(...)")
        if not isinstance(val, dict):
            raise TypeError(f"{owner}: info() takes a dict of str to str, got {type(val).__name__}")
        overlap = set(self._labelnames) & set(val)
        if overlap:
            raise ValueError(f"{owner}: the info keys {sorted(overlap)} repeat the metric's label names")
        for key, value in val.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"{owner}: info() takes a dict of str to str, got {key!r}: {value!r}")
            try:
                _core.check_label_name(key)
            except ValueError as error:
                raise ValueError(f"{owner}: info key: {error}") from None
        self._value = dict(val)

    def _describe_family(self) -> InfoMetricFamily:
        return InfoMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> List[Any]:
        family = self._describe_family()
        for values, series in self._series():
            family.add_metric(values, series._value)
        return [family]


class Enum(_LabelSetMetric, _core.EnumState):
    """One of a fixed set of states; the first is the initial one. ``state(s)`` moves to state ``s``.

    ``state(s)`` is native (``_core.EnumState``): it looks ``s`` up in
    ``_index`` (state -> index; empty on a labelled parent), sets
    ``_value`` and otherwise raises what ``_bad_state(s)`` returns.
    """

    _what = "enum"

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (), namespace: str = "",
                 subsystem: str = "", unit: str = "", registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None, states: Optional[Sequence[str]] = None) -> None:
        labels = tuple(labelnames) if not isinstance(labelnames, str) else labelnames
        if not states:
            raise ValueError(f"Enum {name!r}: states must list the possible states, e.g. states=['idle', 'busy']")
        if isinstance(states, str) or not all(isinstance(s, str) for s in states):
            raise TypeError(f"Enum {name!r}: states must be a sequence of str, got {states!r}")
        if len(set(states)) != len(states):
            raise ValueError(f"Enum {name!r}: states must differ from each other, got {list(states)!r}")
        if name in labels:
            raise ValueError(f"Enum {name!r}: a label name may not be the metric's name (its samples use it for the state)")
        self._states: Tuple[str, ...] = tuple(states)
        self._state_index = {s: i for i, s in enumerate(self._states)}
        super().__init__(name, documentation, labels, namespace, subsystem, unit, registry, _labelvalues)

    def _init_value(self) -> None:
        self._value = 0
        # A labelled parent has no state of its own: every state() on it fails (with _bad_state's error).
        self._index = {} if self._labelnames and not self._labelvalues else self._state_index

    def _bad_state(self, state: Any) -> Exception:
        """The error state() raises (``from None``) for ``state``, which is not in ``_index``."""
        if self._labelnames and not self._labelvalues:
            return ValueError(f"Enum {self._name!r} has label names {self._labelnames!r}: call labels(...).state(...)")
        return ValueError(f"Enum {self._name!r}: {state!r} is not one of its states {list(self._states)!r}")

    def _describe_family(self) -> StateSetMetricFamily:
        return StateSetMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> List[Any]:
        family = self._describe_family()
        name, labelnames = self._name, self._labelnames
        for values, series in self._series():
            current = series._value
            pairs = dict(zip(labelnames, values))
            for i, state in enumerate(self._states):  # in the order given, as prometheus_client's Enum
                family.samples.append(_sample(name, {**pairs, name: state}, 1 if i == current else 0))
        return [family]


# state() is called on Enum instances: give the class its own copy of the
# native method, which CPython then calls without a generic dispatch.
_core._own_fast_methods(Enum)
