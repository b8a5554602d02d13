"""Pool workers for tests/python/test_multiprocess.py (importable by spawn and forkserver children)."""

_runtime_started = False


def count_tasks(_item):
    """Runs 5 tasks on this process's runtime and counts them in a Counter; returns 5."""
    global _runtime_started
    import pyveda as veda
    from pyveda.telemetry import Counter

    if not _runtime_started:
        veda.init(veda.Config.builder().telemetry(True).build())
        _runtime_started = True
    items = Counter("pool_items", "Items handled by the pool's workers.")
    futures = [veda.spawn(pow, 2, k) for k in range(5)]
    assert [f.result() for f in futures] == [2 ** k for k in range(5)]
    items.inc(5)
    return 5
