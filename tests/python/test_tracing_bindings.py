"""pyveda._core tracing bindings: ids, SpanStore.add/snapshot/drain and their conversions."""

import re

import pytest

from pyveda import _core


def test_ids_are_lowercase_hex_never_zero_and_unique():
    traces = {_core.new_trace_id() for _ in range(20000)}
    spans = {_core.new_span_id() for _ in range(20000)}
    assert len(traces) == 20000 and len(spans) == 20000
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) and t != "0" * 32 for t in traces)
    assert all(re.fullmatch(r"[0-9a-f]{16}", s) and s != "0" * 16 for s in spans)


def add(store, name, attributes=None, events=None, parent="", span_id=None):
    store.add("4bf92f3577b34da6a3ce929d0e0e4736", span_id or _core.new_span_id(), parent, "k=v", 0x301,
              name, 2, 100, 250, attributes, events, 2, "boom")


def test_add_and_snapshot_round_trip_every_field():
    store = _core.SpanStore(4)
    attrs = {"s": "x", "b": True, "i": -(2**63), "f": 1.5, "ls": ["a"], "lb": [True, False], "li": [1, 2],
             "lf": [0.5], "empty": []}
    add(store, "op", attrs, [(120, "ev", {"n": 1}), (130, "bare", None, 2)], parent="00f067aa0ba902b7",
        span_id="0102030405060708")
    (data,) = store.snapshot()
    assert data.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert data.trace_id_bytes == bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    assert data.span_id == "0102030405060708" and data.span_id_bytes == bytes(range(1, 9))
    assert data.parent_span_id == "00f067aa0ba902b7"
    assert data.trace_state == "k=v" and data.flags == 0x301 and data.name == "op" and data.kind == 2
    assert (data.start_time_unix_nano, data.end_time_unix_nano) == (100, 250)
    assert data.attributes == {**attrs, "empty": []}
    assert type(data.attributes["b"]) is bool and type(data.attributes["lb"][0]) is bool
    assert data.events == [(120, "ev", {"n": 1}, 0), (130, "bare", {}, 2)]
    assert (data.status_code, data.status_message) == (2, "boom")
    assert data.dropped_attributes_count == data.dropped_events_count == data.dropped_links_count == 0


def test_root_span_has_no_parent_and_drain_empties():
    store = _core.SpanStore(2)
    for name in ("a", "b", "c"):
        add(store, name)
    assert store.dropped == 1 and len(store) == 2 and store.capacity == 2
    drained = store.drain()
    assert [d.name for d in drained] == ["b", "c"] and drained[0].parent_span_id is None
    assert drained[0].parent_span_id_bytes == b""
    assert store.snapshot() == [] and len(store) == 0


def test_bad_input_is_rejected():
    store = _core.SpanStore(2)
    with pytest.raises(ValueError, match="span_id must be non-zero lowercase hex"):
        add(store, "x", span_id="0000000000000000")
    with pytest.raises(ValueError, match="parent_span_id"):
        add(store, "x", parent="ABCDEF0123456789")
    with pytest.raises(TypeError, match="attribute 'o': value must be str, bool, int, float or a list of one of them, got object"):
        add(store, "x", {"o": object()})
    with pytest.raises(TypeError, match="attribute 'm': list items must all have one type, got int and str"):
        add(store, "x", {"m": [1, "a"]})
    with pytest.raises(TypeError, match="attributes must be a mapping, got list"):
        add(store, "x", [("a", 1)])
    with pytest.raises(TypeError, match="each event must be"):
        add(store, "x", None, [(1, "ev")])
    with pytest.raises(ValueError):
        _core.SpanStore(0)
    assert len(store) == 0
