// GPU telemetry: the aggregates, veda::GpuMonitor (against the fake NVML and
// CUDA libraries of tests/cpp/probes, through the real dlopen path),
// CudaProbe::uuid, TelemetrySystem's gpu_sampler (snapshot fields, per-device
// registry gauges, snapshot exposition) and Runtime with enable_gpu.
#include "veda/telemetry/gpu_telemetry.hpp"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "veda/metrics/registry.hpp"
#include "veda/runtime/runtime.hpp"
#include "veda/telemetry/telemetry.hpp"

#include "support/test_support.hpp"

#ifndef VEDA_FAKE_NVML
#error "VEDA_FAKE_NVML (path of the fake NVML library) must be defined by the build"
#endif

namespace veda {
namespace {

constexpr const char* kFakeNvml = VEDA_FAKE_NVML;
constexpr const char* kFakeCuda = VEDA_FAKE_CUDA;
constexpr const char* kFakeCudaNoUuid = VEDA_FAKE_CUDA_NO_UUID;
constexpr const char* kMissing = "/nonexistent/libveda-missing.so";

const char* const kEnvVars[] = {"PYVEDA_NVML_LIBRARY",     "PYVEDA_CUDA_LIBRARY",   "FAKE_NVML_DEVICE_COUNT",
                                "FAKE_NVML_INIT_ERROR",    "FAKE_NVML_NOT_SUPPORTED", "FAKE_CUDA_INIT_ERROR",
                                "FAKE_CUDA_DEVICE_COUNT",  "FAKE_CUDA_REVERSE_ORDER"};

using test::contains;
using test::fake_query;
using test::has_line;

int nvml_refcount() { return fake_query(kFakeNvml, "fake_nvml_init_refcount"); }
int nvml_uninitialised_calls() { return fake_query(kFakeNvml, "fake_nvml_uninitialised_calls"); }
int cuda_init_calls() { return fake_query(kFakeCuda, "fake_cuda_init_calls"); }

// A scripted device, independent of any driver.
GpuDeviceSample device(unsigned index, std::optional<double> utilization, std::optional<double> used,
                       std::optional<double> total = 16384.0) {
  GpuDeviceSample s;
  s.index = index;
  s.name = "GPU " + std::to_string(index);
  s.utilization_percent = utilization;
  s.memory_used_mb = used;
  s.memory_free_mb = used && total ? std::optional<double>(*total - *used) : std::nullopt;
  s.memory_total_mb = total;
  s.temperature_c = 40.0 + index;
  s.power_w = 100.0 + index;
  return s;
}

class GpuEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kEnvVars) ::unsetenv(name);
    pinned_ = ::dlopen(kFakeNvml, RTLD_NOW | RTLD_LOCAL);  // keeps the fake's counters alive
    ASSERT_NE(pinned_, nullptr) << ::dlerror();
    base_refcount_ = nvml_refcount();
    base_uninitialised_ = nvml_uninitialised_calls();
  }
  void TearDown() override {
    for (const char* name : kEnvVars) ::unsetenv(name);
    if (pinned_ != nullptr) ::dlclose(pinned_);
  }
  static void set(const char* name, const std::string& value) { ASSERT_EQ(::setenv(name, value.c_str(), 1), 0); }

  void* pinned_ = nullptr;
  int base_refcount_ = 0;
  int base_uninitialised_ = 0;
};

// --- aggregates ------------------------------------------------------------------

TEST(GpuAggregates, MeanUtilizationOverReportingDevices) {
  EXPECT_EQ(mean_gpu_utilization({}), std::nullopt);
  EXPECT_EQ(mean_gpu_utilization({device(0, 40.0, 1.0), device(1, 50.0, 1.0)}), 45.0);
  EXPECT_EQ(mean_gpu_utilization({device(0, 30.0, 1.0), device(1, std::nullopt, 1.0), device(2, 60.0, 1.0)}), 45.0);
  EXPECT_EQ(mean_gpu_utilization({device(0, std::nullopt, 1.0)}), std::nullopt);
  EXPECT_EQ(mean_gpu_utilization({device(0, 0.0, 1.0)}), 0.0);  // a real zero stays a reading
}

