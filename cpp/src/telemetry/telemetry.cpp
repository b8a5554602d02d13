// veda::TelemetrySystem: per-task metrics, rate windows, snapshot history and
// the background collector, behind a pimpl (TelemetrySystem::Impl).
#include "veda/telemetry/telemetry.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "metrics/clock.hpp"
#include "runtime/detail/tick_clock.hpp"
#include "telemetry/detail/gpu_telemetry.hpp"
#include "veda/detail/fork.hpp"
#include "veda/metrics/text_format.hpp"
#include "veda/telemetry/catalogue.hpp"
#include "veda/probes/system.hpp"

namespace veda {
namespace {

constexpr std::size_t kMaxPoints = 8;

using detail::steady_now_ns;

// A fresh family for a catalogue entry, replacing one an earlier
// TelemetrySystem left in the registry, and its one series.
// `mode`: how a gauge combines across processes in multi-process mode.
template <class M>
std::shared_ptr<M> fresh(Registry& registry, const RuntimeMetric& metric, double max_age_s = 0.0,
                         GaugeMode mode = GaugeMode::livesum) {
  const std::string name(metric.name);
  const std::string help(metric.help);
  registry.unregister(name);
  if constexpr (std::is_same_v<M, Counter>) {
    return registry.counter(name, help)->labels(std::vector<std::string>{});
  } else if constexpr (std::is_same_v<M, Gauge>) {
    return registry.gauge(name, help, {}, {}, mode)->labels(std::vector<std::string>{});
  } else {
    return registry.histogram(name, help, {}, Histogram::kDefaultScale, {}, max_age_s)->labels(std::vector<std::string>{});
  }
}

}  // namespace

// The state behind a TelemetrySystem and the work on it; the public methods
// forward here. Lives on the heap so the gauges' callbacks and the collector
// thread can hold a stable pointer to it.
struct TelemetrySystem::Impl {
  // One collection point: when, how many tasks had finished, the system sample.
  struct Point {
    std::int64_t steady_ns = 0;
    std::uint64_t executed = 0;
    SystemSample system;
  };

  Impl(TelemetryOptions options, Registry& registry);
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  std::shared_ptr<const Scheduler> scheduler() const;
  std::uint64_t remote_pending() const noexcept {
    const std::int64_t n = remote_pending_.load(std::memory_order_relaxed);
    return n > 0 ? static_cast<std::uint64_t>(n) : 0;
  }
  Point window_start(std::int64_t now_ns) const;  // caller holds points_mutex_
  void record_point(const Point& p);              // caller holds points_mutex_
  double throughput() const;
  MetricsSnapshot snapshot();
  void start();
  void stop();
  void collector_loop();

  TelemetryOptions options_;
  Registry& registry_;
  SystemProbe probe_;
  std::shared_ptr<Counter> executed_;
  std::shared_ptr<Counter> failed_;
  std::shared_ptr<Histogram> latency_;
  std::shared_ptr<Histogram> queue_wait_;
  std::shared_ptr<Histogram> run_time_;
  std::shared_ptr<Gauge> pending_;
  std::shared_ptr<Gauge> running_;
  std::shared_ptr<Gauge> throughput_;
  std::shared_ptr<Gauge> cpu_;
  std::shared_ptr<Gauge> memory_;
  std::shared_ptr<Gauge> rss_;

  std::atomic<std::int64_t> remote_pending_{0};  // on_remote_submit() minus on_remote_end()

  mutable detail::ForkSafeMutex scheduler_mutex_;  // leaf level: never left locked by fork()
  std::weak_ptr<const Scheduler> scheduler_;

  mutable detail::ForkSafeMutex points_mutex_;
  std::deque<Point> points_;

  mutable std::mutex history_mutex_;
  std::deque<MetricsSnapshot> history_;
  std::size_t max_snapshots_;

