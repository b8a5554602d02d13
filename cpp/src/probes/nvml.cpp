// veda::GpuProbe: NVML reached through dlopen/dlsym only (see
// detail/nvml_api.hpp), so CPU-only hosts build, link and run unchanged.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "probes/detail/dynamic_library.hpp"
#include "probes/detail/nvml_api.hpp"
#include "veda/probes/gpu.hpp"

namespace veda {
namespace {

namespace nvml = detail::nvml;

constexpr const char* kDefaultLibrary = "libnvidia-ml.so.1";
constexpr const char* kLibraryEnv = "PYVEDA_NVML_LIBRARY";
constexpr double kBytesPerMiB = 1048576.0;
constexpr double kMilli = 1e-3;
// Upper bound for the per-device process list, against a corrupt count.
constexpr std::size_t kMaxProcesses = 1U << 16U;

enum class State { kUninitialised, kAvailable, kUnavailable, kShutDown };

// Copies a NUL-terminated string out of a fixed NVML buffer.
std::string from_buffer(const char* buffer, std::size_t capacity) {
  const void* nul = std::memchr(buffer, '\0', capacity);
  const std::size_t length =
      nul != nullptr ? static_cast<std::size_t>(static_cast<const char*>(nul) - buffer) : capacity;
  return std::string(buffer, length);
}

}  // namespace

struct GpuProbe::Impl {
  struct Device {
    unsigned index = 0;
    nvml::Device handle = nullptr;
    std::string name;
    std::string uuid;
  };

