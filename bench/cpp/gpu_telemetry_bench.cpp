// What GPU telemetry costs: one snapshot with the GPU sampler off (arg 0, the
// baseline) and on (arg 1), and one GpuMonitor::devices() call. The GPU is
// the NVML named by PYVEDA_NVML_LIBRARY (the fake, libveda_fake_nvml.so, in
// the ctest smoke run; the real libnvidia-ml.so.1 when unset); the cases are
// skipped when none is available. BM_GpuProbe_Sample (probes_bench.cpp) is
// the bare probe.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "veda/metrics/registry.hpp"
#include "veda/telemetry/gpu_telemetry.hpp"
#include "veda/telemetry/telemetry.hpp"

namespace {

// Static: the destructor makes no driver call, so exit-time destruction is safe.
veda::GpuMonitor& monitor() {
  static veda::GpuMonitor m;
  return m;
}

bool skip_without_gpu(benchmark::State& state) {
  if (monitor().is_available()) return false;
  const std::string message =
      "GPU unavailable (set PYVEDA_NVML_LIBRARY to the fake NVML): " + monitor().unavailable_reason();
  state.SkipWithError(message.c_str());
  return true;
}

void BM_Telemetry_SnapshotGpu(benchmark::State& state) {
  const bool gpu = state.range(0) != 0;
  if (gpu && skip_without_gpu(state)) return;
  static veda::Registry registry;  // apart from the default one
  veda::TelemetryOptions options;
  if (gpu) options.gpu_sampler = [] { return monitor().sample(); };
  veda::TelemetrySystem telemetry(options, registry);
  for (int i = 0; i < 10000; ++i) telemetry.on_task_end(1000 + i, 5000 + 7 * i, true);
  for (auto _ : state) {
    veda::MetricsSnapshot s = telemetry.snapshot();
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["devices"] = gpu ? monitor().device_count() : 0;
}
BENCHMARK(BM_Telemetry_SnapshotGpu)->ArgName("gpu")->Arg(0)->Arg(1);

// sample() plus the CUDA compute capability of each device.
void BM_GpuMonitor_Devices(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  for (auto _ : state) {
    auto devices = monitor().devices();
    benchmark::DoNotOptimize(devices.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(monitor().device_count()));
}
BENCHMARK(BM_GpuMonitor_Devices);

}  // namespace
