// GPU probes: NVIDIA devices through NVML and the CUDA driver API.
//
// Neither library is linked. Each probe dlopens its library on first use,
// resolves a function table with dlsym, and reports "unavailable" (a state,
// not an error) when the library, a required entry point, the driver or a
// device is missing. Sampling never throws. Units: MB means MiB
// (1,048,576 bytes), power in watts, clocks in MHz, temperatures in degrees C.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace veda {

/// One NVIDIA device as NVML reports it at one instant.
///
/// Each std::optional field is empty when the driver does not report it
/// (NVML_ERROR_NOT_SUPPORTED on this board, no permission, GPU lost, ...) or
/// when the loaded NVML lacks the optional entry point behind it.
struct GpuDeviceSample {
  /// NVML device index (PCI bus order, as nvidia-smi; CUDA's default order
  /// may differ, and CUDA_VISIBLE_DEVICES does not apply to NVML).
  unsigned index = 0;
  std::string name;  ///< nvmlDeviceGetName; empty if unavailable.
  std::string uuid;  ///< nvmlDeviceGetUUID ("GPU-..."); empty if unavailable.
  /// Percent of the last sample period (1/6 s to 1 s, by board) during which
  /// at least one kernel was executing: nvmlUtilization_t.gpu.
  std::optional<double> utilization_percent;
  /// Percent of the same period during which device memory was being read or
  /// written (memory bandwidth busy, not capacity): nvmlUtilization_t.memory.
  std::optional<double> memory_utilization_percent;
  /// Allocated device memory, MiB. From nvmlDeviceGetMemoryInfo_v2 `used`,
  /// which excludes the memory the driver/firmware reserves and matches the
  /// "Used" column of nvidia-smi. When the v2 entry point is missing or
  /// fails, the v1 nvmlDeviceGetMemoryInfo `used` is reported instead; on
  /// drivers that split out reserved memory that value includes it, so it
  /// reads higher by memory_reserved_mb (which is then absent).
  std::optional<double> memory_used_mb;
  std::optional<double> memory_free_mb;      ///< Unallocated memory, MiB.
  std::optional<double> memory_total_mb;     ///< Physical memory, MiB.
  std::optional<double> memory_reserved_mb;  ///< Driver-reserved, MiB (v2 only).
  std::optional<double> temperature_c;       ///< GPU core temperature.
  std::optional<double> power_w;             ///< Board power draw, W.
  /// Enforced power limit, W (nvmlDeviceGetEnforcedPowerLimit, else
  /// nvmlDeviceGetPowerManagementLimit).
  std::optional<double> power_limit_w;
  std::optional<double> sm_clock_mhz;  ///< Current SM clock.
  /// Device memory used by this process (matched by getpid() in
  /// nvmlDeviceGetComputeRunningProcesses_v3, else _v2, else v1), MiB.
  /// 0 when this process has no compute context on the device. NVML lists
  /// host PIDs, so inside a PID namespace (most containers) this reads 0.
  /// Empty when the list is unavailable or NVML cannot attribute memory.
  std::optional<double> process_memory_mb;
};

/// Samples every NVIDIA device through NVML, loaded with dlopen.
///
/// Library: $PYVEDA_NVML_LIBRARY when set and non-empty, else
/// "libnvidia-ml.so.1" (or the path given to the constructor), read when the
/// probe initialises. Initialisation happens once, on the first call to any
/// method or on an explicit init(): dlopen, dlsym of the function table,
/// nvmlInit_v2, nvmlDeviceGetCount_v2, then one handle, name and UUID per
/// device. The outcome, available or not, is kept until shutdown().
///
/// Error policy: nothing here throws or crashes because of the driver. A
/// missing library (dlerror text), a missing required entry point (named),
/// an NVML error from init or device count ("GPU not available:
/// <nvmlErrorString(code)> (<code>)") or zero devices make the probe
/// unavailable, with the reason in unavailable_reason(). Per-field NVML errors
/// leave that field empty.
///
/// Thread-safety: every method may be called from any thread. One mutex per
/// probe serialises initialisation and all NVML calls; is_available() and
/// device_count() take it only until initialisation has finished.
///
/// Lifetime: the destructor makes no NVML call and does not unload the
/// library (a GpuProbe with static storage must not call into the driver
/// while the process exits). Call shutdown() to release NVML explicitly.
class GpuProbe {
 public:
  /// Library from $PYVEDA_NVML_LIBRARY, else "libnvidia-ml.so.1".
  GpuProbe();
  /// Library from `library_path` (a dlopen name or path); the environment
  /// variable is ignored.
  explicit GpuProbe(std::string library_path);
  ~GpuProbe();

