// Bindings for the runtime: options, the scheduler running Python callables,
// futures, and the telemetry system with its snapshots.
//
// A Python task is a veda::Task holding the callable, its arguments and a
// pyveda Future, whose state is a PyFuture (future.hpp). The worker takes the
// GIL, starts the future (skipping the task if it was cancelled), calls the
// callable and finishes the future with its result or exception.
#include <nanobind/nanobind.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>

#include "bindings.hpp"
#include "convert.hpp"
#include "future.hpp"
#include "veda/metrics/otlp.hpp"
#include "veda/runtime/runtime.hpp"
#include "veda/telemetry/catalogue.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace veda::bindings {
namespace {

// Takes the exception being raised (clearing it), with its traceback attached.
nb::object fetch_exception() {
  PyObject* type = nullptr;
  PyObject* value = nullptr;
  PyObject* traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  if (traceback && value) PyException_SetTraceback(value, traceback);
  Py_XDECREF(type);
  Py_XDECREF(traceback);
  return nb::steal(value);
}

// A Python callable queued on the scheduler. Owns references to the future,
// the callable and its arguments; they are released with the GIL held.
class PythonTask {
 public:
  PythonTask(nb::handle future, nb::handle fn, nb::handle args, nb::handle kwargs) noexcept
      : future_(future.inc_ref().ptr()),
        fn_(fn.inc_ref().ptr()),
        args_(args.inc_ref().ptr()),
        kwargs_(kwargs.inc_ref().ptr()) {}

  PythonTask(PythonTask&& other) noexcept
      : future_(std::exchange(other.future_, nullptr)),
        fn_(std::exchange(other.fn_, nullptr)),
        args_(std::exchange(other.args_, nullptr)),
        kwargs_(std::exchange(other.kwargs_, nullptr)) {}
  PythonTask(const PythonTask&) = delete;
  PythonTask& operator=(const PythonTask&) = delete;
  PythonTask& operator=(PythonTask&&) = delete;

  // Never ran (cancelled by shutdown(wait=False), or refused): cancel the future.
  ~PythonTask() {
    if (!future_ || !nb::is_alive()) return;
    nb::gil_scoped_acquire gil;
    nb::object future = nb::steal(future_);
    nb::object fn = nb::steal(fn_), args = nb::steal(args_), kwargs = nb::steal(kwargs_);
    try {
      PyFuture::cancel_unrun(future);
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("pyveda: cancelling a task's future");
    }
  }

  bool operator()() {
    nb::gil_scoped_acquire gil;
    nb::object future = nb::steal(std::exchange(future_, nullptr));
    nb::object fn = nb::steal(std::exchange(fn_, nullptr));
    nb::object args = nb::steal(std::exchange(args_, nullptr));
    nb::object kwargs = nb::steal(std::exchange(kwargs_, nullptr));
    try {
      if (!PyFuture::start(future)) {  // cancelled while queued: not an executed task
        Scheduler::skip_current_task();
        return true;
      }
      PyObject* result = PyObject_Call(fn.ptr(), args.ptr(), kwargs.ptr());
      // Count the task before its future is done, so a snapshot taken after
      // result() returns always includes it.
      if (result) {
        nb::object owned = nb::steal(result);
        Scheduler::report_current_task(true);
        PyFuture::finish(future, owned, nb::handle());
        return true;
      }
      nb::object exception = fetch_exception();
      Scheduler::report_current_task(false);
      PyFuture::finish(future, nb::handle(), exception);
      return false;
    } catch (nb::python_error& e) {
      // The future protocol itself failed (a waiter or lock raised): report, count as failed.
      e.discard_as_unraisable("pyveda: completing a task's future");
      return false;
    }
  }

