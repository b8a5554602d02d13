// veda::GpuMonitor, the GPU aggregates, and the GPU parts of TelemetrySystem
// (per-device gauges and snapshot exposition).
#include "veda/telemetry/gpu_telemetry.hpp"

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "telemetry/detail/gpu_telemetry.hpp"
#include "veda/telemetry/catalogue.hpp"

namespace veda {
namespace {

// The per-device gauges: registry families and snapshot exposition share them.
struct GpuGaugeSpec {
  const RuntimeMetric& metric;
  std::optional<double> GpuDeviceSample::*field;
};

const GpuGaugeSpec kGpuGauges[] = {
    {runtime_metrics::gpu_utilization, &GpuDeviceSample::utilization_percent},
    {runtime_metrics::gpu_memory_used, &GpuDeviceSample::memory_used_mb},
    {runtime_metrics::gpu_memory_total, &GpuDeviceSample::memory_total_mb},
    {runtime_metrics::gpu_temperature, &GpuDeviceSample::temperature_c},
    {runtime_metrics::gpu_power, &GpuDeviceSample::power_w},
};

// Label values for one device: gpu (NVML index) and name.
std::vector<std::string> device_labels(const GpuDeviceSample& d) { return {std::to_string(d.index), d.name}; }

const std::vector<std::string> kGpuLabelNames = {"gpu", "name"};

// The sample of NVML device `index`; throws std::out_of_range naming the
// indexes that exist (or why there are none).
const GpuDeviceSample& find_device(const std::vector<GpuDeviceSample>& samples, long long index,
                                   GpuProbe& probe) {
  for (const GpuDeviceSample& d : samples) {
    if (static_cast<long long>(d.index) == index) return d;
  }
  std::string message = "GPU device " + std::to_string(index) + " does not exist: ";
  if (samples.empty()) {
    std::string reason = probe.unavailable_reason();
    message += "no GPU is available";
    if (!reason.empty()) message += " (" + reason + ")";
  } else {
    message += samples.size() == 1 ? "the device index is " : "device indexes are ";
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (i > 0) message += ", ";
      message += std::to_string(samples[i].index);
    }
  }
  throw std::out_of_range(message);
}

GpuMemoryStats memory_of(const GpuDeviceSample& d) { return {d.memory_used_mb, d.memory_free_mb, d.memory_total_mb}; }

}  // namespace

std::optional<double> mean_gpu_utilization(const std::vector<GpuDeviceSample>& samples) noexcept {
  double sum = 0.0;
  std::size_t n = 0;
  for (const GpuDeviceSample& d : samples) {
    if (!d.utilization_percent) continue;
    sum += *d.utilization_percent;
    ++n;
  }
  if (n == 0) return std::nullopt;
  return sum / static_cast<double>(n);
}

GpuMemoryStats sum_gpu_memory(const std::vector<GpuDeviceSample>& samples) noexcept {
  GpuMemoryStats stats;
  auto add = [](std::optional<double>& total, const std::optional<double>& value) {
    if (value) total = total.value_or(0.0) + *value;
  };
  for (const GpuDeviceSample& d : samples) {
    add(stats.used_mb, d.memory_used_mb);
    add(stats.free_mb, d.memory_free_mb);
    add(stats.total_mb, d.memory_total_mb);
  }
  return stats;
}

// --- GpuMonitor --------------------------------------------------------------

GpuMonitor::GpuMonitor() = default;

GpuMonitor::GpuMonitor(std::string nvml_library, std::string cuda_library)
    : nvml_(std::move(nvml_library)), cuda_(std::move(cuda_library)) {}

GpuMonitor::~GpuMonitor() = default;

bool GpuMonitor::init() noexcept { return nvml_.init(); }

bool GpuMonitor::is_available() noexcept { return nvml_.is_available(); }

std::string GpuMonitor::unavailable_reason() { return nvml_.unavailable_reason(); }

unsigned GpuMonitor::device_count() noexcept { return nvml_.device_count(); }

std::vector<GpuDeviceSample> GpuMonitor::sample() noexcept { return nvml_.sample(); }

