// veda::Runtime: a scheduler plus, when enabled, its telemetry.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "veda/metrics/registry.hpp"
#include "veda/runtime/scheduler.hpp"
#include "veda/telemetry/gpu_telemetry.hpp"
#include "veda/telemetry/telemetry.hpp"

namespace veda {

// Settings of a Runtime; the Python Config builder fills exactly this struct.
struct RuntimeOptions {
  unsigned num_threads = 0;           // worker threads; 0 = one per CPU
  std::size_t queue_size = 0;         // most queued, not started tasks; 0 = unbounded
  bool enable_telemetry = false;      // per-task metrics, snapshots, collection
  bool enable_gpu = false;            // a GpuMonitor (gpu()); GPU figures in snapshots
  double collect_interval_s = 1.0;    // telemetry collection period, seconds, > 0
  double latency_window_s = 60.0;     // window of the latency percentiles, seconds, in (0, 1e9]
  std::size_t max_snapshots = 3600;   // collected snapshots kept, > 0
  std::string proc_root = "/proc";    // where the system probe reads (tests, containers)
  // Run on each worker thread as it starts and before it exits (see SchedulerOptions).
  std::function<void()> on_worker_start = {};
  std::function<void()> on_worker_stop = {};

  // Largest values validate() accepts (the bindings read these): a queue or
  // history this long is unbounded in practice, and the interval's bound
  // (about 31 years) keeps every deadline computation from overflowing.
  static constexpr std::size_t kMaxQueueSize = std::size_t{1} << 62;
  static constexpr std::size_t kMaxSnapshots = std::size_t{1} << 62;
  static constexpr double kMaxCollectIntervalS = 1e9;

  // Throws std::invalid_argument naming the field when a value is out of range.
  void validate() const;
};

// Owns a Scheduler and, with enable_telemetry, a TelemetrySystem observing it.
//
// Thread-safety: all methods may be called from any thread; shutdown() must not
// be called from a task of this runtime to wait for the workers (it then only
// starts the shutdown, see Scheduler::shutdown).
class Runtime {
 public:
  explicit Runtime(RuntimeOptions options = {}, Registry& registry = default_registry());
  ~Runtime();  // shutdown(true)
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  Scheduler& scheduler() noexcept { return *scheduler_; }
  // nullptr when telemetry is disabled.
  TelemetrySystem* telemetry() noexcept { return telemetry_.get(); }
  // With enable_gpu, the GPU monitor (NVML initialised by the constructor;
  // unavailable, with its reason, when there is no driver or device) whose
  // samples fill the snapshots' GPU fields; nullptr when GPU is disabled.
  GpuMonitor* gpu() noexcept { return gpu_.get(); }
  const RuntimeOptions& options() const noexcept { return options_; }

  // Stops telemetry collection (dropping its callbacks), then the scheduler
  // (wait: drain the queue, else cancel it), then releases NVML (gpu() reads
  // as unavailable afterwards). Idempotent. The destructor shuts down the same
  // way but makes no NVML call (it may run at exit, after libnvidia-ml's own
  // teardown): call shutdown() to release NVML. In a child process, for a
  // runtime made before the fork(), it only marks the scheduler shut down
  // (see Scheduler::is_inherited): nothing of the parent's is joined or locked.
  void shutdown(bool wait = true);
  bool is_shutdown() const noexcept { return scheduler_->is_shutdown(); }

 private:
  RuntimeOptions options_;
  std::shared_ptr<GpuMonitor> gpu_;  // shared with telemetry's gpu_sampler
  std::unique_ptr<TelemetrySystem> telemetry_;  // outlives the scheduler it observes
  std::shared_ptr<Scheduler> scheduler_;
};

}  // namespace veda