 private:
  PyObject* future_;
  PyObject* fn_;
  PyObject* args_;
  PyObject* kwargs_;
};

// A Python object owned by C++ code that may drop it on any thread, with or
// without the GIL: the last reference is released under the GIL.
struct GilObject {
  explicit GilObject(nb::object o) : object(std::move(o)) {}
  GilObject(const GilObject&) = delete;
  GilObject& operator=(const GilObject&) = delete;
  ~GilObject() {
    if (!nb::is_alive()) {
      object.release();  // the interpreter is gone: leak rather than touch it
      return;
    }
    nb::gil_scoped_acquire gil;
    object.reset();
  }
  nb::object object;
};

// Worker hooks: each worker keeps one Python thread state for its whole life,
// so taking the GIL per task does not create and destroy one every time.
thread_local PyGILState_STATE worker_gil_state;
thread_local PyThreadState* worker_thread_state = nullptr;

void attach_worker() {
  if (!nb::is_alive()) return;
  worker_gil_state = PyGILState_Ensure();
  worker_thread_state = PyEval_SaveThread();
}

void detach_worker() {
  if (!worker_thread_state || !nb::is_alive()) return;
  PyEval_RestoreThread(worker_thread_state);
  PyGILState_Release(worker_gil_state);
  worker_thread_state = nullptr;
}

// About 31 years: longer timeouts (and inf) are treated as no limit.
constexpr double kForeverSeconds = 1e9;

std::chrono::nanoseconds to_nanoseconds(double seconds) {
  if (!(seconds > 0.0)) return std::chrono::nanoseconds(0);  // also NaN
  if (seconds >= kForeverSeconds) return std::chrono::nanoseconds::max();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
}

// A Runtime whose workers may run Python callables.
class PyRuntime {
 public:
  explicit PyRuntime(RuntimeOptions options) : runtime_(with_python_hooks(std::move(options))) {}

  // Collected without shutdown(): the workers may need the GIL to finish
  // their tasks, so release it while they are joined.
  ~PyRuntime() {
    if (nb::is_alive() && (!runtime_->is_shutdown() || joiner_.joinable())) {
      nb::gil_scoped_release release;
      if (joiner_.joinable()) joiner_.join();
      runtime_->shutdown(true);
    }
    runtime_.reset();
  }
  PyRuntime(const PyRuntime&) = delete;
  PyRuntime& operator=(const PyRuntime&) = delete;

  Runtime& get() { return *runtime_; }

  // Queues fn(*args, **kwargs) completing `future`; blocks (GIL released) while
  // a bounded queue is full. False after shutdown.
  bool submit(nb::handle_t<PyFuture> future, nb::handle fn, nb::handle args, nb::handle kwargs) {
    Task task(PythonTask(future, fn, args, kwargs));
    if (runtime_->options().queue_size == 0) return runtime_->scheduler().submit(std::move(task));
    nb::gil_scoped_release release;
    return runtime_->scheduler().submit(std::move(task));
  }

  // Like submit() but gives up after `timeout` seconds when the queue stays full.
  bool try_submit(nb::handle_t<PyFuture> future, nb::handle fn, nb::handle args, nb::handle kwargs,
                  double timeout) {
    Task task(PythonTask(future, fn, args, kwargs));
    const std::chrono::nanoseconds ns = to_nanoseconds(timeout);
    nb::gil_scoped_release release;
    return runtime_->scheduler().try_submit(std::move(task), ns);
  }

  // Waits until `future` is done or `timeout` seconds pass (None: no limit),
  // GIL released; with `run_tasks` this thread runs queued tasks meanwhile
  // (Scheduler::help_until), else it only sleeps (wait_until). A signal
  // handler that raises (KeyboardInterrupt) ends the wait with its error.
  void wait(nb::handle_t<PyFuture> future, std::optional<double> timeout, bool run_tasks) {
    using clock = std::chrono::steady_clock;
    // Timeouts beyond kForever (inf included) mean no limit; converting them would overflow.
    const bool limited = timeout.has_value() && *timeout < kForeverSeconds;
    const auto deadline = limited ? clock::now() + to_nanoseconds(*timeout) : clock::time_point::max();
    PyFuture& state = nb::cast<PyFuture&>(future);
    auto done = [&] { return state.attached() ? nb::cast<bool>(future.attr("done")()) : state.native_done(); };
    if (done()) return;
    auto ready = [&] {
      if (limited && clock::now() >= deadline) return true;
      nb::gil_scoped_acquire gil;
      // Ctrl-C (or any signal whose handler raises) reaches a waiting main
      // thread within one poll (~1 ms), as with concurrent.futures; the task
      // itself goes on. A no-op on other threads.
      if (PyErr_CheckSignals() != 0) throw nb::python_error();
      return done();
    };
    nb::gil_scoped_release release;
    if (run_tasks) {
      runtime_->scheduler().help_until(ready);
    } else {
      runtime_->scheduler().wait_until(ready);
    }
  }

