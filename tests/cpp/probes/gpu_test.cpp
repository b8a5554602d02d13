// GpuProbe and CudaProbe against scripted fake libraries (fake_nvml.c,
// fake_cuda.c), loaded through the real dlopen path via PYVEDA_NVML_LIBRARY /
// PYVEDA_CUDA_LIBRARY. Paths come from the build as compile definitions.
#include "veda/probes/gpu.hpp"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

#ifndef VEDA_FAKE_NVML
#error "VEDA_FAKE_NVML (path of the fake NVML library) must be defined by the build"
#endif

namespace {

constexpr const char* kFakeNvml = VEDA_FAKE_NVML;
constexpr const char* kFakeNvmlNoUtilization = VEDA_FAKE_NVML_NO_UTILIZATION;
constexpr const char* kFakeNvmlLegacy = VEDA_FAKE_NVML_LEGACY;
constexpr const char* kFakeCuda = VEDA_FAKE_CUDA;
constexpr const char* kFakeCudaNoAttribute = VEDA_FAKE_CUDA_NO_ATTRIBUTE;

const char* const kEnvVars[] = {
    "PYVEDA_NVML_LIBRARY",     "PYVEDA_CUDA_LIBRARY",         "FAKE_NVML_DEVICE_COUNT",
    "FAKE_NVML_INIT_ERROR",    "FAKE_NVML_COUNT_ERROR",       "FAKE_NVML_HANDLE_ERROR",
    "FAKE_NVML_NOT_SUPPORTED", "FAKE_NVML_EXTRA_PROCESSES",   "FAKE_NVML_PROCESS_MEMORY_NA",
    "FAKE_CUDA_INIT_ERROR",    "FAKE_CUDA_DEVICE_COUNT",      "FAKE_CUDA_CONTEXT"};

using veda::test::fake_query;  // reads an int-returning query of a loaded fake

int nvml_refcount(const char* library = kFakeNvml) {
  return fake_query(library, "fake_nvml_init_refcount");
}

int nvml_uninitialised_calls(const char* library = kFakeNvml) {
  return fake_query(library, "fake_nvml_uninitialised_calls");
}

class ProbeEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kEnvVars) ::unsetenv(name);
    // Pin the fakes so a probe's dlclose never unmaps them mid-test, which
    // would reset the counters the assertions read.
    pinned_ = ::dlopen(kFakeNvml, RTLD_NOW | RTLD_LOCAL);
    pinned_legacy_ = ::dlopen(kFakeNvmlLegacy, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(pinned_, nullptr) << ::dlerror();
    ASSERT_NE(pinned_legacy_, nullptr) << ::dlerror();
    base_refcount_ = nvml_refcount();
    base_uninitialised_ = nvml_uninitialised_calls();
  }
  void TearDown() override {
    for (const char* name : kEnvVars) ::unsetenv(name);
    if (pinned_ != nullptr) ::dlclose(pinned_);
    if (pinned_legacy_ != nullptr) ::dlclose(pinned_legacy_);
  }
  static void set(const char* name, const std::string& value) {
    ASSERT_EQ(::setenv(name, value.c_str(), 1), 0);
  }

  void* pinned_ = nullptr;
  void* pinned_legacy_ = nullptr;
  int base_refcount_ = 0;
  int base_uninitialised_ = 0;
};

using GpuProbeTest = ProbeEnv;
using CudaProbeTest = ProbeEnv;