  std::mutex callbacks_mutex_;
  std::vector<std::pair<std::size_t, std::function<void(const MetricsSnapshot&)>>> callbacks_;
  std::size_t next_callback_id_ = 1;

  std::mutex collector_mutex_;
  std::condition_variable collector_cv_;
  bool stop_requested_ = false;
  std::thread collector_;
  const detail::ProcessStamp stamp_;  // see veda/detail/fork.hpp
  bool inherited() const noexcept { return stamp_.inherited(); }
  std::atomic<bool> running_collector_{false};

  std::unique_ptr<detail::GpuGauges> gpu_gauges_;  // see gpu_telemetry.cpp
};

TelemetrySystem::Impl::Impl(TelemetryOptions options, Registry& registry)
    : options_(std::move(options)),
      registry_(registry),
      probe_(options_.proc_root),
      max_snapshots_(options_.max_snapshots) {
  if (!(options_.collect_interval_s > 0.0) || !std::isfinite(options_.collect_interval_s)) {
    throw std::invalid_argument("collect_interval must be a finite number of seconds > 0");
  }
  if (options_.max_snapshots == 0) throw std::invalid_argument("max_snapshots must be at least 1");
  namespace m = runtime_metrics;
  executed_ = fresh<Counter>(registry_, m::tasks_executed);
  failed_ = fresh<Counter>(registry_, m::tasks_failed);
  pending_ = fresh<Gauge>(registry_, m::tasks_pending);
  running_ = fresh<Gauge>(registry_, m::tasks_running);
  // The latency histogram keeps a recent window: the snapshots' percentiles
  // and the summary quantiles of pyveda_latency_ms describe it.
  latency_ = fresh<Histogram>(registry_, m::latency_ms, options_.latency_window_s);
  queue_wait_ = fresh<Histogram>(registry_, m::queue_wait_ms);
  run_time_ = fresh<Histogram>(registry_, m::run_time_ms);
  throughput_ = fresh<Gauge>(registry_, m::throughput);
  // Machine-wide readings: in multi-process mode the latest of any live process.
  cpu_ = fresh<Gauge>(registry_, m::cpu_utilization, 0.0, GaugeMode::livemostrecent);
  memory_ = fresh<Gauge>(registry_, m::memory_used, 0.0, GaugeMode::livemostrecent);
  rss_ = fresh<Gauge>(registry_, m::process_rss);

  // Read when scraped; in a multi-process file (which other processes read)
  // stored at each snapshot instead.
  if (!pending_->shared()) {
    pending_->set_function([this] {
      const auto s = scheduler();
      return (s ? static_cast<double>(s->pending()) : 0.0) + static_cast<double>(remote_pending());
    });
    running_->set_function([this] {
      const auto s = scheduler();
      return s ? static_cast<double>(s->running()) : 0.0;
    });
    throughput_->set_function([this] { return throughput(); });
  }
  gpu_gauges_ = std::make_unique<detail::GpuGauges>(registry_);

  Point start;
  start.steady_ns = steady_now_ns();
  start.system = probe_.sample();
  points_.push_back(std::move(start));
}

TelemetrySystem::Impl::~Impl() {
  stop();
  // The gauges outlive this object in the registry: freeze them at their last values.
  for (const auto& gauge : {pending_, running_, throughput_}) {
    const double last = gauge->get();
    gauge->set_function({});
    gauge->set(last);
  }
}

std::shared_ptr<const Scheduler> TelemetrySystem::Impl::scheduler() const {
  std::lock_guard<detail::ForkSafeMutex> lock(scheduler_mutex_);
  return scheduler_.lock();
}

TelemetrySystem::Impl::Point TelemetrySystem::Impl::window_start(std::int64_t now_ns) const {
  const auto interval_ns = static_cast<std::int64_t>(options_.collect_interval_s * 1e9);
  for (auto it = points_.rbegin(); it != points_.rend(); ++it) {
    if (now_ns - it->steady_ns >= interval_ns) return *it;
  }
  return points_.front();
}

void TelemetrySystem::Impl::record_point(const Point& p) {
  const auto interval_ns = static_cast<std::int64_t>(options_.collect_interval_s * 1e9);
  if (p.steady_ns - points_.back().steady_ns < interval_ns) return;
  points_.push_back(p);
  while (points_.size() > kMaxPoints) points_.pop_front();
}

double TelemetrySystem::Impl::throughput() const {
  const std::int64_t now = steady_now_ns();
  const auto executed = static_cast<std::uint64_t>(executed_->get());
  Point start;
  {
    std::lock_guard<detail::ForkSafeMutex> lock(points_mutex_);
    start = window_start(now);
  }
  const double seconds = static_cast<double>(now - start.steady_ns) / 1e9;
  if (seconds <= 0.0 || executed < start.executed) return 0.0;
  return static_cast<double>(executed - start.executed) / seconds;
}

MetricsSnapshot TelemetrySystem::Impl::snapshot() {
  detail::TickClock::calibrate();  // refines the rate the scheduler's task timings convert with
  Point now;
  now.system = probe_.sample();
  now.steady_ns = steady_now_ns();
  const auto failed = static_cast<std::uint64_t>(failed_->get());
  now.executed = static_cast<std::uint64_t>(executed_->get());

  MetricsSnapshot s;
  s.timestamp = static_cast<double>(detail::unix_now_ns()) / 1e9;
  s.tasks_executed = now.executed;
  s.tasks_failed = failed;
  if (const auto sched = scheduler()) {
    s.tasks_pending = sched->pending();
    s.tasks_running = sched->running();
  }
  s.tasks_pending += remote_pending();

  HistogramSnapshot latency = latency_->snapshot();
  s.latency_count = latency.count;
  s.latency_sum_ms = latency.sum;
  s.start_unix_nano = executed_->created_unix_nano();
  // Percentiles and mean of the recent window; count, sum and buckets of the lifetime.
  const HistogramSnapshot recent = latency_->recent(latency);
  detail::set_latency_figures(s, recent);
  s.latency_histogram = std::make_shared<const HistogramSnapshot>(std::move(latency));

  Point start;
  {
    std::lock_guard<detail::ForkSafeMutex> lock(points_mutex_);
    start = window_start(now.steady_ns);
    record_point(now);
  }
  s.window_seconds = static_cast<double>(now.steady_ns - start.steady_ns) / 1e9;
  if (s.window_seconds > 0.0 && now.executed >= start.executed) {
    s.throughput_tasks_per_sec = static_cast<double>(now.executed - start.executed) / s.window_seconds;
  }
  s.system_ok = now.system.ok;
  s.cpu_utilization_percent = cpu_percent_between(start.system, now.system, now.system.cpu_percent);
  s.memory_used_mb = now.system.memory_used_mb;
  s.memory_total_mb = now.system.memory_total_mb;
  s.process_rss_mb = now.system.process_rss_mb;

  cpu_->set(s.cpu_utilization_percent);
  memory_->set(s.memory_used_mb);
  rss_->set(s.process_rss_mb);
  if (pending_->shared()) {
    pending_->set(static_cast<double>(s.tasks_pending));
    running_->set(static_cast<double>(s.tasks_running));
    throughput_->set(s.throughput_tasks_per_sec);
  }
  if (options_.gpu_sampler) {
    detail::fill_gpu_fields(s, options_.gpu_sampler);
    gpu_gauges_->update(s.gpus);
  }
  return s;
}

void TelemetrySystem::Impl::start() {
  std::thread finished;
  {
    std::lock_guard<std::mutex> lock(collector_mutex_);
    if (collector_.joinable()) {
      if (!stop_requested_) return;  // already running
      if (collector_.get_id() == std::this_thread::get_id()) {
        // stop() then start() from one callback: this collector carries on.
        stop_requested_ = false;
        running_collector_.store(true, std::memory_order_release);
        return;
      }
      // Stopped from its own callback and not joined yet: it exits once it
      // sees it is no longer collector_; join it below, outside the lock.
      finished = std::move(collector_);
    }
    stop_requested_ = false;
    running_collector_.store(true, std::memory_order_release);
    collector_ = std::thread([this] { collector_loop(); });
  }
  collector_cv_.notify_all();
  if (finished.joinable()) finished.join();
}

void TelemetrySystem::Impl::stop() {
  if (inherited()) {
    running_collector_.store(false, std::memory_order_release);  // no collector runs in this process
    return;
  }
  std::thread collector;
  {
    std::lock_guard<std::mutex> lock(collector_mutex_);
    if (!collector_.joinable()) return;
    stop_requested_ = true;
    running_collector_.store(false, std::memory_order_release);
    if (collector_.get_id() == std::this_thread::get_id()) {
      // stop() from a callback: a thread cannot join itself. The loop exits
      // after the callbacks; the thread stays in collector_ and is joined by
      // the next start() or stop() from another thread, or the destructor.
      return;
    }
    collector = std::move(collector_);
  }
  collector_cv_.notify_all();
  collector.join();
}

void TelemetrySystem::Impl::collector_loop() {
  const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(options_.collect_interval_s));
  auto next = std::chrono::steady_clock::now() + interval;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(collector_mutex_);
      // Exit when stopped, or when a start() has replaced this thread.
      const auto self = std::this_thread::get_id();
      const auto stopped = [this, self] { return stop_requested_ || collector_.get_id() != self; };
      if (collector_cv_.wait_until(lock, next, stopped)) return;
    }
    next += interval;
    const auto now = std::chrono::steady_clock::now();
    if (next < now) next = now + interval;  // fell behind (suspended): do not burst
    MetricsSnapshot s = snapshot();
    {
      std::lock_guard<std::mutex> lock(history_mutex_);
      history_.push_back(s);
      history_.back().latency_histogram = nullptr;  // buckets only on demand
      while (history_.size() > max_snapshots_) history_.pop_front();
    }
    std::vector<std::function<void(const MetricsSnapshot&)>> callbacks;
    {
      std::lock_guard<std::mutex> lock(callbacks_mutex_);
      for (const auto& entry : callbacks_) callbacks.push_back(entry.second);
    }
    for (const auto& callback : callbacks) {
      try {
        callback(s);
      } catch (...) {
        // A failing callback must not stop collection.
      }
    }
  }
}