  void shutdown(bool wait) {
    nb::gil_scoped_release release;
    runtime_->shutdown(wait);
  }

  // Shuts down (as shutdown(wait)) on a thread of its own, started on the
  // first call, and waits up to `timeout` seconds for the workers to be
  // joined, GIL released. Returns whether they were. A signal whose handler
  // raises (Ctrl-C) ends the wait with its error, so the interpreter's exit
  // hook can give up on a task that never returns.
  bool join_for(bool wait, double timeout) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + to_nanoseconds(std::min(timeout, 1e6));
    {
      std::lock_guard<std::mutex> lock(join_mutex_);
      if (!joiner_.joinable() && !joined_) {
        joiner_ = std::thread([this, wait] {
          runtime_->shutdown(wait);
          std::lock_guard<std::mutex> done(join_mutex_);
          joined_ = true;
          join_cv_.notify_all();
        });
      }
    }
    for (;;) {
      {
        nb::gil_scoped_release release;
        std::unique_lock<std::mutex> lock(join_mutex_);
        const auto poll = std::min(deadline, clock::now() + std::chrono::milliseconds(20));
        join_cv_.wait_until(lock, poll, [this] { return joined_; });
        if (joined_) break;
      }
      if (PyErr_CheckSignals() != 0) throw nb::python_error();
      if (clock::now() >= deadline) return false;
    }
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(join_mutex_);
    if (joiner_.joinable()) joiner_.join();
    return true;
  }

 private:
  static std::unique_ptr<Runtime> with_python_hooks(RuntimeOptions options) {
    options.on_worker_start = attach_worker;
    options.on_worker_stop = detach_worker;
    nb::gil_scoped_release release;  // workers take the GIL as they start
    auto runtime = std::make_unique<Runtime>(std::move(options), default_registry());
    return runtime;
  }

  std::unique_ptr<Runtime> runtime_;
  std::mutex join_mutex_;
  std::condition_variable join_cv_;
  bool joined_ = false;  // the joiner_ thread's shutdown returned
  std::thread joiner_;
};

}  // namespace

