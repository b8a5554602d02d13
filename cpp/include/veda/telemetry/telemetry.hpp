// veda::TelemetrySystem: per-task metrics, snapshots and background collection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "veda/metrics/histogram.hpp"
#include "veda/metrics/registry.hpp"
#include "veda/probes/gpu.hpp"
#include "veda/runtime/scheduler.hpp"

namespace veda {

// The runtime's figures at one moment, with the fields of the telemetry guide.
//
// Counts cover the tasks of one Runtime since it started; "executed" counts
// every finished task, failed ones included (so failed / executed is the
// failure rate). Latency is end-to-end, from submit to completion, over all
// finished tasks; it reads 0 until a task has finished. Throughput and CPU
// utilisation are rates over the latest collection window (see
// TelemetrySystem). MB means MiB.
struct MetricsSnapshot {
  double timestamp = 0.0;  // Unix time, seconds
  std::uint64_t tasks_executed = 0;
  std::uint64_t tasks_failed = 0;
  std::uint64_t tasks_pending = 0;
  std::uint64_t tasks_running = 0;
  double avg_latency_ms = 0.0;
  double p50_latency_ms = 0.0;
  double p90_latency_ms = 0.0;
  double p95_latency_ms = 0.0;
  double p99_latency_ms = 0.0;
  double latency_sum_ms = 0.0;
  std::uint64_t latency_count = 0;
  // Wall-clock start (ns since the Unix epoch) of the cumulative task counts:
  // when this runtime's telemetry began (or its counters were last reset).
  std::int64_t start_unix_nano = 0;
  double throughput_tasks_per_sec = 0.0;
  double window_seconds = 0.0;  // length of the window behind the two rates
  double cpu_utilization_percent = 0.0;
  double memory_used_mb = 0.0;
  double memory_total_mb = 0.0;
  double process_rss_mb = 0.0;
  bool system_ok = false;  // false when the system probe could not read /proc
  // GPU figures, filled only when the telemetry has a GPU sampler (Runtime
  // with enable_gpu) and it returned devices; otherwise empty, never 0.
  // Utilization: mean over the devices that report it. Memory used: sum over
  // devices of NVML v2 `used`, which excludes driver-reserved memory and
  // matches nvidia-smi's "Used" column (see GpuDeviceSample::memory_used_mb).
  std::optional<double> gpu_utilization_percent;
  std::optional<double> gpu_memory_used_mb;
  // One NVML sample per device, in index order (empty without GPU data).
  std::vector<GpuDeviceSample> gpus;
  // The latency histogram's buckets (exponential layout, lossless for OTLP),
  // set by TelemetrySystem::snapshot(); null in the collector's history, so
  // the history stays small.
  std::shared_ptr<const HistogramSnapshot> latency_histogram;
};

// The snapshot as the same families a registry collects, named and
// described by runtime_metrics (veda/telemetry/catalogue.hpp): task counts as
// counters (start = snapshot.start_unix_nano), pending/running/throughput and
// the host figures as gauges, latency as a histogram family (the buckets when
// snapshot.latency_histogram is set, else its sum, count and p50/p90/p95/p99
// as the kSummaryQuantiles values, NaN before the first task), and the GPU
// gauges when the snapshot has GPU data. Every snapshot format renders these.
std::vector<FamilySnapshot> to_families(const MetricsSnapshot& snapshot);

// The other way: the runtime's figures in `families` (a registry's
// collect(), e.g. the multi-process aggregate of every process's runtime),
// stamped `timestamp`. Counts, gauges and the latency histogram are read as
// collected; the percentiles and mean come from the latency histogram's
// lifetime buckets (a collection has no recent window). GPU figures and
// memory_total_mb are left empty. Families that are missing read as zero.
MetricsSnapshot from_families(const std::vector<FamilySnapshot>& families, double timestamp);

namespace detail {
// Sets the snapshot's mean and p50/p90/p95/p99 from `latency` (left at 0 when it is empty).
void set_latency_figures(MetricsSnapshot& snapshot, const HistogramSnapshot& latency);
}  // namespace detail

// The snapshot in Prometheus text format 0.0.4 and as OpenMetrics 1.0 text:
// to_families(snapshot) rendered, so every name, help text, type and quantile
// set is the registry's (/metrics). The
// GPU gauges are per device when the snapshot has per-device samples, else
// the unlabelled aggregate figures.
std::string render_snapshot_prometheus(const MetricsSnapshot& snapshot);
std::string render_snapshot_openmetrics(const MetricsSnapshot& snapshot, bool created_series = true);

struct TelemetryOptions {
  double collect_interval_s = 1.0;  // > 0
  // The window of the snapshots' latency percentiles and mean (and of the
  // pyveda_latency_ms summary quantiles), seconds, in (0, 1e9]. The counts,
  // sums and buckets of the cumulative exports cover the whole lifetime.
  double latency_window_s = 60.0;
  std::size_t max_snapshots = 3600;  // history kept by the collector; > 0
  std::string proc_root = "/proc";   // where the system probe reads
  // Per-device GPU readings for each snapshot (e.g. GpuMonitor::sample, set
  // by Runtime when enable_gpu); empty: no GPU figures. Called on the thread
  // taking the snapshot, possibly several at once; exceptions mean no data.
  std::function<std::vector<GpuDeviceSample>()> gpu_sampler = {};
};

// Records every task's outcome and timings, takes snapshots, and collects them
// on a background thread.
//
// Metrics go into the registry as pyveda_tasks_executed_total,
// pyveda_tasks_failed_total, pyveda_latency_ms, pyveda_queue_wait_ms and
// pyveda_run_time_ms (histograms), pyveda_tasks_pending / _running and
// pyveda_throughput_tasks_per_sec (read live), and pyveda_cpu_utilization_percent,
// pyveda_memory_used_mb and pyveda_process_rss_mb (as of the latest snapshot).
// With a gpu_sampler, each snapshot also sets per-device GPU gauges (labels gpu
// and name): pyveda_gpu_utilization_percent, pyveda_gpu_memory_used_mb,
// pyveda_gpu_memory_total_mb, pyveda_gpu_temperature_celsius and
// pyveda_gpu_power_watts; they are registered with the first GPU reading and
// a reading that goes missing removes its series.
// Constructing a TelemetrySystem replaces families of those names left in the
// registry by an earlier one, so counts start from zero with each runtime.
//
// Rates: the system keeps the points (time, tasks executed, CPU ticks) at which
// it collected, at least collect_interval apart. A snapshot's throughput and CPU
// figures cover the window from the newest such point that is at least one
// interval old (or from the start) up to now, so any number of readers see
// consistent figures and never shorten one another's windows.
//
// Thread-safety: all methods may be called from any thread. The observer hooks
// are called by the scheduler's threads and are lock-free.
class TelemetrySystem final : public SchedulerObserver {
 public:
  explicit TelemetrySystem(TelemetryOptions options = {}, Registry& registry = default_registry());
  ~TelemetrySystem() override;
  TelemetrySystem(const TelemetrySystem&) = delete;
  TelemetrySystem& operator=(const TelemetrySystem&) = delete;

