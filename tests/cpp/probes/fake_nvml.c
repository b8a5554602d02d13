/* A scripted stand-in for libnvidia-ml.so.1, loaded by veda::GpuProbe through
 * PYVEDA_NVML_LIBRARY in tests and benchmarks. Types mirror nvml.h.
 *
 * Behaviour is switched by environment variables read at call time:
 *   FAKE_NVML_DEVICE_COUNT=<n>     devices reported (default 2, at most 8)
 *   FAKE_NVML_INIT_ERROR=<code>    nvmlInit_v2 returns <code>
 *   FAKE_NVML_COUNT_ERROR=<code>   nvmlDeviceGetCount_v2 returns <code>
 *   FAKE_NVML_HANDLE_ERROR=<code>  nvmlDeviceGetHandleByIndex_v2 returns <code>
 *   FAKE_NVML_NOT_SUPPORTED=<list> comma-separated calls that return
 *       NVML_ERROR_NOT_SUPPORTED (3): name, uuid, utilization, memory (v1),
 *       memory_v2, temperature, power, power_limit, clock, processes
 *   FAKE_NVML_EXTRA_PROCESSES=<n>  n other processes (1 MiB each) listed
 *       before this one on every device, to force NVML_ERROR_INSUFFICIENT_SIZE
 *   FAKE_NVML_PROCESS_MEMORY_NA=1  this process's usedGpuMemory is
 *       NVML_VALUE_NOT_AVAILABLE
 *
 * Scripted values for device i (MiB = 1048576 bytes):
 *   name "Fake NVML GPU <i>", uuid "GPU-fa4e0000-0000-0000-0000-00000000000<i>"
 *   utilization gpu 40+10i %, memory 20+5i %
 *   memory total 16384 MiB, reserved 256 MiB, v2 used 4096+1024i MiB,
 *       free = total - reserved - used; v1 used = v2 used + reserved
 *   temperature 50+i C, power 150000+25000i mW, enforced limit 300000 mW,
 *   power management limit 350000 mW, SM clock 1410+100i MHz
 *   processes: device 0 lists pid 1 (512 MiB) and the caller (256 MiB);
 *       other devices list pid 1 only.
 *
 * Build variants: -DFAKE_NVML_OMIT_UTILIZATION drops the required
 * nvmlDeviceGetUtilizationRates; -DFAKE_NVML_LEGACY drops the optional
 * nvmlDeviceGetMemoryInfo_v2, nvmlDeviceGetEnforcedPowerLimit and
 * nvmlDeviceGetComputeRunningProcesses_v2/_v3 so the fallbacks run.
 *
 * fake_nvml_init_refcount() and fake_nvml_uninitialised_calls() let tests
 * check that the probe balances nvmlInit/nvmlShutdown and makes no call
 * outside them. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAKE_EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st* nvmlDevice_t;

typedef struct {
  unsigned int gpu;
  unsigned int memory;
} nvmlUtilization_t;

typedef struct {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_t;

typedef struct {
  unsigned int version;
  unsigned long long total;
  unsigned long long reserved;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_v2_t;

typedef struct {
  unsigned int pid;
  unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef struct {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
} nvmlProcessInfo_t;

enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
};

#define MIB 1048576ULL
#define MAX_DEVICES 8
#define MEMORY_V2_VERSION ((unsigned int)sizeof(nvmlMemory_v2_t) | (2U << 24U))

struct nvmlDevice_st {
  unsigned int index;
};

static struct nvmlDevice_st g_devices[MAX_DEVICES] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}};
static int g_init_refcount;
static int g_uninitialised_calls;

FAKE_EXPORT int fake_nvml_init_refcount(void) {
  return __atomic_load_n(&g_init_refcount, __ATOMIC_SEQ_CST);
}

FAKE_EXPORT int fake_nvml_uninitialised_calls(void) {
  return __atomic_load_n(&g_uninitialised_calls, __ATOMIC_SEQ_CST);
}

static int env_int(const char* name, int fallback) {
  const char* value = getenv(name);
  if (value == NULL || *value == '\0') return fallback;
  return atoi(value);
}

/* True when `call` appears in the comma-separated FAKE_NVML_NOT_SUPPORTED. */
static int not_supported(const char* call) {
  const char* list = getenv("FAKE_NVML_NOT_SUPPORTED");
  size_t length = strlen(call);
  while (list != NULL && *list != '\0') {
    const char* comma = strchr(list, ',');
    size_t item = comma != NULL ? (size_t)(comma - list) : strlen(list);
    if (item == length && strncmp(list, call, length) == 0) return 1;
    list = comma != NULL ? comma + 1 : NULL;
  }
  return 0;
}

