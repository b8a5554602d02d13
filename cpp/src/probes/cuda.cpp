// veda::CudaProbe: the CUDA driver API reached through dlopen/dlsym only.
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "probes/detail/dynamic_library.hpp"
#include "veda/probes/gpu.hpp"

namespace veda {
namespace {

// The slice of cuda.h used here, declared by hand (cuda.h is not a build
// dependency and libcuda is never linked).
namespace cu {
using Result = int;  // CUresult
inline constexpr Result kSuccess = 0;
using Device = int;  // CUdevice
struct ContextOpaque;
using Context = ContextOpaque*;  // CUcontext
inline constexpr int kAttributeComputeCapabilityMajor = 75;
inline constexpr int kAttributeComputeCapabilityMinor = 76;

extern "C" {
using InitFn = Result (*)(unsigned int);
using DeviceGetCountFn = Result (*)(int*);
using DeviceGetFn = Result (*)(Device*, int);
using DeviceGetAttributeFn = Result (*)(int*, int, Device);
using CtxGetCurrentFn = Result (*)(Context*);
using MemGetInfoFn = Result (*)(std::size_t*, std::size_t*);
using GetErrorStringFn = Result (*)(Result, const char**);
}

// CUuuid: 16 bytes.
struct Uuid {
  unsigned char bytes[16];
};
static_assert(sizeof(Uuid) == 16, "CUuuid layout");
extern "C" {
using DeviceGetUuidFn = Result (*)(Uuid*, Device);
}

struct Api {
  // Required.
  InitFn init = nullptr;
  DeviceGetCountFn device_get_count = nullptr;
  DeviceGetFn device_get = nullptr;
  DeviceGetAttributeFn device_get_attribute = nullptr;
  // Optional: context_memory() needs both of the first two.
  CtxGetCurrentFn ctx_get_current = nullptr;
  MemGetInfoFn mem_get_info_v2 = nullptr;
  GetErrorStringFn get_error_string = nullptr;
  // cuDeviceGetUuid, else cuDeviceGetUuid_v2 (same signature).
  DeviceGetUuidFn device_get_uuid = nullptr;
};
}  // namespace cu

constexpr const char* kDefaultLibrary = "libcuda.so.1";
constexpr const char* kLibraryEnv = "PYVEDA_CUDA_LIBRARY";

enum class State { kUninitialised, kAvailable, kUnavailable, kShutDown };

}  // namespace

struct CudaProbe::Impl {
  explicit Impl(std::optional<std::string> path) : explicit_path(std::move(path)) {}

  const std::optional<std::string> explicit_path;
  std::atomic<State> state{State::kUninitialised};
  std::atomic<unsigned> device_count{0};

  // Guards everything below. CUDA calls are made under it too: they are
  // cheap, and it keeps the table stable against a concurrent re-init.
  std::mutex mutex;
  std::string reason;
  cu::Api api;

  State ensure(bool explicit_init) noexcept {
    State current = state.load(std::memory_order_acquire);
    if (current == State::kAvailable || current == State::kUnavailable) return current;
    if (current == State::kShutDown && !explicit_init) return current;
    std::lock_guard<std::mutex> lock(mutex);
    current = state.load(std::memory_order_relaxed);
    if (current == State::kUninitialised || (current == State::kShutDown && explicit_init)) {
      try {
        try_initialise_locked();
      } catch (const std::exception& e) {  // std::bad_alloc while building strings
        api = cu::Api{};
        try {
          fail_locked(e.what());
        } catch (const std::exception&) {
          fail_locked(std::string());
        }
      }
      current = state.load(std::memory_order_relaxed);
    }
    return current;
  }

  // libcuda is never dlclosed once cuInit may have run: the driver starts
  // threads and registers handlers that do not survive being unmapped.
  void try_initialise_locked() {
    api = cu::Api{};
    const std::string path =
        explicit_path ? *explicit_path : detail::DynamicLibrary::path_from_env(kLibraryEnv, kDefaultLibrary);

    detail::DynamicLibrary library(path);
    if (!library.loaded()) {
      fail_locked("CUDA not available: cannot load the CUDA driver: " + library.error());
      return;
    }

    const char* missing = nullptr;
    library.require("cuInit", api.init, missing);
    library.require("cuDeviceGetCount", api.device_get_count, missing);
    library.require("cuDeviceGet", api.device_get, missing);
    library.require("cuDeviceGetAttribute", api.device_get_attribute, missing);
    if (missing != nullptr) {
      const std::string reason_text =
          "CUDA not available: " + path + " lacks required CUDA symbol " + missing;
      api = cu::Api{};
      fail_locked(reason_text);
      return;  // cuInit never ran: `library` unloads safely on the way out
    }
    library.resolve("cuCtxGetCurrent", api.ctx_get_current);
    library.resolve("cuMemGetInfo_v2", api.mem_get_info_v2);
    library.resolve("cuGetErrorString", api.get_error_string);
    if (!library.resolve("cuDeviceGetUuid", api.device_get_uuid)) {
      library.resolve("cuDeviceGetUuid_v2", api.device_get_uuid);
    }
    library.keep_loaded();  // from here on cuInit may run: never unload

    cu::Result code = api.init(0);
    if (code != cu::kSuccess) {
      fail_locked(error_text(code));
      return;
    }
    int count = 0;
    code = api.device_get_count(&count);
    if (code != cu::kSuccess) {
      fail_locked(error_text(code));
      return;
    }
    if (count <= 0) {
      fail_locked("CUDA not available: no CUDA devices");
      return;
    }
    reason.clear();
    device_count.store(static_cast<unsigned>(count), std::memory_order_relaxed);
    state.store(State::kAvailable, std::memory_order_release);
  }