TEST(GpuAggregates, MemorySumsOverReportingDevices) {
  const GpuMemoryStats none = sum_gpu_memory({});
  EXPECT_FALSE(none.used_mb || none.free_mb || none.total_mb);

  const GpuMemoryStats both = sum_gpu_memory({device(0, 1.0, 4096.0), device(1, 1.0, 5120.0)});
  EXPECT_EQ(both.used_mb, 9216.0);
  EXPECT_EQ(both.free_mb, 32768.0 - 9216.0);
  EXPECT_EQ(both.total_mb, 32768.0);

  const GpuMemoryStats partial =
      sum_gpu_memory({device(0, 1.0, 1000.0), device(1, 1.0, std::nullopt, std::nullopt)});
  EXPECT_EQ(partial.used_mb, 1000.0);
  EXPECT_EQ(partial.total_mb, 16384.0);

  const GpuMemoryStats missing = sum_gpu_memory({device(0, 1.0, std::nullopt, std::nullopt)});
  EXPECT_FALSE(missing.used_mb || missing.free_mb || missing.total_mb);
}

// --- GpuMonitor -------------------------------------------------------------------

using GpuMonitorTest = GpuEnv;

TEST_F(GpuMonitorTest, AvailableWithFakeNvml) {
  GpuMonitor monitor(kFakeNvml, kMissing);
  ASSERT_TRUE(monitor.init()) << monitor.unavailable_reason();
  EXPECT_TRUE(monitor.is_available());
  EXPECT_EQ(monitor.unavailable_reason(), "");
  EXPECT_EQ(monitor.device_count(), 2U);
  const auto samples = monitor.sample();
  ASSERT_EQ(samples.size(), 2U);
  EXPECT_EQ(samples[1].utilization_percent, 50.0);

  const auto devices = monitor.devices();
  ASSERT_EQ(devices.size(), 2U);
  EXPECT_EQ(devices[0].name, "Fake NVML GPU 0");
  EXPECT_EQ(devices[1].memory_used_mb, 5120.0);
  EXPECT_FALSE(devices[0].compute_capability.has_value());  // no libcuda
  EXPECT_FALSE(monitor.cuda().is_available());

  monitor.shutdown();
  EXPECT_EQ(nvml_refcount(), base_refcount_);
  EXPECT_EQ(nvml_uninitialised_calls(), base_uninitialised_);
}

TEST_F(GpuMonitorTest, UtilizationAndMemoryPerDeviceAndAggregated) {
  GpuMonitor monitor(kFakeNvml, kMissing);
  EXPECT_EQ(monitor.utilization(), 45.0);
  EXPECT_EQ(monitor.utilization(0), 40.0);
  EXPECT_EQ(monitor.utilization(1), 50.0);
  const GpuMemoryStats total = monitor.memory_stats();
  EXPECT_EQ(total.used_mb, 9216.0);
  EXPECT_EQ(total.free_mb, 12032.0 + 11008.0);
  EXPECT_EQ(total.total_mb, 32768.0);
  const GpuMemoryStats one = monitor.memory_stats(1);
  EXPECT_EQ(one.used_mb, 5120.0);
  EXPECT_EQ(one.free_mb, 11008.0);
  EXPECT_EQ(one.total_mb, 16384.0);
  monitor.shutdown();
}

TEST_F(GpuMonitorTest, UnknownIndexThrowsOutOfRangeNamingValidIndexes) {
  GpuMonitor monitor(kFakeNvml, kMissing);
  for (long long bad : {2LL, 100LL, -1LL}) {
    SCOPED_TRACE(bad);
    try {
      monitor.utilization(bad);
      ADD_FAILURE() << "no exception";
    } catch (const std::out_of_range& e) {
      EXPECT_EQ(std::string(e.what()),
                "GPU device " + std::to_string(bad) + " does not exist: device indexes are 0, 1");
    }
    EXPECT_THROW(monitor.memory_stats(bad), std::out_of_range);
  }
  monitor.shutdown();
}