TEST_F(GpuProbeTest, EnumeratesFakeDevicesWithEveryField) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  veda::GpuProbe probe;
  ASSERT_TRUE(probe.is_available()) << probe.unavailable_reason();
  EXPECT_EQ(probe.unavailable_reason(), "");
  EXPECT_EQ(probe.device_count(), 2U);
  EXPECT_EQ(nvml_refcount(), base_refcount_ + 1);

  const std::vector<veda::GpuDeviceSample> samples = probe.sample();
  ASSERT_EQ(samples.size(), 2U);
  for (unsigned i = 0; i < 2; ++i) {
    const veda::GpuDeviceSample& s = samples[i];
    SCOPED_TRACE(i);
    EXPECT_EQ(s.index, i);
    EXPECT_EQ(s.name, "Fake NVML GPU " + std::to_string(i));
    EXPECT_EQ(s.uuid, "GPU-fa4e0000-0000-0000-0000-00000000000" + std::to_string(i));
    EXPECT_EQ(s.utilization_percent, 40.0 + 10.0 * i);
    EXPECT_EQ(s.memory_utilization_percent, 20.0 + 5.0 * i);
    // nvmlMemory_v2: used excludes the 256 MiB reserved.
    EXPECT_EQ(s.memory_total_mb, 16384.0);
    EXPECT_EQ(s.memory_reserved_mb, 256.0);
    EXPECT_EQ(s.memory_used_mb, 4096.0 + 1024.0 * i);
    EXPECT_EQ(s.memory_free_mb, 16384.0 - 256.0 - (4096.0 + 1024.0 * i));
    EXPECT_EQ(s.temperature_c, 50.0 + i);
    EXPECT_EQ(s.power_w, 150.0 + 25.0 * i);
    EXPECT_EQ(s.power_limit_w, 300.0);  // enforced limit preferred
    EXPECT_EQ(s.sm_clock_mhz, 1410.0 + 100.0 * i);
  }
  EXPECT_EQ(samples[0].process_memory_mb, 256.0);  // this pid on device 0
  EXPECT_EQ(samples[1].process_memory_mb, 0.0);    // not on device 1

  probe.shutdown();
  EXPECT_EQ(nvml_refcount(), base_refcount_);
  EXPECT_EQ(nvml_uninitialised_calls(), base_uninitialised_);
}

TEST_F(GpuProbeTest, ExplicitPathIgnoresEnvironment) {
  set("PYVEDA_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1");
  veda::GpuProbe probe(kFakeNvml);
  EXPECT_TRUE(probe.init()) << probe.unavailable_reason();
  EXPECT_EQ(probe.device_count(), 2U);
  probe.shutdown();
}

TEST_F(GpuProbeTest, DeviceCountFollowsDriver) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  set("FAKE_NVML_DEVICE_COUNT", "5");
  veda::GpuProbe probe;
  ASSERT_EQ(probe.device_count(), 5U) << probe.unavailable_reason();
  const auto samples = probe.sample();
  ASSERT_EQ(samples.size(), 5U);
  for (unsigned i = 0; i < 5; ++i) EXPECT_EQ(samples[i].index, i);
  probe.shutdown();
}

TEST_F(GpuProbeTest, InitErrorMakesProbeUnavailableWithNvmlText) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  set("FAKE_NVML_INIT_ERROR", "9");
  veda::GpuProbe probe;
  EXPECT_FALSE(probe.is_available());
  EXPECT_EQ(probe.unavailable_reason(), "GPU not available: Driver Not Loaded (9)");
  EXPECT_EQ(probe.device_count(), 0U);
  EXPECT_TRUE(probe.sample().empty());
  EXPECT_EQ(nvml_refcount(), base_refcount_);
  // The outcome is kept: clearing the error does not re-initialise lazily.
  ::unsetenv("FAKE_NVML_INIT_ERROR");
  EXPECT_FALSE(probe.is_available());
  probe.shutdown();
}

TEST_F(GpuProbeTest, UnknownInitErrorCode) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  set("FAKE_NVML_INIT_ERROR", "999");
  veda::GpuProbe probe;
  EXPECT_FALSE(probe.init());
  EXPECT_EQ(probe.unavailable_reason(), "GPU not available: Unknown Error (999)");
}

TEST_F(GpuProbeTest, CountErrorShutsNvmlDown) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  set("FAKE_NVML_COUNT_ERROR", "15");
  veda::GpuProbe probe;
  EXPECT_FALSE(probe.is_available());
  EXPECT_EQ(probe.unavailable_reason(), "GPU not available: GPU is lost (15)");
  EXPECT_EQ(nvml_refcount(), base_refcount_);  // nvmlShutdown after nvmlInit
  EXPECT_EQ(nvml_uninitialised_calls(), base_uninitialised_);
}

TEST_F(GpuProbeTest, ZeroDevicesIsUnavailable) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  set("FAKE_NVML_DEVICE_COUNT", "0");
  veda::GpuProbe probe;
  EXPECT_FALSE(probe.is_available());
  EXPECT_EQ(probe.unavailable_reason(), "GPU not available: NVML reports no devices");
  EXPECT_TRUE(probe.sample().empty());
  EXPECT_EQ(nvml_refcount(), base_refcount_);
}