// --- TelemetrySystem: forwards to Impl ----------------------------------------

TelemetrySystem::TelemetrySystem(TelemetryOptions options, Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(options), registry)) {}

TelemetrySystem::~TelemetrySystem() {
  if (impl_->inherited()) {
    // Made before fork(): the collector thread is the parent's (its handle
    // cannot be joined here), and its condition variable and locks may stay
    // in use by threads that are not in this process (destroying a condition
    // variable waits for its waiters). Leave the state alone; the registry's
    // gauges keep pointing at it.
    (void)impl_.release();
  }
  // Otherwise Impl's destructor stops the collector.
}

void TelemetrySystem::attach(const std::shared_ptr<const Scheduler>& scheduler) {
  std::lock_guard<detail::ForkSafeMutex> lock(impl_->scheduler_mutex_);
  impl_->scheduler_ = scheduler;
}

void TelemetrySystem::on_task_end(std::int64_t queue_wait_ns, std::int64_t run_ns, bool ok) noexcept {
  Impl& d = *impl_;
  const double wait_ms = static_cast<double>(queue_wait_ns) / 1e6;
  const double run_ms = static_cast<double>(run_ns) / 1e6;
  d.queue_wait_->observe(wait_ms);
  d.run_time_->observe(run_ms);
  d.latency_->observe(wait_ms + run_ms);
  // executed before failed, and snapshot() reads them the other way round, so
  // a reader never sees more failed than executed tasks.
  d.executed_->inc();
  if (!ok) d.failed_->inc();
}