static unsigned int device_count(void) {
  int count = env_int("FAKE_NVML_DEVICE_COUNT", 2);
  if (count < 0) count = 0;
  if (count > MAX_DEVICES) count = MAX_DEVICES;
  return (unsigned int)count;
}

/* Common prologue: NVML must be initialised and the handle one of ours. */
static nvmlReturn_t check(nvmlDevice_t device) {
  if (__atomic_load_n(&g_init_refcount, __ATOMIC_SEQ_CST) <= 0) {
    __atomic_add_fetch(&g_uninitialised_calls, 1, __ATOMIC_SEQ_CST);
    return NVML_ERROR_UNINITIALIZED;
  }
  if (device == NULL || device < &g_devices[0] || device >= &g_devices[MAX_DEVICES]) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlInit_v2(void) {
  int error = env_int("FAKE_NVML_INIT_ERROR", 0);
  if (error != 0) return error;
  __atomic_add_fetch(&g_init_refcount, 1, __ATOMIC_SEQ_CST);
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlShutdown(void) {
  if (__atomic_sub_fetch(&g_init_refcount, 1, __ATOMIC_SEQ_CST) < 0) {
    __atomic_add_fetch(&g_init_refcount, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&g_uninitialised_calls, 1, __ATOMIC_SEQ_CST);
    return NVML_ERROR_UNINITIALIZED;
  }
  return NVML_SUCCESS;
}

FAKE_EXPORT const char* nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 7: return "Insufficient Size";
    case 9: return "Driver Not Loaded";
    case 12: return "NVML Shared Library Not Found";
    case 15: return "GPU is lost";
    case 25: return "Argument version mismatch";
    default: return "Unknown Error";
  }
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  int error = env_int("FAKE_NVML_COUNT_ERROR", 0);
  if (__atomic_load_n(&g_init_refcount, __ATOMIC_SEQ_CST) <= 0) {
    __atomic_add_fetch(&g_uninitialised_calls, 1, __ATOMIC_SEQ_CST);
    return NVML_ERROR_UNINITIALIZED;
  }
  if (error != 0) return error;
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *count = device_count();
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  int error = env_int("FAKE_NVML_HANDLE_ERROR", 0);
  nvmlReturn_t status = check(&g_devices[0]);
  if (status != NVML_SUCCESS) return status;
  if (error != 0) return error;
  if (device == NULL || index >= device_count()) return NVML_ERROR_INVALID_ARGUMENT;
  *device = &g_devices[index];
  return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(const char* text, char* buffer, unsigned int length) {
  size_t size = strlen(text) + 1;
  if (buffer == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (length < size) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(buffer, text, size);
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) {
  char text[64];
  nvmlReturn_t status = check(device);
  if (status != NVML_SUCCESS) return status;
  if (not_supported("name")) return NVML_ERROR_NOT_SUPPORTED;
  strcpy(text, "Fake NVML GPU 0");
  text[strlen(text) - 1] = (char)('0' + device->index);
  return copy_string(text, name, length);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
  char text[64];
  nvmlReturn_t status = check(device);
  if (status != NVML_SUCCESS) return status;
  if (not_supported("uuid")) return NVML_ERROR_NOT_SUPPORTED;
  strcpy(text, "GPU-fa4e0000-0000-0000-0000-000000000000");
  text[strlen(text) - 1] = (char)('0' + device->index);
  return copy_string(text, uuid, length);
}

#ifndef FAKE_NVML_OMIT_UTILIZATION
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device,
                                                       nvmlUtilization_t* utilization) {
  nvmlReturn_t status = check(device);
  if (status != NVML_SUCCESS) return status;
  if (not_supported("utilization")) return NVML_ERROR_NOT_SUPPORTED;
  if (utilization == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  utilization->gpu = 40 + 10 * device->index;
  utilization->memory = 20 + 5 * device->index;
  return NVML_SUCCESS;
}
#endif

static unsigned long long used_v2_bytes(nvmlDevice_t device) {
  return (4096ULL + 1024ULL * device->index) * MIB;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  nvmlReturn_t status = check(device);
  if (status != NVML_SUCCESS) return status;
  if (not_supported("memory")) return NVML_ERROR_NOT_SUPPORTED;
  if (memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  memory->total = 16384ULL * MIB;
  memory->used = used_v2_bytes(device) + 256ULL * MIB;
  memory->free = memory->total - memory->used;
  return NVML_SUCCESS;
}

#ifndef FAKE_NVML_LEGACY
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t* memory) {
  nvmlReturn_t status = check(device);
  if (status != NVML_SUCCESS) return status;
  if (not_supported("memory_v2")) return NVML_ERROR_NOT_SUPPORTED;
  if (memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (memory->version != MEMORY_V2_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  memory->total = 16384ULL * MIB;
  memory->reserved = 256ULL * MIB;
  memory->used = used_v2_bytes(device);
  memory->free = memory->total - memory->reserved - memory->used;
  return NVML_SUCCESS;
}
#endif

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor,
                                                  unsigned int* temperature) {
  nvmlReturn_t status = check(device);
  if (status != NVML_SUCCESS) return status;
  if (not_supported("temperature")) return NVML_ERROR_NOT_SUPPORTED;
  if (sensor != 0 || temperature == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *temperature = 50 + device->index;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int* power) {
  nvmlReturn_t status = check(device);
  if (status != NVML_SUCCESS) return status;
  if (not_supported("power")) return NVML_ERROR_NOT_SUPPORTED;
  if (power == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *power = 150000 + 25000 * device->index;
  return NVML_SUCCESS;
}

#ifndef FAKE_NVML_LEGACY
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int* limit) {
  nvmlReturn_t status = check(device);
  if (status != NVML_SUCCESS) return status;
  if (not_supported("power_limit")) return NVML_ERROR_NOT_SUPPORTED;
  if (limit == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *limit = 300000;
  return NVML_SUCCESS;
}
#endif

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device,
                                                           unsigned int* limit) {
  nvmlReturn_t status = check(device);
  if (status != NVML_SUCCESS) return status;
  if (not_supported("power_limit")) return NVML_ERROR_NOT_SUPPORTED;
  if (limit == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *limit = 350000;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type,
                                                unsigned int* clock) {
  nvmlReturn_t status = check(device);
  if (status != NVML_SUCCESS) return status;
  if (not_supported("clock")) return NVML_ERROR_NOT_SUPPORTED;
  if (type != 1 || clock == NULL) return NVML_ERROR_INVALID_ARGUMENT; /* NVML_CLOCK_SM */
  *clock = 1410 + 100 * device->index;
  return NVML_SUCCESS;
}

/* Fills the process list for `device` through `put`; NVML semantics: when
 * *count is too small, set it to the number needed and return
 * NVML_ERROR_INSUFFICIENT_SIZE. */
typedef void (*put_fn)(void* infos, unsigned int slot, unsigned int pid,
                       unsigned long long bytes);

static nvmlReturn_t list_processes(nvmlDevice_t device, unsigned int* count, void* infos,
                                   put_fn put) {
  unsigned int extra;
  unsigned int needed;
  unsigned int slot = 0;
  unsigned int i;
  nvmlReturn_t status = check(device);
  if (status != NVML_SUCCESS) return status;
  if (not_supported("processes")) return NVML_ERROR_NOT_SUPPORTED;
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  extra = (unsigned int)env_int("FAKE_NVML_EXTRA_PROCESSES", 0);
  needed = extra + 1 + (device->index == 0 ? 1 : 0);
  if (*count < needed || infos == NULL) {
    *count = needed;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  for (i = 0; i < extra; ++i) put(infos, slot++, 100000 + i, MIB);
  put(infos, slot++, 1, (device->index == 0 ? 512ULL : 128ULL) * MIB);
  if (device->index == 0) {
    unsigned long long bytes =
        env_int("FAKE_NVML_PROCESS_MEMORY_NA", 0) != 0 ? ~0ULL : 256ULL * MIB;
    put(infos, slot++, (unsigned int)getpid(), bytes);
  }
  *count = slot;
  return NVML_SUCCESS;
}

static void put_v1(void* infos, unsigned int slot, unsigned int pid, unsigned long long bytes) {
  nvmlProcessInfo_v1_t* info = (nvmlProcessInfo_v1_t*)infos + slot;
  info->pid = pid;
  info->usedGpuMemory = bytes;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device,
                                                              unsigned int* count,
                                                              nvmlProcessInfo_v1_t* infos) {
  return list_processes(device, count, infos, put_v1);
}

#ifndef FAKE_NVML_LEGACY
static void put_v2(void* infos, unsigned int slot, unsigned int pid, unsigned long long bytes) {
  nvmlProcessInfo_t* info = (nvmlProcessInfo_t*)infos + slot;
  info->pid = pid;
  info->usedGpuMemory = bytes;
  info->gpuInstanceId = 0xFFFFFFFFU;
  info->computeInstanceId = 0xFFFFFFFFU;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device,
                                                                 unsigned int* count,
                                                                 nvmlProcessInfo_t* infos) {
  return list_processes(device, count, infos, put_v2);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                                 unsigned int* count,
                                                                 nvmlProcessInfo_t* infos) {
  return list_processes(device, count, infos, put_v2);
}
#endif