void init_runtime(nb::module_& m) {
  nb::class_<RuntimeOptions>(m, "RuntimeOptions", "Settings of a runtime (filled by pyveda.Config).")
      .def(nb::init<>())
      .def_rw("num_threads", &RuntimeOptions::num_threads)
      .def_rw("queue_size", &RuntimeOptions::queue_size)
      .def_rw("enable_telemetry", &RuntimeOptions::enable_telemetry)
      .def_rw("enable_gpu", &RuntimeOptions::enable_gpu)
      .def_rw("collect_interval_s", &RuntimeOptions::collect_interval_s)
      .def_rw("latency_window_s", &RuntimeOptions::latency_window_s)
      .def_rw("max_snapshots", &RuntimeOptions::max_snapshots)
      .def_rw("proc_root", &RuntimeOptions::proc_root)
      .def("validate", &RuntimeOptions::validate, "Raises ValueError naming the field that is out of range.")
      .def_ro_static("max_threads", &Scheduler::max_threads)
      .def_ro_static("max_queue_size", &RuntimeOptions::kMaxQueueSize)
      .def_ro_static("max_snapshots_limit", &RuntimeOptions::kMaxSnapshots)
      .def_ro_static("max_collect_interval_s", &RuntimeOptions::kMaxCollectIntervalS);

  // Writable so that pyveda.MetricsSnapshot(...) and from_json() can build one.
  nb::class_<MetricsSnapshot>(m, "MetricsSnapshot", "The runtime's figures at one moment.")
      .def(nb::init<>())
      .def_rw("timestamp", &MetricsSnapshot::timestamp)
      .def_rw("tasks_executed", &MetricsSnapshot::tasks_executed)
      .def_rw("tasks_failed", &MetricsSnapshot::tasks_failed)
      .def_rw("tasks_pending", &MetricsSnapshot::tasks_pending)
      .def_rw("tasks_running", &MetricsSnapshot::tasks_running)
      .def_rw("avg_latency_ms", &MetricsSnapshot::avg_latency_ms)
      .def_rw("p50_latency_ms", &MetricsSnapshot::p50_latency_ms)
      .def_rw("p90_latency_ms", &MetricsSnapshot::p90_latency_ms)
      .def_rw("p95_latency_ms", &MetricsSnapshot::p95_latency_ms)
      .def_rw("p99_latency_ms", &MetricsSnapshot::p99_latency_ms)
      .def_rw("latency_sum_ms", &MetricsSnapshot::latency_sum_ms)
      .def_rw("latency_count", &MetricsSnapshot::latency_count)
      .def_rw("start_unix_nano", &MetricsSnapshot::start_unix_nano)
      .def_prop_ro(
          "latency_histogram", [](const MetricsSnapshot& s) { return s.latency_histogram; },
          nb::for_getter(nb::sig("def latency_histogram(self, /) -> HistogramSnapshot | None")),
          "The latency buckets (HistogramSnapshot), or None for collected history snapshots.")
      .def_rw("throughput_tasks_per_sec", &MetricsSnapshot::throughput_tasks_per_sec)
      .def_rw("window_seconds", &MetricsSnapshot::window_seconds)
      .def_rw("cpu_utilization_percent", &MetricsSnapshot::cpu_utilization_percent)
      .def_rw("memory_used_mb", &MetricsSnapshot::memory_used_mb)
      .def_rw("memory_total_mb", &MetricsSnapshot::memory_total_mb)
      .def_rw("process_rss_mb", &MetricsSnapshot::process_rss_mb)
      .def_rw("system_ok", &MetricsSnapshot::system_ok)
      .def_rw("gpu_utilization_percent", &MetricsSnapshot::gpu_utilization_percent)
      .def_rw("gpu_memory_used_mb", &MetricsSnapshot::gpu_memory_used_mb)
      .def_rw("gpus", &MetricsSnapshot::gpus, "Per-device GPU samples (empty without GPU data).")
      .def("export_prometheus", &render_snapshot_prometheus,
           "The snapshot in Prometheus text format 0.0.4, with the guide's metric names.")
      .def("export_openmetrics", &render_snapshot_openmetrics, "created_series"_a = true,
           "The same families as OpenMetrics 1.0 text (with _created samples unless created_series is False).")
      .def(
          "encode_otlp",
          [](const MetricsSnapshot& s, nb::handle resource, std::string_view scope_name,
             std::string_view scope_version) {
            const Attributes attributes = attributes_from_python(resource.ptr());
            const auto time_ns = static_cast<std::int64_t>(std::llround(s.timestamp * 1e9));
            std::string out;
            {
              nb::gil_scoped_release release;
              out = encode_otlp_metrics(to_families(s), attributes, scope_name, scope_version, time_ns);
            }
            return nb::bytes(out.data(), out.size());
          },
          "resource"_a.none(), "scope_name"_a, "scope_version"_a,
          nb::sig("def encode_otlp(self, resource: collections.abc.Mapping[str, object] | None, scope_name: str, "
                  "scope_version: str) -> bytes"),
          "The same families as a serialised OTLP ExportMetricsServiceRequest (protobuf), stamped with "
          "the snapshot's timestamp.");

  // The catalogue (veda/telemetry/catalogue.hpp): (name, help, unit, type, otlp_name) per runtime metric.
  nb::list catalogue;
  for (const RuntimeMetric* metric : runtime_metrics::kAll) {
    catalogue.append(nb::make_tuple(nb::str(metric->name.data(), metric->name.size()),
                                    nb::str(metric->help.data(), metric->help.size()),
                                    nb::str(metric->unit.data(), metric->unit.size()), to_string(metric->type),
                                    nb::str(metric->otlp_name.data(), metric->otlp_name.size())));
  }
  m.attr("RUNTIME_METRICS") = nb::tuple(catalogue);

  nb::class_<TelemetrySystem>(m, "TelemetrySystem", "Task metrics, snapshots and background collection.")
      .def("snapshot", &TelemetrySystem::snapshot, nb::call_guard<nb::gil_scoped_release>())
      .def("start", &TelemetrySystem::start)
      .def("stop", &TelemetrySystem::stop, nb::call_guard<nb::gil_scoped_release>())
      .def_prop_ro("is_running", &TelemetrySystem::is_running)
      .def("snapshots", &TelemetrySystem::snapshots)
      .def("clear_snapshots", &TelemetrySystem::clear_snapshots)
      .def_prop_rw("max_snapshots", &TelemetrySystem::max_snapshots, &TelemetrySystem::set_max_snapshots)
      .def_prop_ro("collect_interval", &TelemetrySystem::collect_interval)
      .def("throughput", &TelemetrySystem::throughput)
      .def("_remote_submit", &TelemetrySystem::on_remote_submit,
           "Counts a task handed to another executor as pending (see _remote_end).")
      .def(
          "_remote_end",
          [](TelemetrySystem& t, std::int64_t latency_ns, bool ok) {
            if (latency_ns < 0) throw nb::value_error("latency_ns must be >= 0");
            t.on_remote_end(latency_ns, ok);
          },
          "latency_ns"_a, "ok"_a,
          "Ends a task _remote_submit counted: executed (failed unless ok), with its submit-to-result latency.")
      .def("_remote_cancelled", &TelemetrySystem::on_remote_cancelled,
           "Ends a task _remote_submit counted that was cancelled before it ran (not executed).")
      .def(
          "add_callback",
          [](TelemetrySystem& t, nb::callable callback) {
            // Runs on the collector thread: take the GIL, report (not raise) errors.
            auto holder = std::make_shared<GilObject>(std::move(callback));
            return t.add_callback([holder](const MetricsSnapshot& s) {
              if (!nb::is_alive()) return;
              nb::gil_scoped_acquire gil;
              try {
                holder->object(s);
              } catch (nb::python_error& e) {
                e.discard_as_unraisable("pyveda: telemetry callback");
              }
            });
          },
          "callback"_a, "Calls callback(snapshot) on the collector thread after each collection; returns an id.")
      .def("remove_callback", &TelemetrySystem::remove_callback, "id"_a)
      .def("clear_callbacks", &TelemetrySystem::clear_callbacks);

  nb::class_<PyRuntime>(m, "Runtime", "A scheduler running Python callables, with optional telemetry.",
                        nb::is_weak_referenceable())
      .def(nb::init<RuntimeOptions>(), "options"_a)
      .def("submit", &PyRuntime::submit, "future"_a, "fn"_a, "args"_a, "kwargs"_a)
      .def("try_submit", &PyRuntime::try_submit, "future"_a, "fn"_a, "args"_a, "kwargs"_a, "timeout"_a)
      .def("wait", &PyRuntime::wait, "future"_a, "timeout"_a.none(), "run_tasks"_a)
      .def("shutdown", &PyRuntime::shutdown, "wait"_a = true)
      .def("join_for", &PyRuntime::join_for, "wait"_a, "timeout"_a,
           "Shuts down on a helper thread and waits up to timeout s for the workers; True once joined. "
           "Ctrl-C ends the wait with KeyboardInterrupt.")
      .def_prop_ro(
          "telemetry", [](PyRuntime& r) { return r.get().telemetry(); }, nb::rv_policy::reference_internal)
      .def_prop_ro(
          "gpu", [](PyRuntime& r) { return r.get().gpu(); }, nb::rv_policy::reference_internal,
          nb::for_getter(nb::sig("def gpu(self, /) -> GpuMonitor | None")),
          "The GpuMonitor, or None when GPU telemetry is disabled.")
      .def_prop_ro("num_threads", [](PyRuntime& r) { return r.get().scheduler().num_threads(); })
      .def_prop_ro("queue_size", [](PyRuntime& r) { return r.get().options().queue_size; })
      .def_prop_ro("is_shutdown", [](PyRuntime& r) { return r.get().is_shutdown(); })
      .def_prop_ro(
          "is_inherited", [](PyRuntime& r) { return r.get().scheduler().is_inherited(); },
          "True in a child process for a runtime made before the fork(): its workers stayed in the parent.")
      .def_prop_ro("pending", [](PyRuntime& r) { return r.get().scheduler().pending(); })
      .def_prop_ro("running", [](PyRuntime& r) { return r.get().scheduler().running(); })
      .def_prop_ro("completed", [](PyRuntime& r) { return r.get().scheduler().completed(); })
      .def_prop_ro("failed", [](PyRuntime& r) { return r.get().scheduler().failed(); })
      .def_prop_ro("cancelled", [](PyRuntime& r) { return r.get().scheduler().cancelled(); });

  m.def("in_worker_thread", &Scheduler::in_worker_thread, "True on a worker thread of any runtime.");
}

}  // namespace veda::bindings
