/* A scripted stand-in for libcuda.so.1, loaded by veda::CudaProbe through
 * PYVEDA_CUDA_LIBRARY in tests. Types mirror cuda.h.
 *
 * Environment switches, read at call time:
 *   FAKE_CUDA_INIT_ERROR=<code>   cuInit returns <code> (100: no device)
 *   FAKE_CUDA_DEVICE_COUNT=<n>    devices reported (default 2)
 *   FAKE_CUDA_CONTEXT=1           cuCtxGetCurrent reports a current context
 *   FAKE_CUDA_REVERSE_ORDER=1     cuDeviceGetUuid numbers devices in reverse:
 *       CUDA ordinal i is the fake NVML's device (count - 1 - i), as when
 *       CUDA's fastest-first order differs from NVML's PCI order
 *
 * Scripted values: device 0 is compute capability 9.0, every other device
 * 8.6; cuMemGetInfo_v2 reports 12 GiB free of 16 GiB. cuDeviceGetUuid gives
 * ordinal i the bytes of fake_nvml.c's UUID for the same device,
 * GPU-fa4e0000-0000-0000-0000-00000000000<i> (see FAKE_CUDA_REVERSE_ORDER).
 *
 * fake_cuda_init_calls() counts cuInit calls.
 *
 * -DFAKE_CUDA_OMIT_ATTRIBUTE drops the required cuDeviceGetAttribute;
 * -DFAKE_CUDA_OMIT_UUID drops the optional cuDeviceGetUuid. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_EXPORT __attribute__((visibility("default")))

typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st* CUcontext;

enum {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_INVALID_VALUE = 1,
  CUDA_ERROR_NOT_INITIALIZED = 3,
  CUDA_ERROR_NO_DEVICE = 100,
  CUDA_ERROR_INVALID_DEVICE = 101,
  CUDA_ERROR_INVALID_CONTEXT = 201
};

struct CUctx_st {
  int unused;
};

static struct CUctx_st g_context;
static int g_initialised;
static int g_init_calls;

/* Number of cuInit calls so far, for tests that check when the driver loads. */
FAKE_EXPORT int fake_cuda_init_calls(void) { return __atomic_load_n(&g_init_calls, __ATOMIC_SEQ_CST); }

static int env_int(const char* name, int fallback) {
  const char* value = getenv(name);
  if (value == NULL || *value == '\0') return fallback;
  return atoi(value);
}

static int initialised(void) { return __atomic_load_n(&g_initialised, __ATOMIC_SEQ_CST); }

FAKE_EXPORT CUresult cuInit(unsigned int flags) {
  int error = env_int("FAKE_CUDA_INIT_ERROR", 0);
  __atomic_add_fetch(&g_init_calls, 1, __ATOMIC_SEQ_CST);
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (error != 0) return error;
  __atomic_store_n(&g_initialised, 1, __ATOMIC_SEQ_CST);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGetErrorString(CUresult error, const char** text) {
  if (text == NULL) return CUDA_ERROR_INVALID_VALUE;
  switch (error) {
    case 0: *text = "no error"; return CUDA_SUCCESS;
    case 1: *text = "invalid argument"; return CUDA_SUCCESS;
    case 3: *text = "initialization error"; return CUDA_SUCCESS;
    case 100: *text = "no CUDA-capable device is detected"; return CUDA_SUCCESS;
    case 101: *text = "invalid device ordinal"; return CUDA_SUCCESS;
    case 201: *text = "invalid device context"; return CUDA_SUCCESS;
    default: *text = NULL; return CUDA_ERROR_INVALID_VALUE;
  }
}

FAKE_EXPORT CUresult cuDeviceGetCount(int* count) {
  if (!initialised()) return CUDA_ERROR_NOT_INITIALIZED;
  if (count == NULL) return CUDA_ERROR_INVALID_VALUE;
  *count = env_int("FAKE_CUDA_DEVICE_COUNT", 2);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  if (!initialised()) return CUDA_ERROR_NOT_INITIALIZED;
  if (device == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (ordinal < 0 || ordinal >= env_int("FAKE_CUDA_DEVICE_COUNT", 2)) {
    return CUDA_ERROR_INVALID_DEVICE;
  }
  *device = ordinal;
  return CUDA_SUCCESS;
}

#ifndef FAKE_CUDA_OMIT_ATTRIBUTE
FAKE_EXPORT CUresult cuDeviceGetAttribute(int* value, int attribute, CUdevice device) {
  if (!initialised()) return CUDA_ERROR_NOT_INITIALIZED;
  if (value == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (device < 0 || device >= env_int("FAKE_CUDA_DEVICE_COUNT", 2)) {
    return CUDA_ERROR_INVALID_DEVICE;
  }
  if (attribute == 75) { /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
    *value = device == 0 ? 9 : 8;
  } else if (attribute == 76) { /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR */
    *value = device == 0 ? 0 : 6;
  } else {
    return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}
#endif

FAKE_EXPORT CUresult cuCtxGetCurrent(CUcontext* context) {
  if (!initialised()) return CUDA_ERROR_NOT_INITIALIZED;
  if (context == NULL) return CUDA_ERROR_INVALID_VALUE;
  *context = env_int("FAKE_CUDA_CONTEXT", 0) != 0 ? &g_context : NULL;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total_bytes) {
  if (!initialised()) return CUDA_ERROR_NOT_INITIALIZED;
  if (env_int("FAKE_CUDA_CONTEXT", 0) == 0) return CUDA_ERROR_INVALID_CONTEXT;
  if (free_bytes == NULL || total_bytes == NULL) return CUDA_ERROR_INVALID_VALUE;
  *free_bytes = (size_t)12 << 30U;
  *total_bytes = (size_t)16 << 30U;
  return CUDA_SUCCESS;
}

#ifndef FAKE_CUDA_OMIT_UUID
typedef struct {
  char bytes[16];
} CUuuid;

FAKE_EXPORT CUresult cuDeviceGetUuid(CUuuid* uuid, CUdevice device) {
  static const unsigned char prefix[4] = {0xfa, 0x4e, 0x00, 0x00};
  int count = env_int("FAKE_CUDA_DEVICE_COUNT", 2);
  int nvml_index = device;
  if (!initialised()) return CUDA_ERROR_NOT_INITIALIZED;
  if (uuid == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (device < 0 || device >= count) return CUDA_ERROR_INVALID_DEVICE;
  if (env_int("FAKE_CUDA_REVERSE_ORDER", 0) != 0) nvml_index = count - 1 - device;
  memset(uuid->bytes, 0, sizeof uuid->bytes);
  memcpy(uuid->bytes, prefix, sizeof prefix);
  uuid->bytes[15] = (char)nvml_index;
  return CUDA_SUCCESS;
}
#endif
