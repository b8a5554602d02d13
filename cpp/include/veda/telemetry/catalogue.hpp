// veda::runtime_metrics: the one table of the metrics a runtime exports.
//
// Every place that names a runtime metric reads it from here: the registry
// families a TelemetrySystem and the span store register (served on
// /metrics), the families a MetricsSnapshot converts to (to_families() in
// telemetry.hpp, which every snapshot format renders), and the OTLP metric
// names, descriptions and units. A
// name therefore has one help text, one type, one unit and, for the latency
// histogram, one quantile set (kSummaryQuantiles) in every format.
#pragma once

#include <string_view>

#include "veda/metrics/family.hpp"

namespace veda {

// One runtime metric family.
struct RuntimeMetric {
  std::string_view name;  // the family name; a counter's without "_total"
  std::string_view help;
  std::string_view unit;  // UCUM, as OTLP wants it ("ms", "MiBy", "%", "{task}")
  MetricType type;
  std::string_view otlp_name;  // the OpenTelemetry-style name OTLP exports use
  // Whole numbers (counts of tasks or spans): OTLP points carry them as_int.
  bool whole = false;
  // A label whose values are integers (a device index): an int attribute in OTLP.
  std::string_view int_label = {};
};

namespace runtime_metrics {

inline constexpr RuntimeMetric tasks_executed{"pyveda_tasks_executed", "Tasks finished, failed ones included",
                                              "{task}", MetricType::counter, "pyveda.tasks.executed", true};
inline constexpr RuntimeMetric tasks_failed{"pyveda_tasks_failed", "Tasks that raised or returned failure", "{task}",
                                            MetricType::counter, "pyveda.tasks.failed", true};
inline constexpr RuntimeMetric tasks_pending{"pyveda_tasks_pending", "Tasks queued and not yet started", "{task}",
                                             MetricType::gauge, "pyveda.tasks.pending", true};
inline constexpr RuntimeMetric tasks_running{"pyveda_tasks_running", "Tasks running now", "{task}",
                                             MetricType::gauge, "pyveda.tasks.running", true};
inline constexpr RuntimeMetric latency_ms{"pyveda_latency_ms", "Task latency from spawn to completion, in milliseconds",
                                          "ms", MetricType::histogram, "pyveda.task.latency"};
inline constexpr RuntimeMetric queue_wait_ms{"pyveda_queue_wait_ms", "Time tasks waited in the queue, in milliseconds",
                                             "ms", MetricType::histogram, "pyveda.task.queue_wait"};
inline constexpr RuntimeMetric run_time_ms{"pyveda_run_time_ms", "Time tasks ran, in milliseconds", "ms",
                                           MetricType::histogram, "pyveda.task.run_time"};
inline constexpr RuntimeMetric throughput{"pyveda_throughput_tasks_per_sec",
                                          "Tasks finished per second over the latest collection window", "{task}/s",
                                          MetricType::gauge, "pyveda.throughput"};
inline constexpr RuntimeMetric cpu_utilization{"pyveda_cpu_utilization_percent",
                                               "Host CPU utilization (0-100), latest snapshot", "%", MetricType::gauge, "pyveda.cpu.utilization"};
inline constexpr RuntimeMetric memory_used{"pyveda_memory_used_mb",
                                           "Host memory used (total - available), MiB, latest snapshot", "MiBy",
                                           MetricType::gauge, "pyveda.memory.used"};
inline constexpr RuntimeMetric process_rss{"pyveda_process_rss_mb", "Resident memory of this process, MiB, latest snapshot",
                                           "MiBy", MetricType::gauge, "pyveda.process.rss"};

// Registered by the first SpanStore (tracing), in the default registry.
inline constexpr RuntimeMetric spans_dropped{"pyveda_spans_dropped",
                                             "Finished spans dropped because the span buffer was full", "{span}",
                                             MetricType::counter, "pyveda.spans.dropped", true};

// Per GPU device, labelled gpu (NVML index) and name. A snapshot without
// per-device samples (one built by hand) exports the aggregate utilization
// (mean) and memory (sum) under the same names, unlabelled.
inline constexpr RuntimeMetric gpu_utilization{
    "pyveda_gpu_utilization_percent",
    "Percent of the last NVML sample period (1/6 s to 1 s) in which a kernel ran on the GPU (0-100)", "%",
    MetricType::gauge, "pyveda.gpu.utilization", false, "gpu"};
inline constexpr RuntimeMetric gpu_memory_used{
    "pyveda_gpu_memory_used_mb",
    "GPU memory used, MiB (NVML v2 used: excludes driver-reserved memory, as nvidia-smi's Used)", "MiBy",
    MetricType::gauge, "pyveda.gpu.memory.used", false, "gpu"};
inline constexpr RuntimeMetric gpu_memory_total{"pyveda_gpu_memory_total_mb", "GPU memory, MiB", "MiBy",
                                                MetricType::gauge, "pyveda.gpu.memory.total", false, "gpu"};
inline constexpr RuntimeMetric gpu_temperature{"pyveda_gpu_temperature_celsius",
                                               "GPU core temperature, degrees Celsius", "Cel", MetricType::gauge, "pyveda.gpu.temperature", false, "gpu"};
inline constexpr RuntimeMetric gpu_power{"pyveda_gpu_power_watts", "GPU board power draw, watts", "W",
                                         MetricType::gauge, "pyveda.gpu.power", false, "gpu"};

// Every entry above, in exposition order.
inline constexpr const RuntimeMetric* kAll[] = {
    &tasks_executed,  &tasks_failed,    &tasks_pending,    &tasks_running,   &latency_ms,   &queue_wait_ms,
    &run_time_ms,     &throughput,      &cpu_utilization,  &memory_used,     &process_rss,  &spans_dropped,
    &gpu_utilization, &gpu_memory_used, &gpu_memory_total, &gpu_temperature, &gpu_power,
};

}  // namespace runtime_metrics

// The catalogue entry named `name` (a family name, a counter's without
// "_total"), or nullptr for a metric that is not the runtime's.
inline const RuntimeMetric* find_runtime_metric(std::string_view name) noexcept {
  for (const RuntimeMetric* m : runtime_metrics::kAll) {
    if (m->name == name) return m;
  }
  return nullptr;
}

// The FamilyInfo of a catalogue entry (no label names).
FamilyInfo family_info(const RuntimeMetric& metric);

}  // namespace veda