  GpuProbe(const GpuProbe&) = delete;
  GpuProbe& operator=(const GpuProbe&) = delete;
  GpuProbe(GpuProbe&&) = delete;
  GpuProbe& operator=(GpuProbe&&) = delete;

  /// Initialises if that has not happened yet, also after shutdown(); returns
  /// is_available(). Cheap once initialised.
  bool init() noexcept;
  /// True when NVML initialised and reported at least one device.
  bool is_available() noexcept;
  /// Why the probe is unavailable; empty while it is available.
  std::string unavailable_reason();
  /// Number of devices sample() reports: those NVML counted and gave a handle
  /// for. 0 when unavailable.
  unsigned device_count() noexcept;
  /// One sample per device, in index order; empty when unavailable. Costs one
  /// set of NVML calls per device (roughly ten), under the probe's mutex.
  std::vector<GpuDeviceSample> sample() noexcept;
  /// nvmlShutdown (when init succeeded) and dlclose. Afterwards the probe is
  /// unavailable ("GPU probe shut down") and does not initialise again on its
  /// own; init() starts over. Idempotent; safe when never initialised.
  void shutdown() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// CUDA compute capability, e.g. {9, 0} for an H100.
struct CudaComputeCapability {
  int major = 0;
  int minor = 0;
};

/// Memory of the device behind the calling thread's current CUDA context.
struct CudaMemoryInfo {
  std::uint64_t free_bytes = 0;
  std::uint64_t total_bytes = 0;
};

/// Queries the CUDA driver API (libcuda), loaded with dlopen.
///
/// Library: $PYVEDA_CUDA_LIBRARY when set and non-empty, else "libcuda.so.1"
/// (or the constructor's path). Initialisation, once, on first use or init():
/// dlopen, dlsym, cuInit(0), cuDeviceGetCount. Same error policy as GpuProbe:
/// a missing library, a missing required entry point or a CUDA error from
/// cuInit/cuDeviceGetCount ("CUDA not available: <cuGetErrorString> (<code>)")
/// or zero devices make it unavailable; later per-call errors yield an empty
/// optional. The probe never creates a CUDA context (that would pin hundreds
/// of MiB of device memory): context_memory() reports only a context the
/// calling thread already has current.
///
/// Thread-safety: every method may be called from any thread.
///
/// Lifetime: neither the destructor nor shutdown() unloads libcuda (the
/// driver cannot be unloaded safely once cuInit has run); shutdown() only
/// makes the probe unavailable until init() is called again.
class CudaProbe {
 public:
  /// Library from $PYVEDA_CUDA_LIBRARY, else "libcuda.so.1".
  CudaProbe();
  /// Library from `library_path`; the environment variable is ignored.
  explicit CudaProbe(std::string library_path);
  ~CudaProbe();

  CudaProbe(const CudaProbe&) = delete;
  CudaProbe& operator=(const CudaProbe&) = delete;
  CudaProbe(CudaProbe&&) = delete;
  CudaProbe& operator=(CudaProbe&&) = delete;

  /// Initialises if needed (also after shutdown()); returns is_available().
  bool init() noexcept;
  bool is_available() noexcept;
  /// Why the probe is unavailable; empty while it is available.
  std::string unavailable_reason();
  /// cuDeviceGetCount at initialisation (honours CUDA_VISIBLE_DEVICES);
  /// 0 when unavailable.
  unsigned device_count() noexcept;
  /// Compute capability of CUDA device `index` (attributes 75/76); empty when
  /// unavailable, out of range, or on a driver error.
  std::optional<CudaComputeCapability> compute_capability(unsigned index) noexcept;
  /// UUID of CUDA device `index` in NVML's spelling ("GPU-xxxxxxxx-xxxx-
  /// xxxx-xxxx-xxxxxxxxxxxx", as GpuDeviceSample::uuid), to match CUDA
  /// ordinals to NVML indexes (the two orders may differ). From the optional
  /// cuDeviceGetUuid (the physical GPU even under MIG), else
  /// cuDeviceGetUuid_v2; empty when neither exists, out of range, or on a
  /// driver error.
  std::optional<std::string> uuid(unsigned index) noexcept;
  /// cuMemGetInfo_v2 for the calling thread's current context; empty when the
  /// thread has none, the probe is unavailable, or the call fails.
  std::optional<CudaMemoryInfo> context_memory() noexcept;
  /// Makes the probe unavailable ("CUDA probe shut down"). Idempotent.
  void shutdown() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace veda
