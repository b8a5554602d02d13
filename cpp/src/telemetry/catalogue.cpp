// to_families(): a MetricsSnapshot as the catalogue's families; from_families(): back.
#include "veda/telemetry/catalogue.hpp"

#include <iterator>
#include <limits>
#include <string>
#include <utility>

#include "telemetry/detail/gpu_telemetry.hpp"
#include "veda/metrics/text_format.hpp"
#include "veda/telemetry/telemetry.hpp"

namespace veda {
namespace {

FamilySnapshot scalar(const RuntimeMetric& metric, double value, std::int64_t start_unix_nano = 0) {
  FamilySnapshot f;
  f.info = family_info(metric);
  SeriesSnapshot s;
  s.value = value;
  s.start_unix_nano = start_unix_nano;
  f.series.push_back(std::move(s));
  return f;
}

FamilySnapshot latency_family(const MetricsSnapshot& s) {
  FamilySnapshot f;
  f.info = family_info(runtime_metrics::latency_ms);
  SeriesSnapshot series;
  series.start_unix_nano = s.start_unix_nano;
  // The quantiles are the snapshot's own figures (a recent window, as on
  // /metrics), NaN where there is no data; the buckets, count and sum are
  // cumulative. A history or hand-built snapshot has no buckets.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const bool any = s.latency_count > 0;
  const double values[] = {s.p50_latency_ms, s.p90_latency_ms, s.p95_latency_ms, s.p99_latency_ms};
  static_assert(std::size(kSummaryQuantiles) == std::size(values), "one value per exposed quantile");
  for (std::size_t i = 0; i < std::size(values); ++i) {
    series.quantiles.emplace_back(kSummaryQuantiles[i], any ? values[i] : nan);
  }
  if (s.latency_histogram) {
    series.histogram = *s.latency_histogram;
  } else {
    series.histogram.sum = s.latency_sum_ms;
    series.histogram.count = s.latency_count;
    series.no_buckets = true;
  }
  f.series.push_back(std::move(series));
  return f;
}

}  // namespace

FamilyInfo family_info(const RuntimeMetric& metric) {
  FamilyInfo info;
  info.name = std::string(metric.name);
  info.help = std::string(metric.help);
  info.type = metric.type;
  return info;
}

std::vector<FamilySnapshot> to_families(const MetricsSnapshot& s) {
  namespace m = runtime_metrics;
  std::vector<FamilySnapshot> families;
  families.push_back(scalar(m::tasks_executed, static_cast<double>(s.tasks_executed), s.start_unix_nano));
  families.push_back(scalar(m::tasks_failed, static_cast<double>(s.tasks_failed), s.start_unix_nano));
  families.push_back(scalar(m::tasks_pending, static_cast<double>(s.tasks_pending)));
  families.push_back(scalar(m::tasks_running, static_cast<double>(s.tasks_running)));
  families.push_back(latency_family(s));
  families.push_back(scalar(m::throughput, s.throughput_tasks_per_sec));
  families.push_back(scalar(m::cpu_utilization, s.cpu_utilization_percent));
  families.push_back(scalar(m::memory_used, s.memory_used_mb));
  families.push_back(scalar(m::process_rss, s.process_rss_mb));
  detail::append_gpu_families(s, families);  // per device, when s.gpus has any
  if (s.gpus.empty()) {
    if (s.gpu_utilization_percent) families.push_back(scalar(m::gpu_utilization, *s.gpu_utilization_percent));
    if (s.gpu_memory_used_mb) families.push_back(scalar(m::gpu_memory_used, *s.gpu_memory_used_mb));
  }
  return families;
}

namespace {

const SeriesSnapshot* only_series(const std::vector<FamilySnapshot>& families, const RuntimeMetric& metric) {
  for (const FamilySnapshot& f : families) {
    if (f.info.name == metric.name && f.info.type == metric.type && !f.series.empty()) return &f.series.front();
  }
  return nullptr;
}

double value_of(const std::vector<FamilySnapshot>& families, const RuntimeMetric& metric) {
  const SeriesSnapshot* s = only_series(families, metric);
  return s != nullptr ? s->value : 0.0;
}

std::uint64_t count_of(const std::vector<FamilySnapshot>& families, const RuntimeMetric& metric) {
  const double v = value_of(families, metric);
  return v > 0 ? static_cast<std::uint64_t>(v + 0.5) : 0;
}

double or_zero(double v) noexcept { return v != v ? 0.0 : v; }

}  // namespace

void detail::set_latency_figures(MetricsSnapshot& s, const HistogramSnapshot& latency) {
  if (latency.count == 0) return;
  s.avg_latency_ms = or_zero(latency.mean());
  s.p50_latency_ms = or_zero(latency.percentile(50));
  s.p90_latency_ms = or_zero(latency.percentile(90));
  s.p95_latency_ms = or_zero(latency.percentile(95));
  s.p99_latency_ms = or_zero(latency.percentile(99));
}

MetricsSnapshot from_families(const std::vector<FamilySnapshot>& families, double timestamp) {
  namespace m = runtime_metrics;
  MetricsSnapshot s;
  s.timestamp = timestamp;
  s.tasks_executed = count_of(families, m::tasks_executed);
  s.tasks_failed = count_of(families, m::tasks_failed);
  s.tasks_pending = count_of(families, m::tasks_pending);
  s.tasks_running = count_of(families, m::tasks_running);
  s.throughput_tasks_per_sec = value_of(families, m::throughput);
  s.cpu_utilization_percent = value_of(families, m::cpu_utilization);
  s.memory_used_mb = value_of(families, m::memory_used);
  s.process_rss_mb = value_of(families, m::process_rss);
  if (const SeriesSnapshot* executed = only_series(families, m::tasks_executed)) {
    s.start_unix_nano = executed->start_unix_nano;
  }
  if (const SeriesSnapshot* latency = only_series(families, m::latency_ms)) {
    const HistogramSnapshot& h = latency->histogram;
    s.latency_count = h.count;
    s.latency_sum_ms = h.sum;
    detail::set_latency_figures(s, h);
    if (!latency->no_buckets) s.latency_histogram = std::make_shared<const HistogramSnapshot>(h);
  }
  s.system_ok = only_series(families, m::cpu_utilization) != nullptr;
  return s;
}

}  // namespace veda