TEST_F(GpuProbeTest, NoDeviceHandleIsUnavailable) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  set("FAKE_NVML_HANDLE_ERROR", "4");
  veda::GpuProbe probe;
  EXPECT_FALSE(probe.is_available());
  EXPECT_EQ(probe.unavailable_reason(), "GPU not available: Insufficient Permissions (4)");
  EXPECT_EQ(nvml_refcount(), base_refcount_);
}

TEST_F(GpuProbeTest, NotSupportedFieldsAreAbsent) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  set("FAKE_NVML_NOT_SUPPORTED", "temperature,power");
  veda::GpuProbe probe;
  const auto samples = probe.sample();
  ASSERT_EQ(samples.size(), 2U) << probe.unavailable_reason();
  for (const auto& s : samples) {
    EXPECT_FALSE(s.temperature_c.has_value());
    EXPECT_FALSE(s.power_w.has_value());
    EXPECT_TRUE(s.power_limit_w.has_value());
    EXPECT_TRUE(s.utilization_percent.has_value());
    EXPECT_TRUE(s.memory_used_mb.has_value());
    EXPECT_TRUE(s.sm_clock_mhz.has_value());
  }
  // Read at call time: lifting the switch brings the fields back.
  ::unsetenv("FAKE_NVML_NOT_SUPPORTED");
  EXPECT_EQ(probe.sample().at(0).temperature_c, 50.0);
  probe.shutdown();
}

TEST_F(GpuProbeTest, EveryFieldNotSupported) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  set("FAKE_NVML_NOT_SUPPORTED",
      "name,uuid,utilization,memory,memory_v2,temperature,power,power_limit,clock,processes");
  veda::GpuProbe probe;
  ASSERT_TRUE(probe.is_available()) << probe.unavailable_reason();
  const auto samples = probe.sample();
  ASSERT_EQ(samples.size(), 2U);
  const veda::GpuDeviceSample& s = samples[1];
  EXPECT_EQ(s.index, 1U);
  EXPECT_EQ(s.name, "");
  EXPECT_EQ(s.uuid, "");
  EXPECT_FALSE(s.utilization_percent || s.memory_utilization_percent || s.memory_used_mb ||
               s.memory_free_mb || s.memory_total_mb || s.memory_reserved_mb || s.temperature_c ||
               s.power_w || s.power_limit_w || s.sm_clock_mhz || s.process_memory_mb);
  probe.shutdown();
}

TEST_F(GpuProbeTest, MemoryV2FailureFallsBackToV1) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  set("FAKE_NVML_NOT_SUPPORTED", "memory_v2");
  veda::GpuProbe probe;
  const auto samples = probe.sample();
  ASSERT_EQ(samples.size(), 2U) << probe.unavailable_reason();
  // v1 used includes the reserved 256 MiB; reserved itself is unknown.
  EXPECT_EQ(samples[0].memory_used_mb, 4096.0 + 256.0);
  EXPECT_EQ(samples[0].memory_total_mb, 16384.0);
  EXPECT_EQ(samples[0].memory_free_mb, 16384.0 - 4096.0 - 256.0);
  EXPECT_FALSE(samples[0].memory_reserved_mb.has_value());
  probe.shutdown();
}

TEST_F(GpuProbeTest, LegacyLibraryUsesFallbackEntryPoints) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvmlLegacy);
  veda::GpuProbe probe;
  const auto samples = probe.sample();
  ASSERT_EQ(samples.size(), 2U) << probe.unavailable_reason();
  EXPECT_EQ(samples[0].memory_used_mb, 4096.0 + 256.0);  // v1 memory
  EXPECT_FALSE(samples[0].memory_reserved_mb.has_value());
  EXPECT_EQ(samples[0].power_limit_w, 350.0);      // PowerManagementLimit
  EXPECT_EQ(samples[0].process_memory_mb, 256.0);  // v1 process list
  EXPECT_EQ(samples[1].process_memory_mb, 0.0);
  EXPECT_EQ(samples[1].utilization_percent, 50.0);
  probe.shutdown();
  EXPECT_EQ(nvml_refcount(kFakeNvmlLegacy), 0);  // nothing else initialises it
}