  // Reads pending/running from `scheduler` (an empty pointer detaches: they
  // read 0). Only a weak reference is kept.
  void attach(const std::shared_ptr<const Scheduler>& scheduler);

  void on_task_end(std::int64_t queue_wait_ns, std::int64_t run_ns, bool ok) noexcept override;

  // Tasks this runtime handed to another executor (pyveda's Dask executor):
  // on_remote_submit() counts one in pending until on_remote_end() finishes
  // it, counting it in executed (and failed unless ok) and its end-to-end
  // latency (submit to result) in the latency histogram. Where it queued
  // and ran is not known here, so the queue-wait and run-time histograms
  // leave it out. Lock-free, as the observer hooks.
  void on_remote_submit() noexcept;
  void on_remote_end(std::int64_t latency_ns, bool ok) noexcept;
  // Ends a task on_remote_submit() counted that was cancelled before it ran: no longer pending, not executed.
  void on_remote_cancelled() noexcept;

  MetricsSnapshot snapshot();

  // Background collection every collect_interval: each snapshot is kept in the
  // history (oldest dropped beyond max_snapshots) and passed to the callbacks.
  void start();
  // Stops and joins the collector; returns within a fraction of the interval.
  // Called from a collection callback it only stops the loop: the thread is
  // joined by the next start()/stop() from another thread or the destructor.
  // In a child process, for a TelemetrySystem made before the fork(), stop()
  // and the destructor join nothing and take no lock: the collector stayed
  // in the parent (see veda/detail/fork.hpp).
  void stop();
  bool is_running() const noexcept;

  std::vector<MetricsSnapshot> snapshots() const;
  void clear_snapshots();
  std::size_t max_snapshots() const;
  // Throws std::invalid_argument for 0; trims the history to the new bound.
  void set_max_snapshots(std::size_t n);
  double collect_interval() const noexcept;

  // Called on the collector thread with every collected snapshot; returns an id
  // for remove_callback. Callbacks must not throw (exceptions are swallowed).
  std::size_t add_callback(std::function<void(const MetricsSnapshot&)> callback);
  void remove_callback(std::size_t id);
  void clear_callbacks();

  // Throughput over the latest window, without probing the system.
  double throughput() const;

  const Counter& executed() const noexcept;
  const Counter& failed() const noexcept;
  const Histogram& latency_ms() const noexcept;
  const Histogram& queue_wait_ms() const noexcept;
  const Histogram& run_time_ms() const noexcept;

 private:
  struct Impl;  // the metrics, the rate points, the history and the collector; see telemetry.cpp
  std::unique_ptr<Impl> impl_;
};

}  // namespace veda