TEST_F(GpuMonitorTest, UnavailableReadsEmptyAndIndexErrorsGiveTheReason) {
  GpuMonitor monitor(kMissing, kMissing);
  EXPECT_FALSE(monitor.init());
  EXPECT_FALSE(monitor.is_available());
  EXPECT_EQ(monitor.unavailable_reason().rfind("GPU not available: cannot load NVML: ", 0), 0U)
      << monitor.unavailable_reason();
  EXPECT_EQ(monitor.device_count(), 0U);
  EXPECT_TRUE(monitor.sample().empty());
  EXPECT_TRUE(monitor.devices().empty());
  EXPECT_EQ(monitor.utilization(), std::nullopt);
  const GpuMemoryStats stats = monitor.memory_stats();
  EXPECT_FALSE(stats.used_mb || stats.free_mb || stats.total_mb);
  try {
    monitor.utilization(0);
    ADD_FAILURE() << "no exception";
  } catch (const std::out_of_range& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("GPU device 0 does not exist: no GPU is available (GPU not available: cannot load NVML", 0),
              0U)
        << what;
  }
}

TEST_F(GpuMonitorTest, InitErrorIsAState) {
  set("FAKE_NVML_INIT_ERROR", "9");
  GpuMonitor monitor(kFakeNvml, kMissing);
  EXPECT_FALSE(monitor.is_available());
  EXPECT_EQ(monitor.unavailable_reason(), "GPU not available: Driver Not Loaded (9)");
  EXPECT_EQ(monitor.utilization(), std::nullopt);
  EXPECT_EQ(nvml_refcount(), base_refcount_);
}

TEST_F(GpuMonitorTest, ComputeCapabilityMatchedByUuid) {
  {
    GpuMonitor monitor(kFakeNvml, kFakeCuda);
    const auto devices = monitor.devices();
    ASSERT_EQ(devices.size(), 2U);
    ASSERT_TRUE(devices[0].compute_capability.has_value());
    EXPECT_EQ(devices[0].compute_capability->major, 9);
    EXPECT_EQ(devices[0].compute_capability->minor, 0);
    ASSERT_TRUE(devices[1].compute_capability.has_value());
    EXPECT_EQ(devices[1].compute_capability->major, 8);
    EXPECT_EQ(devices[1].compute_capability->minor, 6);
    monitor.shutdown();
  }
  {
    // CUDA orders devices differently from NVML: ordinal 0 (9.0) is NVML device 1.
    set("FAKE_CUDA_REVERSE_ORDER", "1");
    GpuMonitor monitor(kFakeNvml, kFakeCuda);
    const auto devices = monitor.devices();
    ASSERT_EQ(devices.size(), 2U);
    ASSERT_TRUE(devices[0].compute_capability && devices[1].compute_capability);
    EXPECT_EQ(devices[0].compute_capability->major, 8);
    EXPECT_EQ(devices[1].compute_capability->major, 9);
    monitor.shutdown();
  }
}

TEST_F(GpuMonitorTest, ComputeCapabilityOnlyForDevicesCudaSees) {
  set("FAKE_CUDA_DEVICE_COUNT", "1");
  GpuMonitor monitor(kFakeNvml, kFakeCuda);
  const auto devices = monitor.devices();
  ASSERT_EQ(devices.size(), 2U);
  EXPECT_TRUE(devices[0].compute_capability.has_value());
  EXPECT_FALSE(devices[1].compute_capability.has_value());
  monitor.shutdown();
}