TEST_F(GpuProbeTest, LongProcessListIsRetriedWithLargerBuffer) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  set("FAKE_NVML_EXTRA_PROCESSES", "1000");
  veda::GpuProbe probe;
  for (int round = 0; round < 2; ++round) {  // second round reuses the buffer
    const auto samples = probe.sample();
    ASSERT_EQ(samples.size(), 2U) << probe.unavailable_reason();
    EXPECT_EQ(samples[0].process_memory_mb, 256.0);
    EXPECT_EQ(samples[1].process_memory_mb, 0.0);
  }
  probe.shutdown();
}

TEST_F(GpuProbeTest, UnattributedProcessMemoryIsAbsent) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  set("FAKE_NVML_PROCESS_MEMORY_NA", "1");
  veda::GpuProbe probe;
  const auto samples = probe.sample();
  ASSERT_EQ(samples.size(), 2U) << probe.unavailable_reason();
  EXPECT_FALSE(samples[0].process_memory_mb.has_value());
  EXPECT_EQ(samples[1].process_memory_mb, 0.0);
  probe.shutdown();
}

TEST_F(GpuProbeTest, MissingRequiredSymbolIsNamed) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvmlNoUtilization);
  veda::GpuProbe probe;
  EXPECT_FALSE(probe.is_available());
  const std::string reason = probe.unavailable_reason();
  EXPECT_EQ(reason.rfind("GPU not available: ", 0), 0U) << reason;
  EXPECT_NE(reason.find("nvmlDeviceGetUtilizationRates"), std::string::npos) << reason;
  EXPECT_TRUE(probe.sample().empty());
  EXPECT_EQ(nvml_refcount(kFakeNvmlNoUtilization), 0);  // nvmlInit never ran
}

TEST_F(GpuProbeTest, MissingLibraryReportsDlerror) {
  const std::string path = "/nonexistent/dir/libnvidia-ml.so.1";
  set("PYVEDA_NVML_LIBRARY", path);
  veda::GpuProbe probe;
  EXPECT_FALSE(probe.is_available());
  EXPECT_EQ(probe.device_count(), 0U);
  EXPECT_TRUE(probe.sample().empty());
  const std::string reason = probe.unavailable_reason();
  EXPECT_EQ(reason.rfind("GPU not available: cannot load NVML: ", 0), 0U) << reason;
  EXPECT_NE(reason.find(path), std::string::npos) << reason;  // dlerror names the file
  probe.shutdown();
  probe.shutdown();  // idempotent
}

TEST_F(GpuProbeTest, NotALibraryIsUnavailable) {
  set("PYVEDA_NVML_LIBRARY", "/proc/self/status");
  veda::GpuProbe probe;
  EXPECT_FALSE(probe.is_available());
  EXPECT_NE(probe.unavailable_reason().find("cannot load NVML"), std::string::npos);
}

TEST_F(GpuProbeTest, ShutdownIsTerminalUntilInit) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  veda::GpuProbe probe;
  ASSERT_TRUE(probe.is_available()) << probe.unavailable_reason();
  probe.shutdown();
  EXPECT_FALSE(probe.is_available());
  EXPECT_EQ(probe.unavailable_reason(), "GPU probe shut down");
  EXPECT_EQ(probe.device_count(), 0U);
  EXPECT_TRUE(probe.sample().empty());
  EXPECT_EQ(nvml_refcount(), base_refcount_);

  EXPECT_TRUE(probe.init()) << probe.unavailable_reason();
  EXPECT_EQ(probe.sample().size(), 2U);
  EXPECT_TRUE(probe.init());  // idempotent while available
  EXPECT_EQ(nvml_refcount(), base_refcount_ + 1);
  probe.shutdown();
  EXPECT_EQ(nvml_refcount(), base_refcount_);
  EXPECT_EQ(nvml_uninitialised_calls(), base_uninitialised_);
}

TEST_F(GpuProbeTest, ShutdownWithoutInitMakesNoCall) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  veda::GpuProbe probe;
  probe.shutdown();
  EXPECT_FALSE(probe.is_available());
  EXPECT_EQ(nvml_refcount(), base_refcount_);
}

