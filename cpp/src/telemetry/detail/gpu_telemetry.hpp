// Private: how TelemetrySystem turns GPU samples into snapshot fields,
// registry gauges and snapshot exposition. Implemented in gpu_telemetry.cpp.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "veda/metrics/registry.hpp"
#include "veda/probes/gpu.hpp"
#include "veda/telemetry/telemetry.hpp"

namespace veda::detail {

// Per-device gauge families, labelled gpu (NVML index) and name:
// pyveda_gpu_utilization_percent, pyveda_gpu_memory_used_mb,
// pyveda_gpu_memory_total_mb, pyveda_gpu_temperature_celsius and
// pyveda_gpu_power_watts.
//
// Construction unregisters families of those names (left by an earlier
// TelemetrySystem, like the other pyveda_* families); the first update() with
// at least one device registers them afresh, so a runtime without GPU data
// exposes no GPU families at all. Each update() sets the series of every
// reading present and removes the series of readings that are absent (field
// not supported, device gone, probe shut down): no stale or made-up values.
//
// Thread-safety: update() may be called from any thread (one mutex).
class GpuGauges {
 public:
  explicit GpuGauges(Registry& registry);
  void update(const std::vector<GpuDeviceSample>& samples) noexcept;

 private:
  Registry& registry_;
  std::mutex mutex_;
  bool registered_ = false;
  std::vector<std::shared_ptr<GaugeFamily>> families_;  // one per kGpuGauges entry
  std::vector<std::vector<std::string>> last_labels_;   // series set by the last update
};

// Calls `sampler` (exceptions mean "no data") and fills s.gpus,
// s.gpu_utilization_percent (mean) and s.gpu_memory_used_mb (sum).
void fill_gpu_fields(MetricsSnapshot& s,
                     const std::function<std::vector<GpuDeviceSample>()>& sampler) noexcept;

// Appends the per-device families of s.gpus (same names, help and labels as
// GpuGauges); families without any reading are left out.
void append_gpu_families(const MetricsSnapshot& s, std::vector<FamilySnapshot>& families);

}  // namespace veda::detail