std::vector<GpuDevice> GpuMonitor::devices() {
  std::vector<GpuDeviceSample> samples = nvml_.sample();
  std::vector<GpuDevice> out;
  out.reserve(samples.size());
  for (GpuDeviceSample& s : samples) {
    GpuDevice d;
    static_cast<GpuDeviceSample&>(d) = std::move(s);
    out.push_back(std::move(d));
  }
  if (out.empty()) return out;  // no NVML device: leave libcuda alone

  // CUDA ordinal -> NVML device, by UUID.
  const unsigned cuda_count = cuda_.device_count();  // loads libcuda on first use
  for (unsigned ordinal = 0; ordinal < cuda_count; ++ordinal) {
    const std::optional<std::string> uuid = cuda_.uuid(ordinal);
    if (!uuid) continue;
    auto it = std::find_if(out.begin(), out.end(), [&](const GpuDevice& d) { return !d.uuid.empty() && d.uuid == *uuid; });
    if (it != out.end() && !it->compute_capability) it->compute_capability = cuda_.compute_capability(ordinal);
  }
  return out;
}

std::optional<double> GpuMonitor::utilization(std::optional<long long> device) {
  const std::vector<GpuDeviceSample> samples = nvml_.sample();
  if (!device) return mean_gpu_utilization(samples);
  return find_device(samples, *device, nvml_).utilization_percent;
}

GpuMemoryStats GpuMonitor::memory_stats(std::optional<long long> device) {
  const std::vector<GpuDeviceSample> samples = nvml_.sample();
  if (!device) return sum_gpu_memory(samples);
  return memory_of(find_device(samples, *device, nvml_));
}

void GpuMonitor::shutdown() noexcept {
  nvml_.shutdown();
  cuda_.shutdown();
}

// --- TelemetrySystem's GPU parts -------------------------------------------------

namespace detail {

GpuGauges::GpuGauges(Registry& registry) : registry_(registry) {
  for (const GpuGaugeSpec& spec : kGpuGauges) registry_.unregister(spec.metric.name);
}

void GpuGauges::update(const std::vector<GpuDeviceSample>& samples) noexcept {
  try {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!registered_) {
      if (samples.empty()) return;
      std::vector<std::shared_ptr<GaugeFamily>> families;
      for (const GpuGaugeSpec& spec : kGpuGauges) {
        registry_.unregister(spec.metric.name);
        families.push_back(registry_.gauge(std::string(spec.metric.name), std::string(spec.metric.help), kGpuLabelNames,
                                           {}, GaugeMode::livemostrecent));  // a device's reading, whoever took it
      }
      families_ = std::move(families);
      registered_ = true;
    }
    std::vector<std::vector<std::string>> labels;
    labels.reserve(samples.size());
    for (const GpuDeviceSample& d : samples) labels.push_back(device_labels(d));
    for (std::size_t m = 0; m < families_.size(); ++m) {
      GaugeFamily& family = *families_[m];
      const auto field = kGpuGauges[m].field;
      for (std::size_t i = 0; i < samples.size(); ++i) {
        const std::optional<double>& value = samples[i].*field;
        if (value) {
          family.labels(labels[i])->set(*value);
        } else {
          family.remove(labels[i]);
        }
      }
      for (const auto& old : last_labels_) {
        if (std::find(labels.begin(), labels.end(), old) == labels.end()) family.remove(old);
      }
    }
    last_labels_ = std::move(labels);
  } catch (const std::exception&) {
    // std::bad_alloc: the gauges keep their previous values; the snapshot is unaffected.
  }
}

void fill_gpu_fields(MetricsSnapshot& s,
                     const std::function<std::vector<GpuDeviceSample>()>& sampler) noexcept {
  try {
    s.gpus = sampler();
  } catch (...) {
    s.gpus.clear();
  }
  s.gpu_utilization_percent = mean_gpu_utilization(s.gpus);
  s.gpu_memory_used_mb = sum_gpu_memory(s.gpus).used_mb;
}

void append_gpu_families(const MetricsSnapshot& s, std::vector<FamilySnapshot>& families) {
  for (const GpuGaugeSpec& spec : kGpuGauges) {
    FamilySnapshot f;
    f.info.name = std::string(spec.metric.name);
    f.info.help = std::string(spec.metric.help);
    f.info.type = MetricType::gauge;
    f.info.label_names = kGpuLabelNames;
    for (const GpuDeviceSample& d : s.gpus) {
      const std::optional<double>& value = d.*spec.field;
      if (!value) continue;
      SeriesSnapshot series;
      series.label_values = device_labels(d);
      series.value = *value;
      f.series.push_back(std::move(series));
    }
    if (!f.series.empty()) families.push_back(std::move(f));
  }
}

}  // namespace detail
}  // namespace veda