TEST_F(GpuMonitorTest, NoCudaUuidMeansNoComputeCapability) {
  GpuMonitor monitor(kFakeNvml, kFakeCudaNoUuid);
  const auto devices = monitor.devices();
  ASSERT_EQ(devices.size(), 2U);
  EXPECT_TRUE(monitor.cuda().is_available());
  EXPECT_FALSE(devices[0].compute_capability || devices[1].compute_capability);
  EXPECT_EQ(monitor.cuda().uuid(0), std::nullopt);
  monitor.shutdown();
}

TEST_F(GpuMonitorTest, CudaIsNotLoadedUntilDevicesIsCalled) {
  set("FAKE_CUDA_INIT_ERROR", "100");
  const int before = cuda_init_calls();
  GpuMonitor monitor(kFakeNvml, kFakeCuda);
  ASSERT_TRUE(monitor.init());
  monitor.sample();
  monitor.utilization();
  monitor.memory_stats(0);
  EXPECT_EQ(cuda_init_calls(), before);  // NVML readings never touch CUDA
  const auto devices = monitor.devices();
  EXPECT_EQ(cuda_init_calls(), before + 1);
  EXPECT_FALSE(devices[0].compute_capability.has_value());
  EXPECT_EQ(monitor.cuda().unavailable_reason(), "CUDA not available: no CUDA-capable device is detected (100)");
  monitor.shutdown();
}

TEST_F(GpuMonitorTest, ShutdownMakesItUnavailable) {
  GpuMonitor monitor(kFakeNvml, kFakeCuda);
  ASSERT_TRUE(monitor.init());
  EXPECT_EQ(nvml_refcount(), base_refcount_ + 1);
  monitor.shutdown();
  monitor.shutdown();  // idempotent
  EXPECT_EQ(nvml_refcount(), base_refcount_);
  EXPECT_FALSE(monitor.is_available());
  EXPECT_EQ(monitor.unavailable_reason(), "GPU probe shut down");
  EXPECT_TRUE(monitor.sample().empty());
  EXPECT_EQ(monitor.utilization(), std::nullopt);
  EXPECT_FALSE(monitor.cuda().is_available());
  EXPECT_EQ(nvml_uninitialised_calls(), base_uninitialised_);
}

TEST_F(GpuMonitorTest, ConcurrentQueriesAndShutdown) {
  GpuMonitor monitor(kFakeNvml, kFakeCuda);
  ASSERT_TRUE(monitor.init());
  std::atomic<bool> go{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < 300; ++i) {
        const auto u = monitor.utilization();
        if (u && *u != 45.0) bad.fetch_add(1);
        const auto devices = monitor.devices();
        if (!devices.empty() && devices.size() != 2U) bad.fetch_add(1);
        try {
          const auto m = monitor.memory_stats(1);
          if (m.used_mb && *m.used_mb != 5120.0) bad.fetch_add(1);
        } catch (const std::out_of_range&) {
          // after shutdown: no device 1
        }
      }
    });
  }
  go.store(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  monitor.shutdown();
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(nvml_refcount(), base_refcount_);
  EXPECT_EQ(nvml_uninitialised_calls(), base_uninitialised_);
}

TEST_F(GpuMonitorTest, CudaUuidInNvmlSpelling) {
  CudaProbe cuda(kFakeCuda);
  EXPECT_EQ(cuda.uuid(0), "GPU-fa4e0000-0000-0000-0000-000000000000");
  EXPECT_EQ(cuda.uuid(1), "GPU-fa4e0000-0000-0000-0000-000000000001");
  EXPECT_EQ(cuda.uuid(2), std::nullopt);  // out of range
  set("FAKE_CUDA_REVERSE_ORDER", "1");
  EXPECT_EQ(cuda.uuid(0), "GPU-fa4e0000-0000-0000-0000-000000000001");
  cuda.shutdown();
  EXPECT_EQ(cuda.uuid(0), std::nullopt);
  CudaProbe missing(kMissing);
  EXPECT_EQ(missing.uuid(0), std::nullopt);
}