  std::string error_text(cu::Result code) const {
    const char* text = nullptr;
    if (api.get_error_string == nullptr || api.get_error_string(code, &text) != cu::kSuccess) {
      text = nullptr;
    }
    return "CUDA not available: " + std::string(text != nullptr ? text : "unknown CUDA error") +
           " (" + std::to_string(code) + ")";
  }

  void fail_locked(std::string why) noexcept {
    reason = std::move(why);
    device_count.store(0, std::memory_order_relaxed);
    state.store(State::kUnavailable, std::memory_order_release);
  }

  bool available_locked() const noexcept {
    return state.load(std::memory_order_relaxed) == State::kAvailable;
  }
};

CudaProbe::CudaProbe() : impl_(std::make_unique<Impl>(std::nullopt)) {}

CudaProbe::CudaProbe(std::string library_path)
    : impl_(std::make_unique<Impl>(std::move(library_path))) {}

CudaProbe::~CudaProbe() = default;

bool CudaProbe::init() noexcept { return impl_->ensure(true) == State::kAvailable; }

bool CudaProbe::is_available() noexcept { return impl_->ensure(false) == State::kAvailable; }

std::string CudaProbe::unavailable_reason() {
  impl_->ensure(false);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->reason;
}

unsigned CudaProbe::device_count() noexcept {
  impl_->ensure(false);
  return impl_->device_count.load(std::memory_order_relaxed);
}

std::optional<CudaComputeCapability> CudaProbe::compute_capability(unsigned index) noexcept {
  if (impl_->ensure(false) != State::kAvailable) return std::nullopt;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (!impl_->available_locked() || index >= impl_->device_count.load(std::memory_order_relaxed)) {
    return std::nullopt;
  }
  const cu::Api& api = impl_->api;
  cu::Device device = 0;
  if (api.device_get(&device, static_cast<int>(index)) != cu::kSuccess) return std::nullopt;
  CudaComputeCapability capability;
  if (api.device_get_attribute(&capability.major, cu::kAttributeComputeCapabilityMajor, device) !=
          cu::kSuccess ||
      api.device_get_attribute(&capability.minor, cu::kAttributeComputeCapabilityMinor, device) !=
          cu::kSuccess) {
    return std::nullopt;
  }
  return capability;
}

std::optional<std::string> CudaProbe::uuid(unsigned index) noexcept {
  if (impl_->ensure(false) != State::kAvailable) return std::nullopt;
  cu::Uuid uuid{};
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    const cu::Api& api = impl_->api;
    if (!impl_->available_locked() || api.device_get_uuid == nullptr ||
        index >= impl_->device_count.load(std::memory_order_relaxed)) {
      return std::nullopt;
    }
    cu::Device device = 0;
    if (api.device_get(&device, static_cast<int>(index)) != cu::kSuccess ||
        api.device_get_uuid(&uuid, device) != cu::kSuccess) {
      return std::nullopt;
    }
  }
  // "GPU-" then the bytes as hex in groups of 4-2-2-2-6, as nvmlDeviceGetUUID.
  static constexpr char kHex[] = "0123456789abcdef";
  char text[4 + 32 + 4 + 1] = {'G', 'P', 'U', '-'};
  std::size_t pos = 4;
  for (std::size_t i = 0; i < sizeof uuid.bytes; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text[pos++] = '-';
    text[pos++] = kHex[uuid.bytes[i] >> 4U];
    text[pos++] = kHex[uuid.bytes[i] & 0x0FU];
  }
  try {
    return std::string(text, pos);
  } catch (const std::exception&) {  // std::bad_alloc
    return std::nullopt;
  }
}

std::optional<CudaMemoryInfo> CudaProbe::context_memory() noexcept {
  if (impl_->ensure(false) != State::kAvailable) return std::nullopt;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const cu::Api& api = impl_->api;
  if (!impl_->available_locked() || api.ctx_get_current == nullptr ||
      api.mem_get_info_v2 == nullptr) {
    return std::nullopt;
  }
  cu::Context context = nullptr;
  if (api.ctx_get_current(&context) != cu::kSuccess || context == nullptr) return std::nullopt;
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
  if (api.mem_get_info_v2(&free_bytes, &total_bytes) != cu::kSuccess) return std::nullopt;
  return CudaMemoryInfo{free_bytes, total_bytes};
}

void CudaProbe::shutdown() noexcept {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->api = cu::Api{};
  try {
    impl_->reason = "CUDA probe shut down";
  } catch (const std::exception&) {
    impl_->reason.clear();
  }
  impl_->device_count.store(0, std::memory_order_relaxed);
  impl_->state.store(State::kShutDown, std::memory_order_release);
}

}  // namespace veda
