"""BatchSpanProcessor: each finished span sent once, in batches, with the SDK's
OTEL_BSP_* settings, bounded memory, counted drops, force_flush/shutdown as the
SDK defines them, behind pyveda.otel.TracerProvider, to a real OTLP receiver."""

import asyncio
import os
import threading
import time

import pytest

from pyveda.telemetry import BatchSettings, BatchSpanProcessor, ExportResult, TracingSystem, create_exporter

BSP_VARS = ("OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "OTEL_BSP_EXPORT_TIMEOUT")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in BSP_VARS:
        monkeypatch.delenv(name, raising=False)


class Recorder:
    """An exporter that keeps each batch; ``block`` (an Event) holds sends until set."""

    def __init__(self, ok=True, block=None):
        self.batches, self.timeouts, self.ok, self.block = [], [], ok, block
        self.lock = threading.Lock()

    def send(self, spans, *, timeout=None):
        if self.block is not None:
            self.block.wait(10)
        with self.lock:
            self.batches.append([s.span_id for s in spans])
            self.timeouts.append(timeout)
        return ExportResult(self.ok)

    @property
    def ids(self):
        with self.lock:
            return [i for b in self.batches for i in b]


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def spans(tracing, n, prefix="s"):
    made = []
    for i in range(n):
        with tracing.span(f"{prefix}{i}") as span:
            made.append(span.span_id)
    return made


# --- settings -------------------------------------------------------------------------


def test_defaults_are_the_specifications():
    assert BatchSettings.from_env(environ={}) == BatchSettings(2048, 5000.0, 512, 30000.0)


def test_settings_come_from_the_environment():
    env = {"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_SCHEDULE_DELAY": "250",
           "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10", "OTEL_BSP_EXPORT_TIMEOUT": "0"}
    assert BatchSettings.from_env(environ=env) == BatchSettings(100, 250.0, 10, 0.0)
    # arguments win over the environment
    assert BatchSettings.from_env(50, environ=env).max_queue_size == 50


@pytest.mark.parametrize("name, text", [
    ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"), ("OTEL_BSP_MAX_QUEUE_SIZE", "0"), ("OTEL_BSP_SCHEDULE_DELAY", "-5"),
    ("OTEL_BSP_SCHEDULE_DELAY", "1.5"), ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "ten"), ("OTEL_BSP_EXPORT_TIMEOUT", "1s"),
])
def test_a_variable_that_does_not_parse_is_ignored_with_a_warning(name, text):
    with pytest.warns(RuntimeWarning, match=f"ignoring {name}={text!r}: not a .*; using the default"):
        settings = BatchSettings.from_env(environ={name: text})
    assert settings == BatchSettings.from_env(environ={})