// --- TelemetrySystem with a gpu_sampler -----------------------------------------

TelemetryOptions with_sampler(std::function<std::vector<GpuDeviceSample>()> sampler) {
  TelemetryOptions options;
  options.gpu_sampler = std::move(sampler);
  return options;
}

std::vector<std::string> gpu_lines(const std::string& text, const std::string& family) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    if (line.rfind(family + "{", 0) == 0 || line.rfind(family + " ", 0) == 0) out.push_back(line);
    start = end + 1;
  }
  return out;
}

TEST(GpuTelemetry, SnapshotFillsGpuFields) {
  Registry registry;
  TelemetrySystem telemetry(with_sampler([] {
                              return std::vector<GpuDeviceSample>{device(0, 40.0, 4096.0), device(1, 50.0, 5120.0)};
                            }),
                            registry);
  const MetricsSnapshot s = telemetry.snapshot();
  EXPECT_EQ(s.gpu_utilization_percent, 45.0);
  EXPECT_EQ(s.gpu_memory_used_mb, 9216.0);
  ASSERT_EQ(s.gpus.size(), 2U);
  EXPECT_EQ(s.gpus[1].name, "GPU 1");
}

TEST(GpuTelemetry, NoSamplerMeansNoGpuFieldsOrFamilies) {
  Registry registry;
  TelemetrySystem telemetry({}, registry);
  const MetricsSnapshot s = telemetry.snapshot();
  EXPECT_FALSE(s.gpu_utilization_percent || s.gpu_memory_used_mb);
  EXPECT_TRUE(s.gpus.empty());
  EXPECT_FALSE(contains(registry.render_prometheus(), "pyveda_gpu"));
  EXPECT_FALSE(contains(render_snapshot_prometheus(s), "pyveda_gpu"));
}

TEST(GpuTelemetry, EmptyOrThrowingSamplerMeansNoGpuData) {
  Registry registry;
  {
    TelemetrySystem telemetry(with_sampler([] { return std::vector<GpuDeviceSample>{}; }), registry);
    const MetricsSnapshot s = telemetry.snapshot();
    EXPECT_FALSE(s.gpu_utilization_percent || s.gpu_memory_used_mb);
    EXPECT_FALSE(contains(registry.render_prometheus(), "pyveda_gpu"));  // not even HELP lines
  }
  {
    TelemetrySystem telemetry(
        with_sampler([]() -> std::vector<GpuDeviceSample> { throw std::runtime_error("driver fell over"); }), registry);
    const MetricsSnapshot s = telemetry.snapshot();
    EXPECT_FALSE(s.gpu_utilization_percent || s.gpu_memory_used_mb);
    EXPECT_TRUE(s.gpus.empty());
  }
}

TEST(GpuTelemetry, RegistryCarriesPerDeviceGaugesUpdatedEachSnapshot) {
  Registry registry;
  std::atomic<int> calls{0};
  TelemetrySystem telemetry(with_sampler([&calls] {
                              const double bump = calls.fetch_add(1);
                              return std::vector<GpuDeviceSample>{device(0, 40.0 + bump, 4096.0),
                                                                  device(1, 50.0, 5120.0)};
                            }),
                            registry);
  EXPECT_FALSE(contains(registry.render_prometheus(), "pyveda_gpu"));  // registered on first data
  telemetry.snapshot();
  std::string text = registry.render_prometheus();
  EXPECT_TRUE(has_line(text, "# TYPE pyveda_gpu_utilization_percent gauge")) << text;
  EXPECT_TRUE(has_line(text, R"(pyveda_gpu_utilization_percent{gpu="0",name="GPU 0"} 40)")) << text;
  EXPECT_TRUE(has_line(text, R"(pyveda_gpu_utilization_percent{gpu="1",name="GPU 1"} 50)")) << text;
  EXPECT_TRUE(has_line(text, R"(pyveda_gpu_memory_used_mb{gpu="1",name="GPU 1"} 5120)")) << text;
  EXPECT_TRUE(has_line(text, R"(pyveda_gpu_memory_total_mb{gpu="0",name="GPU 0"} 16384)")) << text;
  EXPECT_TRUE(has_line(text, R"(pyveda_gpu_temperature_celsius{gpu="1",name="GPU 1"} 41)")) << text;
  EXPECT_TRUE(has_line(text, R"(pyveda_gpu_power_watts{gpu="0",name="GPU 0"} 100)")) << text;
  telemetry.snapshot();
  text = registry.render_prometheus();
  EXPECT_TRUE(has_line(text, R"(pyveda_gpu_utilization_percent{gpu="0",name="GPU 0"} 41)")) << text;
}