void TelemetrySystem::on_remote_submit() noexcept { impl_->remote_pending_.fetch_add(1, std::memory_order_relaxed); }

void TelemetrySystem::on_remote_end(std::int64_t latency_ns, bool ok) noexcept {
  Impl& d = *impl_;
  d.latency_->observe(static_cast<double>(latency_ns) / 1e6);
  d.executed_->inc();  // before failed, as in on_task_end
  if (!ok) d.failed_->inc();
  d.remote_pending_.fetch_sub(1, std::memory_order_relaxed);
}

void TelemetrySystem::on_remote_cancelled() noexcept {
  impl_->remote_pending_.fetch_sub(1, std::memory_order_relaxed);
}

MetricsSnapshot TelemetrySystem::snapshot() { return impl_->snapshot(); }

void TelemetrySystem::start() { impl_->start(); }

void TelemetrySystem::stop() { impl_->stop(); }

bool TelemetrySystem::is_running() const noexcept {
  return impl_->running_collector_.load(std::memory_order_acquire);
}

std::vector<MetricsSnapshot> TelemetrySystem::snapshots() const {
  std::lock_guard<std::mutex> lock(impl_->history_mutex_);
  return {impl_->history_.begin(), impl_->history_.end()};
}

void TelemetrySystem::clear_snapshots() {
  std::lock_guard<std::mutex> lock(impl_->history_mutex_);
  impl_->history_.clear();
}