  explicit Impl(std::optional<std::string> path) : explicit_path(std::move(path)) {}
  // No NVML call and no dlclose at destruction (see GpuProbe): the library
  // stays mapped and initialised until the process exits.
  ~Impl() { library.keep_loaded(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  const std::optional<std::string> explicit_path;

  // Published with release after initialisation; lets is_available() and
  // device_count() skip the mutex once the outcome is known.
  std::atomic<State> state{State::kUninitialised};
  std::atomic<unsigned> device_count{0};

  std::mutex mutex;  // guards everything below and every NVML call
  std::string reason;
  detail::DynamicLibrary library;
  bool nvml_initialised = false;
  nvml::Api api;
  std::vector<Device> devices;
  std::vector<nvml::ProcessInfoV2> processes_v2;  // scratch, reused
  std::vector<nvml::ProcessInfoV1> processes_v1;  // scratch, reused

  // Runs initialisation unless its outcome is known (or, for lazy callers,
  // the probe was shut down). Returns the resulting state.
  State ensure(bool explicit_init) noexcept {
    State current = state.load(std::memory_order_acquire);
    if (current == State::kAvailable || current == State::kUnavailable) return current;
    if (current == State::kShutDown && !explicit_init) return current;
    std::lock_guard<std::mutex> lock(mutex);
    current = state.load(std::memory_order_relaxed);
    if (current == State::kUninitialised || (current == State::kShutDown && explicit_init)) {
      initialise_locked();
      current = state.load(std::memory_order_relaxed);
    }
    return current;
  }

  void initialise_locked() noexcept {
    try {
      try_initialise_locked();
    } catch (const std::exception& e) {  // std::bad_alloc while building strings
      release_locked();
      try {
        fail_locked(e.what());
      } catch (const std::exception&) {
        fail_locked(std::string());
      }
    }
  }

  void try_initialise_locked() {
    release_locked();
    const std::string path =
        explicit_path ? *explicit_path : detail::DynamicLibrary::path_from_env(kLibraryEnv, kDefaultLibrary);

    library = detail::DynamicLibrary(path);
    if (!library.loaded()) {
      fail_locked("GPU not available: cannot load NVML: " + library.error());
      return;
    }

    const char* missing = nullptr;
    library.require("nvmlInit_v2", api.init_v2, missing);
    library.require("nvmlShutdown", api.shutdown, missing);
    library.require("nvmlErrorString", api.error_string, missing);
    library.require("nvmlDeviceGetCount_v2", api.device_get_count_v2, missing);
    library.require("nvmlDeviceGetHandleByIndex_v2", api.device_get_handle_by_index_v2, missing);
    library.require("nvmlDeviceGetUtilizationRates", api.device_get_utilization_rates, missing);
    library.require("nvmlDeviceGetMemoryInfo", api.device_get_memory_info, missing);
    if (missing != nullptr) {
      const std::string reason_text =
          "GPU not available: " + path + " lacks required NVML symbol " + missing;
      release_locked();
      fail_locked(reason_text);
      return;
    }
    library.resolve("nvmlDeviceGetName", api.device_get_name);
    library.resolve("nvmlDeviceGetUUID", api.device_get_uuid);
    library.resolve("nvmlDeviceGetMemoryInfo_v2", api.device_get_memory_info_v2);
    library.resolve("nvmlDeviceGetTemperature", api.device_get_temperature);
    library.resolve("nvmlDeviceGetPowerUsage", api.device_get_power_usage);
    if (!library.resolve("nvmlDeviceGetEnforcedPowerLimit", api.device_get_power_limit)) {
      library.resolve("nvmlDeviceGetPowerManagementLimit", api.device_get_power_limit);
    }
    library.resolve("nvmlDeviceGetClockInfo", api.device_get_clock_info);
    if (!library.resolve("nvmlDeviceGetComputeRunningProcesses_v3", api.device_get_processes_v2) &&
        !library.resolve("nvmlDeviceGetComputeRunningProcesses_v2", api.device_get_processes_v2)) {
      library.resolve("nvmlDeviceGetComputeRunningProcesses", api.device_get_processes_v1);
    }

    nvml::Return code = api.init_v2();
    if (code != nvml::kSuccess) {
      const std::string reason_text = error_text(code);
      release_locked();
      fail_locked(reason_text);
      return;
    }
    nvml_initialised = true;

    unsigned count = 0;
    code = api.device_get_count_v2(&count);
    if (code != nvml::kSuccess) {
      const std::string reason_text = error_text(code);
      release_locked();
      fail_locked(reason_text);
      return;
    }

    nvml::Return handle_error = nvml::kSuccess;
    for (unsigned i = 0; i < count; ++i) {
      Device device;
      device.index = i;
      code = api.device_get_handle_by_index_v2(i, &device.handle);
      if (code != nvml::kSuccess || device.handle == nullptr) {
        // e.g. NVML_ERROR_NO_PERMISSION for a device outside this cgroup.
        handle_error = code != nvml::kSuccess ? code : nvml::kErrorUnknown;
        continue;
      }
      char buffer[nvml::kNameBufferSize > nvml::kUuidBufferSize ? nvml::kNameBufferSize
                                                                : nvml::kUuidBufferSize] = {};
      if (api.device_get_name != nullptr &&
          api.device_get_name(device.handle, buffer, nvml::kNameBufferSize) == nvml::kSuccess) {
        device.name = from_buffer(buffer, nvml::kNameBufferSize);
      }
      std::memset(buffer, 0, sizeof buffer);
      if (api.device_get_uuid != nullptr &&
          api.device_get_uuid(device.handle, buffer, nvml::kUuidBufferSize) == nvml::kSuccess) {
        device.uuid = from_buffer(buffer, nvml::kUuidBufferSize);
      }
      devices.push_back(std::move(device));
    }
    if (devices.empty()) {
      const std::string reason_text =
          count == 0 ? std::string("GPU not available: NVML reports no devices")
                     : error_text(handle_error);
      release_locked();
      fail_locked(reason_text);
      return;
    }

    reason.clear();
    device_count.store(static_cast<unsigned>(devices.size()), std::memory_order_relaxed);
    state.store(State::kAvailable, std::memory_order_release);
  }

  std::string error_text(nvml::Return code) const {
    const char* text = api.error_string != nullptr ? api.error_string(code) : nullptr;
    return "GPU not available: " + std::string(text != nullptr ? text : "unknown NVML error") +
           " (" + std::to_string(code) + ")";
  }

  void fail_locked(std::string why) noexcept {
    reason = std::move(why);
    device_count.store(0, std::memory_order_relaxed);
    state.store(State::kUnavailable, std::memory_order_release);
  }

  // Undoes initialisation: nvmlShutdown if nvmlInit succeeded, then dlclose.
  void release_locked() noexcept {
    if (nvml_initialised && api.shutdown != nullptr) api.shutdown();
    nvml_initialised = false;
    library.close();
    api = nvml::Api{};
    devices.clear();
    processes_v2.clear();
    processes_v1.clear();
  }

  // Memory of `pid` on `handle` from a process list; sums the entries for
  // the pid (one per MIG instance). Empty on error or unattributed memory.
  template <typename Info, typename Fn>
  static std::optional<double> own_memory(Fn fn, nvml::Device handle, std::vector<Info>& buffer,
                                          unsigned pid) {
    if (buffer.empty()) buffer.resize(32);
    for (int attempt = 0; attempt < 3; ++attempt) {
      unsigned count = static_cast<unsigned>(buffer.size());
      const nvml::Return code = fn(handle, &count, buffer.data());
      if (code == nvml::kErrorInsufficientSize) {
        // count now holds the number needed; leave room for new processes.
        const std::size_t wanted = std::max<std::size_t>(count, buffer.size() * 2) + 8;
        if (wanted > kMaxProcesses) return std::nullopt;
        buffer.resize(wanted);
        continue;
      }
      if (code != nvml::kSuccess) return std::nullopt;
      const std::size_t n = std::min<std::size_t>(count, buffer.size());
      double bytes = 0.0;
      for (std::size_t i = 0; i < n; ++i) {
        if (buffer[i].pid != pid) continue;
        if (buffer[i].usedGpuMemory == nvml::kValueNotAvailable) return std::nullopt;
        bytes += static_cast<double>(buffer[i].usedGpuMemory);
      }
      return bytes / kBytesPerMiB;
    }
    return std::nullopt;
  }

  void sample_locked(const Device& device, unsigned pid, GpuDeviceSample& out) {
    out.index = device.index;
    out.name = device.name;
    out.uuid = device.uuid;
    const nvml::Device handle = device.handle;

    nvml::Utilization utilization{};
    if (api.device_get_utilization_rates(handle, &utilization) == nvml::kSuccess) {
      out.utilization_percent = utilization.gpu;
      out.memory_utilization_percent = utilization.memory;
    }

    bool have_memory = false;
    if (api.device_get_memory_info_v2 != nullptr) {
      nvml::MemoryV2 memory{};
      memory.version = nvml::kMemoryV2Version;
      if (api.device_get_memory_info_v2(handle, &memory) == nvml::kSuccess) {
        out.memory_total_mb = static_cast<double>(memory.total) / kBytesPerMiB;
        out.memory_reserved_mb = static_cast<double>(memory.reserved) / kBytesPerMiB;
        out.memory_free_mb = static_cast<double>(memory.free) / kBytesPerMiB;
        out.memory_used_mb = static_cast<double>(memory.used) / kBytesPerMiB;
        have_memory = true;
      }
    }
    if (!have_memory) {
      nvml::Memory memory{};
      if (api.device_get_memory_info(handle, &memory) == nvml::kSuccess) {
        out.memory_total_mb = static_cast<double>(memory.total) / kBytesPerMiB;
        out.memory_free_mb = static_cast<double>(memory.free) / kBytesPerMiB;
        out.memory_used_mb = static_cast<double>(memory.used) / kBytesPerMiB;
      }
    }

    unsigned value = 0;
    if (api.device_get_temperature != nullptr &&
        api.device_get_temperature(handle, nvml::kTemperatureGpu, &value) == nvml::kSuccess) {
      out.temperature_c = value;
    }
    if (api.device_get_power_usage != nullptr &&
        api.device_get_power_usage(handle, &value) == nvml::kSuccess) {
      out.power_w = static_cast<double>(value) * kMilli;
    }
    if (api.device_get_power_limit != nullptr &&
        api.device_get_power_limit(handle, &value) == nvml::kSuccess) {
      out.power_limit_w = static_cast<double>(value) * kMilli;
    }
    if (api.device_get_clock_info != nullptr &&
        api.device_get_clock_info(handle, nvml::kClockSm, &value) == nvml::kSuccess) {
      out.sm_clock_mhz = value;
    }

    if (api.device_get_processes_v2 != nullptr) {
      out.process_memory_mb = own_memory(api.device_get_processes_v2, handle, processes_v2, pid);
    } else if (api.device_get_processes_v1 != nullptr) {
      out.process_memory_mb = own_memory(api.device_get_processes_v1, handle, processes_v1, pid);
    }
  }
};

GpuProbe::GpuProbe() : impl_(std::make_unique<Impl>(std::nullopt)) {}

GpuProbe::GpuProbe(std::string library_path)
    : impl_(std::make_unique<Impl>(std::move(library_path))) {}

// No NVML call and no dlclose here: see the class comment.
GpuProbe::~GpuProbe() = default;

bool GpuProbe::init() noexcept { return impl_->ensure(true) == State::kAvailable; }

bool GpuProbe::is_available() noexcept { return impl_->ensure(false) == State::kAvailable; }

std::string GpuProbe::unavailable_reason() {
  impl_->ensure(false);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->reason;
}

unsigned GpuProbe::device_count() noexcept {
  impl_->ensure(false);
  return impl_->device_count.load(std::memory_order_relaxed);
}

std::vector<GpuDeviceSample> GpuProbe::sample() noexcept {
  std::vector<GpuDeviceSample> out;
  try {
    if (impl_->ensure(false) != State::kAvailable) return out;
    const auto pid = static_cast<unsigned>(::getpid());
    std::lock_guard<std::mutex> lock(impl_->mutex);
    // Shut down by another thread since ensure()?
    if (impl_->state.load(std::memory_order_relaxed) != State::kAvailable) return out;
    out.resize(impl_->devices.size());
    for (std::size_t i = 0; i < impl_->devices.size(); ++i) {
      impl_->sample_locked(impl_->devices[i], pid, out[i]);
    }
  } catch (const std::exception&) {  // std::bad_alloc: report nothing
    out.clear();
  }
  return out;
}

void GpuProbe::shutdown() noexcept {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->release_locked();
  try {
    impl_->reason = "GPU probe shut down";
  } catch (const std::exception&) {
    impl_->reason.clear();
  }
  impl_->device_count.store(0, std::memory_order_relaxed);
  impl_->state.store(State::kShutDown, std::memory_order_release);
}

}  // namespace veda
