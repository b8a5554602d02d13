#include "veda/runtime/runtime.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace veda {

void RuntimeOptions::validate() const {
  if (num_threads > Scheduler::max_threads) {
    throw std::invalid_argument("threads must be between 1 and " + std::to_string(Scheduler::max_threads) +
                                ", got " + std::to_string(num_threads));
  }
  if (!(collect_interval_s > 0.0) || !(collect_interval_s <= kMaxCollectIntervalS)) {
    throw std::invalid_argument("collect_interval must be a number of seconds > 0 and at most 1e9, got " +
                                std::to_string(collect_interval_s));
  }
  if (!(latency_window_s > 0.0) || !(latency_window_s <= kMaxCollectIntervalS)) {
    throw std::invalid_argument("latency_window must be a number of seconds > 0 and at most 1e9, got " +
                                std::to_string(latency_window_s));
  }
  if (queue_size > kMaxQueueSize) {
    throw std::invalid_argument("queue_size must be at most 2**62, got " + std::to_string(queue_size));
  }
  if (max_snapshots == 0 || max_snapshots > kMaxSnapshots) {
    throw std::invalid_argument("max_snapshots must be between 1 and 2**62, got " + std::to_string(max_snapshots));
  }
}

Runtime::Runtime(RuntimeOptions options, Registry& registry) : options_(std::move(options)) {
  options_.validate();
  if (options_.enable_gpu) {
    gpu_ = std::make_shared<GpuMonitor>();
    gpu_->init();  // never throws: no driver or device leaves it unavailable
  }
  if (options_.enable_telemetry) {
    TelemetryOptions t;
    t.collect_interval_s = options_.collect_interval_s;
    t.latency_window_s = options_.latency_window_s;
    t.max_snapshots = options_.max_snapshots;
    t.proc_root = options_.proc_root;
    if (gpu_) t.gpu_sampler = [gpu = gpu_] { return gpu->sample(); };
    telemetry_ = std::make_unique<TelemetrySystem>(t, registry);
  }
  SchedulerOptions s;
  s.num_threads = options_.num_threads;
  s.queue_capacity = options_.queue_size;
  s.observer = telemetry_.get();
  s.on_worker_start = options_.on_worker_start;
  s.on_worker_stop = options_.on_worker_stop;
  scheduler_ = std::make_shared<Scheduler>(std::move(s));
  options_.num_threads = scheduler_->num_threads();
  if (telemetry_) telemetry_->attach(scheduler_);
}

Runtime::~Runtime() {
  gpu_.reset();  // so shutdown() below makes no NVML call (see the header)
  shutdown(true);
  // Made before fork(): the collector may have held the lock attach() takes (see shutdown()).
  if (telemetry_ && !scheduler_->is_inherited()) telemetry_->attach(nullptr);
}

void Runtime::shutdown(bool wait) {
  if (scheduler_->is_inherited()) {
    // In a child after fork(): the workers and the collector stayed in the
    // parent and the locks they share may stay held; only mark it shut down.
    scheduler_->shutdown(wait);
    return;
  }
  if (telemetry_) {
    telemetry_->stop();
    telemetry_->clear_callbacks();
  }
  scheduler_->shutdown(wait);
  if (gpu_) gpu_->shutdown();
}

}  // namespace veda