TEST_F(GpuProbeTest, DestructorMakesNoNvmlCall) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  {
    veda::GpuProbe probe;
    ASSERT_TRUE(probe.is_available()) << probe.unavailable_reason();
  }
  // No nvmlShutdown from the destructor: the init reference stays.
  EXPECT_EQ(nvml_refcount(), base_refcount_ + 1);
}

TEST_F(GpuProbeTest, ConcurrentFirstUseInitialisesOnce) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  veda::GpuProbe probe;
  std::atomic<bool> go{false};
  std::atomic<int> available{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      if (probe.is_available()) available.fetch_add(1);
    });
  }
  go.store(true);
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(available.load(), 8);
  EXPECT_EQ(nvml_refcount(), base_refcount_ + 1);
  probe.shutdown();
}

TEST_F(GpuProbeTest, ConcurrentSamplingWithShutdownAndReinit) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  veda::GpuProbe probe;
  ASSERT_TRUE(probe.init()) << probe.unavailable_reason();
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::atomic<int> full{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        const auto samples = probe.sample();
        if (samples.empty()) continue;  // shut down at that moment
        if (samples.size() != 2U || samples[1].sm_clock_mhz != 1510.0) {
          bad.fetch_add(1);
        } else {
          full.fetch_add(1);
        }
        (void)probe.device_count();
        (void)probe.unavailable_reason();
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    probe.shutdown();
    EXPECT_TRUE(probe.init());
    std::this_thread::yield();
  }
  // Let the samplers finish some rounds against a live probe.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (full.load() < 100 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_GE(full.load(), 100);
  stop.store(true);
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(bad.load(), 0);
  probe.shutdown();
  EXPECT_EQ(nvml_refcount(), base_refcount_);
  EXPECT_EQ(nvml_uninitialised_calls(), base_uninitialised_);  // no call outside init
}

TEST_F(GpuProbeTest, DefaultLibraryOnThisMachine) {
  veda::GpuProbe probe;  // libnvidia-ml.so.1 from the system, if any
  if (probe.is_available()) {
    EXPECT_GT(probe.device_count(), 0U);
    const auto samples = probe.sample();
    EXPECT_EQ(samples.size(), probe.device_count());
    for (const auto& s : samples) {
      if (s.utilization_percent) {
        EXPECT_GE(*s.utilization_percent, 0.0);
        EXPECT_LE(*s.utilization_percent, 100.0);
      }
      if (s.memory_used_mb && s.memory_total_mb) {
        EXPECT_LE(*s.memory_used_mb, *s.memory_total_mb);
      }
    }
  } else {
    EXPECT_EQ(probe.unavailable_reason().rfind("GPU not available: ", 0), 0U)
        << probe.unavailable_reason();
    EXPECT_EQ(probe.device_count(), 0U);
    EXPECT_TRUE(probe.sample().empty());
  }
  probe.shutdown();
}

TEST_F(CudaProbeTest, FakeDriverReportsDevicesAndCapabilities) {
  set("PYVEDA_CUDA_LIBRARY", kFakeCuda);
  veda::CudaProbe probe;
  ASSERT_TRUE(probe.is_available()) << probe.unavailable_reason();
  EXPECT_EQ(probe.unavailable_reason(), "");
  EXPECT_EQ(probe.device_count(), 2U);
  const auto cc0 = probe.compute_capability(0);
  ASSERT_TRUE(cc0.has_value());
  EXPECT_EQ(cc0->major, 9);
  EXPECT_EQ(cc0->minor, 0);
  const auto cc1 = probe.compute_capability(1);
  ASSERT_TRUE(cc1.has_value());
  EXPECT_EQ(cc1->major, 8);
  EXPECT_EQ(cc1->minor, 6);
  EXPECT_FALSE(probe.compute_capability(2).has_value());
}

TEST_F(CudaProbeTest, ContextMemoryOnlyWithCurrentContext) {
  set("PYVEDA_CUDA_LIBRARY", kFakeCuda);
  veda::CudaProbe probe;
  ASSERT_TRUE(probe.init()) << probe.unavailable_reason();
  EXPECT_FALSE(probe.context_memory().has_value());
  set("FAKE_CUDA_CONTEXT", "1");
  const auto memory = probe.context_memory();
  ASSERT_TRUE(memory.has_value());
  EXPECT_EQ(memory->free_bytes, std::uint64_t{12} << 30U);
  EXPECT_EQ(memory->total_bytes, std::uint64_t{16} << 30U);
}