TEST(GpuTelemetry, MissingReadingsRemoveTheirSeries) {
  Registry registry;
  std::atomic<int> phase{0};
  TelemetrySystem telemetry(with_sampler([&phase] {
                              switch (phase.load()) {
                                case 0:
                                  return std::vector<GpuDeviceSample>{device(0, 40.0, 4096.0), device(1, 50.0, 5120.0)};
                                case 1: {
                                  GpuDeviceSample d1 = device(1, std::nullopt, 5120.0);
                                  d1.temperature_c.reset();
                                  return std::vector<GpuDeviceSample>{device(0, 40.0, 4096.0), d1};
                                }
                                case 2:
                                  return std::vector<GpuDeviceSample>{device(0, 40.0, 4096.0)};
                                default:
                                  return std::vector<GpuDeviceSample>{};
                              }
                            }),
                            registry);
  telemetry.snapshot();
  EXPECT_EQ(gpu_lines(registry.render_prometheus(), "pyveda_gpu_utilization_percent").size(), 2U);

  phase = 1;
  telemetry.snapshot();
  std::string text = registry.render_prometheus();
  EXPECT_EQ(gpu_lines(text, "pyveda_gpu_utilization_percent"),
            std::vector<std::string>{R"(pyveda_gpu_utilization_percent{gpu="0",name="GPU 0"} 40)"});
  EXPECT_EQ(gpu_lines(text, "pyveda_gpu_temperature_celsius").size(), 1U);
  EXPECT_EQ(gpu_lines(text, "pyveda_gpu_memory_used_mb").size(), 2U);

  phase = 2;  // device 1 gone altogether
  telemetry.snapshot();
  text = registry.render_prometheus();
  EXPECT_EQ(gpu_lines(text, "pyveda_gpu_memory_used_mb"),
            std::vector<std::string>{R"(pyveda_gpu_memory_used_mb{gpu="0",name="GPU 0"} 4096)"});

  phase = 3;  // probe shut down
  const MetricsSnapshot s = telemetry.snapshot();
  EXPECT_FALSE(s.gpu_utilization_percent.has_value());
  text = registry.render_prometheus();
  for (const char* family : {"pyveda_gpu_utilization_percent", "pyveda_gpu_memory_used_mb", "pyveda_gpu_memory_total_mb",
                             "pyveda_gpu_temperature_celsius", "pyveda_gpu_power_watts"}) {
    EXPECT_TRUE(gpu_lines(text, family).empty()) << family << "\n" << text;
  }
}

TEST(GpuTelemetry, NewTelemetryWithoutGpuRemovesStaleGpuFamilies) {
  Registry registry;
  {
    TelemetrySystem with_gpu(with_sampler([] { return std::vector<GpuDeviceSample>{device(0, 1.0, 1.0)}; }),
                             registry);
    with_gpu.snapshot();
    EXPECT_TRUE(contains(registry.render_prometheus(), "pyveda_gpu_utilization_percent{"));
  }
  TelemetrySystem without_gpu({}, registry);
  EXPECT_FALSE(contains(registry.render_prometheus(), "pyveda_gpu"));
}

