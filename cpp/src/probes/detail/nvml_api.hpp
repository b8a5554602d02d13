// Private: the slice of the NVML C API that veda::GpuProbe resolves with dlsym.
//
// nvml.h is not a build dependency (it ships with the CUDA toolkit, not with the
// driver), so the few types, codes and signatures used here are declared by
// hand. They mirror nvml.h (CUDA 11.x/12.x); the static_asserts pin the struct
// layouts the driver writes into. Nothing here is ever linked: every function
// is reached through a pointer from dlsym, so no nvml* symbol is referenced.
#pragma once

#include <cstddef>

namespace veda::detail::nvml {

// nvmlReturn_t. Only the codes the probe inspects or the tests script.
using Return = int;
inline constexpr Return kSuccess = 0;
inline constexpr Return kErrorUninitialized = 1;
inline constexpr Return kErrorInvalidArgument = 2;
inline constexpr Return kErrorNotSupported = 3;
inline constexpr Return kErrorNoPermission = 4;
inline constexpr Return kErrorInsufficientSize = 7;
inline constexpr Return kErrorDriverNotLoaded = 9;
inline constexpr Return kErrorGpuIsLost = 15;
inline constexpr Return kErrorUnknown = 999;

// nvmlDevice_t: an opaque handle owned by the driver.
struct DeviceOpaque;
using Device = DeviceOpaque*;

// nvmlTemperatureSensors_t / nvmlClockType_t: C enums, passed as int.
inline constexpr int kTemperatureGpu = 0;  // NVML_TEMPERATURE_GPU
inline constexpr int kClockSm = 1;         // NVML_CLOCK_SM

// NVML_DEVICE_NAME_V2_BUFFER_SIZE / NVML_DEVICE_UUID_V2_BUFFER_SIZE.
inline constexpr unsigned kNameBufferSize = 96;
inline constexpr unsigned kUuidBufferSize = 96;

// NVML_VALUE_NOT_AVAILABLE for unsigned long long fields (usedGpuMemory).
inline constexpr unsigned long long kValueNotAvailable = ~0ULL;

// nvmlUtilization_t: percent of the last sample period (1/6 s to 1 s).
struct Utilization {
  unsigned int gpu;     // a kernel was executing
  unsigned int memory;  // device memory was being read or written
};

// nvmlMemory_t (v1): used = allocated + reserved.
struct Memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

// nvmlMemory_v2_t: reserved split out; used is what nvidia-smi shows as "Used".
struct MemoryV2 {
  unsigned int version;
  unsigned long long total;
  unsigned long long reserved;
  unsigned long long free;
  unsigned long long used;
};
// NVML_STRUCT_VERSION(Memory, 2) = sizeof(nvmlMemory_v2_t) | (2 << 24).
inline constexpr unsigned int kMemoryV2Version =
    static_cast<unsigned int>(sizeof(MemoryV2)) | (2U << 24U);

// nvmlProcessInfo_v1_t: filled by the unversioned
// nvmlDeviceGetComputeRunningProcesses.
struct ProcessInfoV1 {
  unsigned int pid;
  unsigned long long usedGpuMemory;  // bytes, or kValueNotAvailable
};

// nvmlProcessInfo_v2_t == nvmlProcessInfo_t: filled by the _v2 and _v3 entry
// points.
struct ProcessInfoV2 {
  unsigned int pid;
  unsigned long long usedGpuMemory;  // bytes, or kValueNotAvailable
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};

static_assert(sizeof(Utilization) == 8, "nvmlUtilization_t layout");
static_assert(sizeof(Memory) == 24, "nvmlMemory_t layout");
static_assert(sizeof(MemoryV2) == 40 && offsetof(MemoryV2, total) == 8 &&
                  offsetof(MemoryV2, used) == 32,
              "nvmlMemory_v2_t layout");
static_assert(kMemoryV2Version == 0x02000028U, "nvmlMemory_v2 version word");
static_assert(sizeof(ProcessInfoV1) == 16, "nvmlProcessInfo_v1_t layout");
static_assert(sizeof(ProcessInfoV2) == 24, "nvmlProcessInfo_v2_t layout");

// Entry point signatures (C linkage, default calling convention on Linux).
extern "C" {
using InitFn = Return (*)();
using ShutdownFn = Return (*)();
using ErrorStringFn = const char* (*)(Return);
using DeviceGetCountFn = Return (*)(unsigned int*);
using DeviceGetHandleByIndexFn = Return (*)(unsigned int, Device*);
using DeviceGetNameFn = Return (*)(Device, char*, unsigned int);
using DeviceGetUuidFn = Return (*)(Device, char*, unsigned int);
using DeviceGetUtilizationRatesFn = Return (*)(Device, Utilization*);
using DeviceGetMemoryInfoFn = Return (*)(Device, Memory*);
using DeviceGetMemoryInfoV2Fn = Return (*)(Device, MemoryV2*);
using DeviceGetTemperatureFn = Return (*)(Device, int, unsigned int*);
using DeviceGetPowerUsageFn = Return (*)(Device, unsigned int*);   // mW
using DeviceGetPowerLimitFn = Return (*)(Device, unsigned int*);   // mW
using DeviceGetClockInfoFn = Return (*)(Device, int, unsigned int*);  // MHz
using DeviceGetProcessesV1Fn = Return (*)(Device, unsigned int*, ProcessInfoV1*);
using DeviceGetProcessesV2Fn = Return (*)(Device, unsigned int*, ProcessInfoV2*);
}

// The resolved function table. Required entries are non-null whenever the
// probe reports available; optional ones may be null.
struct Api {
  // Required.
  InitFn init_v2 = nullptr;
  ShutdownFn shutdown = nullptr;
  ErrorStringFn error_string = nullptr;
  DeviceGetCountFn device_get_count_v2 = nullptr;
  DeviceGetHandleByIndexFn device_get_handle_by_index_v2 = nullptr;
  DeviceGetUtilizationRatesFn device_get_utilization_rates = nullptr;
  DeviceGetMemoryInfoFn device_get_memory_info = nullptr;
  // Optional.
  DeviceGetNameFn device_get_name = nullptr;
  DeviceGetUuidFn device_get_uuid = nullptr;
  DeviceGetMemoryInfoV2Fn device_get_memory_info_v2 = nullptr;
  DeviceGetTemperatureFn device_get_temperature = nullptr;
  DeviceGetPowerUsageFn device_get_power_usage = nullptr;
  // nvmlDeviceGetEnforcedPowerLimit, else nvmlDeviceGetPowerManagementLimit.
  DeviceGetPowerLimitFn device_get_power_limit = nullptr;
  DeviceGetClockInfoFn device_get_clock_info = nullptr;
  // nvmlDeviceGetComputeRunningProcesses_v3, else _v2 (same struct), else the
  // unversioned v1 entry point.
  DeviceGetProcessesV2Fn device_get_processes_v2 = nullptr;
  DeviceGetProcessesV1Fn device_get_processes_v1 = nullptr;
};

}  // namespace veda::detail::nvml