TEST_F(CudaProbeTest, InitErrorUsesCuGetErrorString) {
  set("PYVEDA_CUDA_LIBRARY", kFakeCuda);
  set("FAKE_CUDA_INIT_ERROR", "100");
  veda::CudaProbe probe;
  EXPECT_FALSE(probe.is_available());
  EXPECT_EQ(probe.unavailable_reason(),
            "CUDA not available: no CUDA-capable device is detected (100)");
  EXPECT_EQ(probe.device_count(), 0U);
  EXPECT_FALSE(probe.compute_capability(0).has_value());
  EXPECT_FALSE(probe.context_memory().has_value());
}

TEST_F(CudaProbeTest, UnknownErrorCode) {
  set("PYVEDA_CUDA_LIBRARY", kFakeCuda);
  set("FAKE_CUDA_INIT_ERROR", "777");
  veda::CudaProbe probe;
  EXPECT_FALSE(probe.init());
  EXPECT_EQ(probe.unavailable_reason(), "CUDA not available: unknown CUDA error (777)");
}

TEST_F(CudaProbeTest, ZeroDevicesIsUnavailable) {
  set("PYVEDA_CUDA_LIBRARY", kFakeCuda);
  set("FAKE_CUDA_DEVICE_COUNT", "0");
  veda::CudaProbe probe;
  EXPECT_FALSE(probe.is_available());
  EXPECT_EQ(probe.unavailable_reason(), "CUDA not available: no CUDA devices");
}

TEST_F(CudaProbeTest, MissingRequiredSymbolIsNamed) {
  set("PYVEDA_CUDA_LIBRARY", kFakeCudaNoAttribute);
  veda::CudaProbe probe;
  EXPECT_FALSE(probe.is_available());
  EXPECT_NE(probe.unavailable_reason().find("cuDeviceGetAttribute"), std::string::npos)
      << probe.unavailable_reason();
}

TEST_F(CudaProbeTest, MissingLibrary) {
  set("PYVEDA_CUDA_LIBRARY", "/nonexistent/libcuda.so.1");
  veda::CudaProbe probe;
  EXPECT_FALSE(probe.is_available());
  EXPECT_NE(probe.unavailable_reason().find("/nonexistent/libcuda.so.1"), std::string::npos)
      << probe.unavailable_reason();
}

TEST_F(CudaProbeTest, ShutdownThenInit) {
  set("PYVEDA_CUDA_LIBRARY", kFakeCuda);
  veda::CudaProbe probe;
  ASSERT_TRUE(probe.is_available()) << probe.unavailable_reason();
  probe.shutdown();
  probe.shutdown();
  EXPECT_FALSE(probe.is_available());
  EXPECT_EQ(probe.unavailable_reason(), "CUDA probe shut down");
  EXPECT_FALSE(probe.compute_capability(0).has_value());
  EXPECT_TRUE(probe.init());
  EXPECT_TRUE(probe.compute_capability(0).has_value());
}

TEST_F(CudaProbeTest, ConcurrentQueries) {
  set("PYVEDA_CUDA_LIBRARY", kFakeCuda);
  veda::CudaProbe probe;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        const auto cc = probe.compute_capability(static_cast<unsigned>(i % 2));
        if (!cc || (cc->major != 9 && cc->major != 8)) bad.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(CudaProbeTest, DefaultLibraryOnThisMachine) {
  veda::CudaProbe probe;  // libcuda.so.1 from the system, if any
  if (probe.is_available()) {
    ASSERT_GT(probe.device_count(), 0U);
    const auto cc = probe.compute_capability(0);
    ASSERT_TRUE(cc.has_value());
    EXPECT_GE(cc->major, 3);
    // This thread never made a context current, and the probe creates none.
    EXPECT_FALSE(probe.context_memory().has_value());
  } else {
    EXPECT_EQ(probe.unavailable_reason().rfind("CUDA not available: ", 0), 0U)
        << probe.unavailable_reason();
  }
}

}  // namespace