TEST(GpuTelemetry, SnapshotExpositionHasPerDeviceSeries) {
  MetricsSnapshot s;
  s.gpus = {device(0, 40.0, 4096.0), device(1, std::nullopt, 5120.0)};
  s.gpus[1].power_w.reset();
  s.gpu_utilization_percent = mean_gpu_utilization(s.gpus);
  s.gpu_memory_used_mb = sum_gpu_memory(s.gpus).used_mb;
  const std::string text = render_snapshot_prometheus(s);
  EXPECT_EQ(gpu_lines(text, "pyveda_gpu_utilization_percent"),
            std::vector<std::string>{R"(pyveda_gpu_utilization_percent{gpu="0",name="GPU 0"} 40)"});
  EXPECT_EQ(gpu_lines(text, "pyveda_gpu_memory_used_mb"),
            (std::vector<std::string>{R"(pyveda_gpu_memory_used_mb{gpu="0",name="GPU 0"} 4096)",
                                      R"(pyveda_gpu_memory_used_mb{gpu="1",name="GPU 1"} 5120)"}));
  EXPECT_EQ(gpu_lines(text, "pyveda_gpu_power_watts").size(), 1U);
  EXPECT_EQ(gpu_lines(text, "pyveda_gpu_temperature_celsius").size(), 2U);
  EXPECT_EQ(gpu_lines(text, "pyveda_gpu_memory_total_mb").size(), 2U);
  // One TYPE line per family: no unlabelled total beside the per-device series.
  EXPECT_EQ(text.find("# TYPE pyveda_gpu_utilization_percent gauge"),
            text.rfind("# TYPE pyveda_gpu_utilization_percent gauge"));
  EXPECT_FALSE(contains(text, "pyveda_gpu_utilization_percent 40"));
}

TEST(GpuTelemetry, LabelValuesAreEscaped) {
  MetricsSnapshot s;
  s.gpus = {device(0, 1.0, 1.0)};
  s.gpus[0].name = "Odd \"GPU\"\\";
  const std::string text = render_snapshot_prometheus(s);
  EXPECT_TRUE(has_line(text, R"(pyveda_gpu_utilization_percent{gpu="0",name="Odd \"GPU\"\\"} 1)")) << text;
}

TEST(GpuTelemetry, ConcurrentSnapshotsWithGpu) {
  Registry registry;
  TelemetrySystem telemetry(with_sampler([] {
                              return std::vector<GpuDeviceSample>{device(0, 40.0, 4096.0), device(1, 50.0, 5120.0)};
                            }),
                            registry);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        const MetricsSnapshot s = telemetry.snapshot();
        if (s.gpu_utilization_percent != 45.0 || s.gpus.size() != 2U) bad.fetch_add(1);
        if (i % 20 == 0 && gpu_lines(registry.render_prometheus(), "pyveda_gpu_power_watts").size() != 2U) {
          bad.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

// --- Runtime with enable_gpu ----------------------------------------------------

using RuntimeGpuTest = GpuEnv;

RuntimeOptions gpu_options(bool telemetry = true) {
  RuntimeOptions options;
  options.num_threads = 1;
  options.enable_telemetry = telemetry;
  options.enable_gpu = true;
  return options;
}

TEST_F(RuntimeGpuTest, DisabledByDefault) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  Registry registry;
  RuntimeOptions options;
  options.num_threads = 1;
  options.enable_telemetry = true;
  Runtime runtime(options, registry);
  EXPECT_EQ(runtime.gpu(), nullptr);
  const MetricsSnapshot s = runtime.telemetry()->snapshot();
  EXPECT_FALSE(s.gpu_utilization_percent || s.gpu_memory_used_mb);
  EXPECT_EQ(nvml_refcount(), base_refcount_);  // NVML never initialised
}

TEST_F(RuntimeGpuTest, EnabledFillsSnapshotsAndShutdownReleasesNvml) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  Registry registry;
  Runtime runtime(gpu_options(), registry);
  ASSERT_NE(runtime.gpu(), nullptr);
  EXPECT_TRUE(runtime.gpu()->is_available()) << runtime.gpu()->unavailable_reason();
  EXPECT_EQ(nvml_refcount(), base_refcount_ + 1);  // initialised by the constructor
  const MetricsSnapshot s = runtime.telemetry()->snapshot();
  EXPECT_EQ(s.gpu_utilization_percent, 45.0);
  EXPECT_EQ(s.gpu_memory_used_mb, 9216.0);
  ASSERT_EQ(s.gpus.size(), 2U);
  EXPECT_EQ(s.gpus[0].uuid, "GPU-fa4e0000-0000-0000-0000-000000000000");
  EXPECT_TRUE(contains(registry.render_prometheus(), R"(pyveda_gpu_utilization_percent{gpu="1",name="Fake NVML GPU 1"} 50)"));

  runtime.shutdown();
  EXPECT_EQ(nvml_refcount(), base_refcount_);
  EXPECT_FALSE(runtime.gpu()->is_available());
  const MetricsSnapshot after = runtime.telemetry()->snapshot();
  EXPECT_FALSE(after.gpu_utilization_percent.has_value());
  EXPECT_TRUE(after.gpus.empty());
  EXPECT_EQ(nvml_uninitialised_calls(), base_uninitialised_);
}

