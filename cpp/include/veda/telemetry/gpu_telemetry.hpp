// GPU telemetry: veda::GpuMonitor (what Runtime::gpu() returns) and the
// aggregates snapshots use.
//
// The monitor pairs the NVML probe (every reading) with the CUDA driver probe
// (compute capability only) behind one API that never fails because of the
// driver: no library, no device or an NVML error is the "unavailable" state,
// with the reason kept. Only a caller's mistake throws: a device index that
// does not exist (std::out_of_range, naming the indexes that do).
//
// Units as in veda/probes/gpu.hpp: MB means MiB, power in W, clocks in MHz.
// "Memory used" is NVML's v2 `used` (nvmlDeviceGetMemoryInfo_v2): allocated
// memory without the part the driver reserves, so it matches the "Used"
// column of nvidia-smi; it reads higher by memory_reserved_mb only on drivers
// without the v2 call (see GpuDeviceSample::memory_used_mb).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "veda/probes/gpu.hpp"

namespace veda {

/// One device as GpuMonitor::devices() reports it: the NVML sample plus its
/// CUDA compute capability.
struct GpuDevice : GpuDeviceSample {
  /// From the CUDA driver, matched to the NVML device by UUID (CUDA's device
  /// order may differ from NVML's, and CUDA_VISIBLE_DEVICES hides devices).
  /// Empty when libcuda is unavailable, lacks cuDeviceGetUuid, or does not
  /// see this device.
  std::optional<CudaComputeCapability> compute_capability;
};

/// Memory totals, MiB; each field empty when no device reported it.
struct GpuMemoryStats {
  std::optional<double> used_mb;   ///< NVML v2 `used` (excludes reserved).
  std::optional<double> free_mb;
  std::optional<double> total_mb;
};

/// Mean of utilization_percent over the devices that report it; empty when
/// none does (or `samples` is empty).
std::optional<double> mean_gpu_utilization(const std::vector<GpuDeviceSample>& samples) noexcept;

/// Sums of used/free/total memory, each over the devices that report it.
GpuMemoryStats sum_gpu_memory(const std::vector<GpuDeviceSample>& samples) noexcept;

/// The GPUs of this machine: availability, per-device readings, aggregates.
///
/// Libraries as for GpuProbe and CudaProbe ($PYVEDA_NVML_LIBRARY, else
/// libnvidia-ml.so.1; $PYVEDA_CUDA_LIBRARY, else libcuda.so.1). NVML
/// initialises on init() or on first use. libcuda is loaded, and cuInit(0)
/// runs, only when devices() is first called: it creates no CUDA context, but
/// CUDA cannot be used in a child fork()ed after cuInit, so a program that
/// forks CUDA workers should call devices() only in them (or after forking).
///
/// Device indexes are NVML's (PCI bus order, as nvidia-smi), the `index` of
/// each sample. Each query takes one fresh NVML sample of every device.
///
/// Thread-safety: every method may be called from any thread (the probes
/// serialise their driver calls).
///
/// Lifetime: the destructor makes no driver call (see GpuProbe); shutdown()
/// releases NVML, after which the monitor reads as unavailable.
class GpuMonitor {
 public:
  /// Probes with their default libraries (environment variables honoured).
  GpuMonitor();
  /// Probes with these libraries (dlopen names or paths); the environment
  /// variables are ignored.
  GpuMonitor(std::string nvml_library, std::string cuda_library);
  ~GpuMonitor();

  GpuMonitor(const GpuMonitor&) = delete;
  GpuMonitor& operator=(const GpuMonitor&) = delete;

  /// Initialises NVML if that has not happened yet; returns is_available().
  bool init() noexcept;
  /// True when NVML initialised and reported at least one device.
  bool is_available() noexcept;
  /// Why NVML is unavailable ("GPU not available: ..."); empty while available.
  std::string unavailable_reason();
  /// Number of devices; 0 when unavailable.
  unsigned device_count() noexcept;

  /// One NVML sample per device, in index order; empty when unavailable.
  std::vector<GpuDeviceSample> sample() noexcept;
  /// sample() plus each device's compute capability (see GpuDevice).
  std::vector<GpuDevice> devices();

  /// Utilization (0-100) of NVML device `device`, or with no device the mean
  /// over all devices (mean_gpu_utilization). Empty when the reading is not
  /// available (also when the GPU is unavailable and no device was named).
  /// Throws std::out_of_range when `device` is not a device index.
  std::optional<double> utilization(std::optional<long long> device = std::nullopt);
  /// Memory of `device`, or with no device the sums over all devices
  /// (sum_gpu_memory). Throws std::out_of_range like utilization().
  GpuMemoryStats memory_stats(std::optional<long long> device = std::nullopt);

  /// Releases NVML (nvmlShutdown, dlclose) and makes the CUDA probe
  /// unavailable; afterwards the monitor reads as unavailable ("GPU probe shut
  /// down"). Idempotent. Runtime::shutdown() calls it.
  void shutdown() noexcept;

  GpuProbe& nvml() noexcept { return nvml_; }
  CudaProbe& cuda() noexcept { return cuda_; }

 private:
  GpuProbe nvml_;
  CudaProbe cuda_;
};

}  // namespace veda