std::size_t TelemetrySystem::max_snapshots() const {
  std::lock_guard<std::mutex> lock(impl_->history_mutex_);
  return impl_->max_snapshots_;
}

void TelemetrySystem::set_max_snapshots(std::size_t n) {
  if (n == 0) throw std::invalid_argument("max_snapshots must be at least 1, got 0");
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.history_mutex_);
  d.max_snapshots_ = n;
  while (d.history_.size() > d.max_snapshots_) d.history_.pop_front();
}

double TelemetrySystem::collect_interval() const noexcept { return impl_->options_.collect_interval_s; }

std::size_t TelemetrySystem::add_callback(std::function<void(const MetricsSnapshot&)> callback) {
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.callbacks_mutex_);
  const std::size_t id = d.next_callback_id_++;
  d.callbacks_.emplace_back(id, std::move(callback));
  return id;
}

void TelemetrySystem::remove_callback(std::size_t id) {
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.callbacks_mutex_);
  for (auto it = d.callbacks_.begin(); it != d.callbacks_.end(); ++it) {
    if (it->first == id) {
      d.callbacks_.erase(it);
      return;
    }
  }
}

void TelemetrySystem::clear_callbacks() {
  std::vector<std::pair<std::size_t, std::function<void(const MetricsSnapshot&)>>> dropped;
  {
    std::lock_guard<std::mutex> lock(impl_->callbacks_mutex_);
    dropped.swap(impl_->callbacks_);
  }
  // Destroyed outside the lock: a callback's destructor may take other locks.
}

double TelemetrySystem::throughput() const { return impl_->throughput(); }

const Counter& TelemetrySystem::executed() const noexcept { return *impl_->executed_; }
const Counter& TelemetrySystem::failed() const noexcept { return *impl_->failed_; }
const Histogram& TelemetrySystem::latency_ms() const noexcept { return *impl_->latency_; }
const Histogram& TelemetrySystem::queue_wait_ms() const noexcept { return *impl_->queue_wait_; }
const Histogram& TelemetrySystem::run_time_ms() const noexcept { return *impl_->run_time_; }

std::string render_snapshot_prometheus(const MetricsSnapshot& s) {
  std::string out;
  render_prometheus(to_families(s), out);
  return out;
}

std::string render_snapshot_openmetrics(const MetricsSnapshot& s, bool created_series) {
  std::string out;
  render_openmetrics(to_families(s), out, created_series);
  return out;
}

}  // namespace veda