def test_a_batch_size_from_the_environment_above_the_queue_is_lowered_with_a_warning():
    env = {"OTEL_BSP_MAX_QUEUE_SIZE": "8", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64"}
    with pytest.warns(RuntimeWarning, match="OTEL_BSP_MAX_EXPORT_BATCH_SIZE=64 is above the max queue size 8"):
        assert BatchSettings.from_env(environ=env).max_export_batch_size == 8
    # the default 512 above a small queue is lowered silently
    assert BatchSettings.from_env(8, environ={}).max_export_batch_size == 8


@pytest.mark.parametrize("kwargs, message", [
    ({"max_queue_size": 0}, "max_queue_size must be a positive int or None, got 0"),
    ({"max_queue_size": 2.5}, "max_queue_size must be a positive int or None, got 2.5"),
    ({"max_export_batch_size": True}, "max_export_batch_size must be a positive int or None, got True"),
    ({"schedule_delay_millis": -1}, "schedule_delay_millis must be a number of milliseconds >= 0"),
    ({"export_timeout_millis": "30s"}, "export_timeout_millis must be a number of milliseconds >= 0"),
    ({"max_queue_size": 4, "max_export_batch_size": 5}, "max_export_batch_size must be <= max_queue_size, got 5 > 4"),
])
def test_bad_arguments_say_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BatchSpanProcessor(Recorder(), **kwargs)


def test_an_exporter_without_send_is_a_type_error():
    with pytest.raises(TypeError, match="exporter must be a pyveda OTLPExporter or an object with send"):
        BatchSpanProcessor(object())
    with pytest.raises(TypeError, match="tracing must be a pyveda.telemetry.TracingSystem, got dict"):
        BatchSpanProcessor(Recorder(), {})


def test_flush_and_shutdown_timeouts_are_checked():
    processor = BatchSpanProcessor(Recorder(), TracingSystem())
    try:
        with pytest.raises(ValueError, match="timeout_millis must be a number of milliseconds >= 0 or None, got -1"):
            processor.force_flush(-1)
    finally:
        processor.shutdown()


# --- each span once ---------------------------------------------------------------------


def test_full_batches_go_before_the_delay_each_span_once():
    tracing, recorder = TracingSystem(), Recorder()
    spans(tracing, 3, "before")  # ended before the processor: not sent
    processor = BatchSpanProcessor(recorder, tracing, schedule_delay_millis=60_000, max_export_batch_size=10)
    try:
        made = spans(tracing, 35)
        assert wait_for(lambda: len(recorder.ids) >= 30)
        time.sleep(0.1)
        assert [len(b) for b in recorder.batches] == [10, 10, 10]  # the 5 left wait for the delay
        assert processor.force_flush()
        assert recorder.ids == made  # in order, each once
        assert [len(b) for b in recorder.batches] == [10, 10, 10, 5]
        assert processor.exported_spans == 35 and processor.dropped == 0 and processor.failed_spans == 0
    finally:
        assert processor.shutdown()
    assert len(tracing.get_spans()) == 38  # the store still holds them all


def test_the_schedule_delay_sends_a_partial_batch():
    tracing, recorder = TracingSystem(), Recorder()
    processor = BatchSpanProcessor(recorder, tracing, schedule_delay_millis=50, max_export_batch_size=512)
    try:
        made = spans(tracing, 4)
        assert wait_for(lambda: len(recorder.ids) == 4)
        time.sleep(0.2)  # later delays send nothing again
        assert recorder.ids == made
    finally:
        processor.shutdown()


def test_spans_from_many_threads_are_each_sent_once():
    tracing, recorder = TracingSystem(capacity=100_000), Recorder()
    processor = BatchSpanProcessor(recorder, tracing, schedule_delay_millis=5, max_export_batch_size=64,
                                   max_queue_size=100_000)
    made, lock = [], threading.Lock()

    def work(t):
        ids = spans(tracing, 500, f"t{t}-")
        with lock:
            made.extend(ids)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert processor.force_flush(10_000)
    finally:
        assert processor.shutdown()
    assert len(recorder.ids) == len(set(recorder.ids)) == 2000
    assert set(recorder.ids) == set(made)
    assert all(len(b) <= 64 for b in recorder.batches)


def test_a_full_queue_drops_and_counts_what_does_not_fit():
    tracing, gate = TracingSystem(), threading.Event()
    recorder = Recorder(block=gate)
    processor = BatchSpanProcessor(recorder, tracing, max_queue_size=10, max_export_batch_size=5,
                                   schedule_delay_millis=60_000)
    try:
        spans(tracing, 5)  # a full batch: the thread takes it and blocks in send
        assert wait_for(lambda: processor.dropped == 0 and len(processor._queue) == 0 and processor._cursor == 5)
        spans(tracing, 30)  # 10 fit in the queue while the send is held
        gate.set()
        assert processor.force_flush()
        assert len(recorder.ids) == 15 and processor.dropped == 20
        assert processor.exported_spans + processor.dropped == 35
    finally:
        gate.set()
        processor.shutdown()


def test_spans_the_store_evicted_before_they_were_read_count_as_dropped():
    tracing, gate = TracingSystem(capacity=8), threading.Event()
    recorder = Recorder(block=gate)
    processor = BatchSpanProcessor(recorder, tracing, max_export_batch_size=2, schedule_delay_millis=60_000)
    try:
        spans(tracing, 2)
        assert wait_for(lambda: processor._cursor == 2)  # sending those two, held
        spans(tracing, 20)  # the ring keeps only the newest 8
        gate.set()
        assert processor.force_flush()
        assert len(recorder.ids) == 10 and processor.dropped == 12
    finally:
        gate.set()
        processor.shutdown()


def test_failed_sends_are_counted_not_raised():
    class Broken:
        def send(self, spans):
            raise ConnectionError("collector down")

    tracing = TracingSystem()
    processor = BatchSpanProcessor(Broken(), tracing, schedule_delay_millis=60_000)
    spans(tracing, 3)
    assert processor.force_flush()  # a failed send still completes the flush
    assert processor.failed_spans == 3 and processor.exported_spans == 0
    assert "ConnectionError: collector down" in processor.last_result.error
    processor.shutdown()


def test_the_export_timeout_bounds_each_send():
    tracing, recorder = TracingSystem(), Recorder()
    processor = BatchSpanProcessor(recorder, tracing, export_timeout_millis=1500, schedule_delay_millis=60_000)
    spans(tracing, 2)
    assert processor.force_flush(timeout_millis=None)
    assert recorder.timeouts == [1.5]
    spans(tracing, 2)
    assert processor.force_flush(timeout_millis=200)
    assert 0 < recorder.timeouts[-1] <= 0.2  # what is left of the flush's own timeout
    processor.shutdown()


# --- force_flush and shutdown -----------------------------------------------------------


def test_force_flush_gives_up_at_its_timeout_and_says_so():
    tracing, gate = TracingSystem(), threading.Event()
    processor = BatchSpanProcessor(Recorder(block=gate), tracing, schedule_delay_millis=0)
    try:
        spans(tracing, 1)  # the thread takes it at once and blocks
        time.sleep(0.1)
        spans(tracing, 1)
        started = time.monotonic()
        assert processor.force_flush(timeout_millis=200) is False
        assert time.monotonic() - started < 2
    finally:
        gate.set()
        assert processor.shutdown()


def test_shutdown_sends_what_ended_then_nothing_more():
    tracing, recorder = TracingSystem(), Recorder()
    processor = BatchSpanProcessor(recorder, tracing, schedule_delay_millis=60_000)
    made = spans(tracing, 7)
    assert processor.shutdown() is True
    assert recorder.ids == made and not processor.running
    spans(tracing, 3)
    assert processor.force_flush() is False  # the SDK: no flushing after shutdown
    assert processor.shutdown() is True  # again: the first answer, nothing sent
    time.sleep(0.05)
    assert recorder.ids == made
    with pytest.raises(RuntimeError, match="this BatchSpanProcessor is shut down; make a new one"):
        processor.attach(TracingSystem())


def test_one_processor_reads_one_tracing_system():
    tracing = TracingSystem()
    processor = BatchSpanProcessor(Recorder(), tracing)
    assert processor.attach(tracing) is processor  # the same one again: nothing happens
    with pytest.raises(ValueError, match="already reads another TracingSystem"):
        processor.attach(TracingSystem())
    processor.shutdown()


def test_exit_flushes_within_the_exit_timeout(tmp_path):
    import subprocess
    import sys

    script = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from test_batch_processor import Recorder
from pyveda.telemetry import BatchSpanProcessor, TracingSystem
class Printer(Recorder):
    def send(self, spans, *, timeout=None):
        print("sent", len(spans), flush=True)
        return True
tracing = TracingSystem()
processor = BatchSpanProcessor(Printer(), tracing, schedule_delay_millis=3_600_000)
for i in range(5):
    with tracing.span("s"):
        pass
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sent", "5"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_sends_only_its_own_spans():
    tracing = TracingSystem()
    read, write = os.pipe()
    parent = Recorder()
    processor = BatchSpanProcessor(parent, tracing, schedule_delay_millis=60_000)
    spans(tracing, 3, "parent")
    pid = os.fork()
    if pid == 0:  # the child: its processor sends the child's span only
        code = 1
        try:
            child = Recorder()
            processor.exporter = child
            spans(tracing, 2, "child")
            ok = processor.force_flush(5000)
            os.write(write, f"{ok} {len(child.ids)}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 100).decode()
    os.close(read)
    assert status == 0 and answer == "True 2"
    assert processor.shutdown() and len(parent.ids) == 3


# --- behind the OpenTelemetry API ---------------------------------------------------------


def test_the_tracer_provider_takes_the_processor_and_flushes_and_shuts_it_down():
    pytest.importorskip("opentelemetry.trace")
    import pyveda.otel

    tp = pyveda.otel.TracerProvider(service_name="bsp-test")
    recorder = Recorder()
    processor = BatchSpanProcessor(recorder, schedule_delay_millis=60_000)
    tp.add_span_processor(processor)
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("outer"):
        with tracer.start_as_current_span("inner"):
            pass
    assert tp.force_flush() is True and len(recorder.ids) == 2
    with tracer.start_as_current_span("last"):
        pass
    tp.shutdown()
    assert len(recorder.ids) == 3 and not processor.running
    with pytest.raises(ValueError, match="timeout_millis must be a number of milliseconds >= 0 or None, got -3"):
        tp.force_flush(-3)


def test_the_sdks_own_processor_is_refused_with_what_to_use():
    sdk_export = pytest.importorskip("opentelemetry.sdk.trace.export")
    import pyveda.otel

    tp = pyveda.otel.TracerProvider()
    sdk_processor = sdk_export.SimpleSpanProcessor(sdk_export.ConsoleSpanExporter())
    with pytest.raises(TypeError, match=r"span_processor must be a pyveda.telemetry.BatchSpanProcessor .*"
                                        r"got opentelemetry.sdk.trace.export.SimpleSpanProcessor"):
        tp.add_span_processor(sdk_processor)


def test_each_span_reaches_a_real_receiver_once():
    """Three flushes of OTel API spans through the processor to oteltap: each span id arrives once."""
    pytest.importorskip("opentelemetry.trace")
    from servers import free_port
    from test_otel_receivers import received_from_oteltap

    import pyveda.otel

    port = free_port()
    tp = pyveda.otel.TracerProvider(service_name="bsp-receiver")
    processor = BatchSpanProcessor(create_exporter("otlp", endpoint=f"http://127.0.0.1:{port}", timeout=5),
                                   schedule_delay_millis=20, max_export_batch_size=7)
    tp.add_span_processor(processor)
    tracer = tp.get_tracer("t")
    made = []

    def send():
        for round_ in range(3):
            for i in range(10):
                with tracer.start_as_current_span(f"r{round_}-{i}") as span:
                    made.append(span.get_span_context().span_id)
            time.sleep(0.1)  # several schedule delays pass: nothing is sent twice
        return tp.force_flush(5000)

    flushed, received, _metrics = asyncio.run(received_from_oteltap(port, send, 31, 0, wait=3))
    processor.shutdown()
    assert flushed
    ids = [int.from_bytes(s.span_id, "big") for s in received]
    assert len(ids) == 30 and sorted(ids) == sorted(made)  # 31 wanted: waited to see no copy arrives
    assert processor.exported_spans == 30