TEST_F(RuntimeGpuTest, GpuWithoutTelemetry) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  Registry registry;
  Runtime runtime(gpu_options(false), registry);
  EXPECT_EQ(runtime.telemetry(), nullptr);
  ASSERT_NE(runtime.gpu(), nullptr);
  EXPECT_EQ(runtime.gpu()->utilization(1), 50.0);
  runtime.shutdown();
}

TEST_F(RuntimeGpuTest, UnavailableGpuStillStarts) {
  set("PYVEDA_NVML_LIBRARY", kMissing);
  Registry registry;
  Runtime runtime(gpu_options(), registry);
  ASSERT_NE(runtime.gpu(), nullptr);
  EXPECT_FALSE(runtime.gpu()->is_available());
  EXPECT_NE(runtime.gpu()->unavailable_reason().find("cannot load NVML"), std::string::npos);
  const MetricsSnapshot s = runtime.telemetry()->snapshot();
  EXPECT_FALSE(s.gpu_utilization_percent || s.gpu_memory_used_mb);
  EXPECT_FALSE(contains(render_snapshot_prometheus(s), "pyveda_gpu"));
  EXPECT_FALSE(contains(registry.render_prometheus(), "pyveda_gpu"));
}

TEST_F(RuntimeGpuTest, DestructorMakesNoNvmlCall) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  Registry registry;
  {
    Runtime runtime(gpu_options(), registry);
    runtime.telemetry()->snapshot();
    EXPECT_EQ(nvml_refcount(), base_refcount_ + 1);
  }
  // No nvmlShutdown from the destructor (it may run at exit): NVML stays initialised.
  EXPECT_EQ(nvml_refcount(), base_refcount_ + 1);
  EXPECT_EQ(nvml_uninitialised_calls(), base_uninitialised_);
}

TEST_F(RuntimeGpuTest, CollectorSamplesGpuWhileQueried) {
  set("PYVEDA_NVML_LIBRARY", kFakeNvml);
  Registry registry;
  RuntimeOptions options = gpu_options();
  options.collect_interval_s = 0.001;
  Runtime runtime(options, registry);
  runtime.telemetry()->start();
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(runtime.gpu()->utilization(), 45.0);
  }
  runtime.shutdown();  // stops the collector, then releases NVML
  const auto history = runtime.telemetry()->snapshots();
  for (const MetricsSnapshot& s : history) EXPECT_EQ(s.gpu_memory_used_mb, 9216.0);
  EXPECT_EQ(nvml_refcount(), base_refcount_);
}

}  // namespace
}  // namespace veda
