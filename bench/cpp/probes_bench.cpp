// Cost of one probe sample. BM_GpuProbe_Sample measures the NVML named by
// PYVEDA_NVML_LIBRARY (the test fake, libveda_fake_nvml.so, in CI; the real
// libnvidia-ml.so.1 when unset) and is skipped when none is available.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "veda/probes/gpu.hpp"
#include "veda/probes/system.hpp"

namespace {

void BM_SystemProbe_Sample(benchmark::State& state) {
  static veda::SystemProbe probe;  // shared across threads (samples serialise)
  for (auto _ : state) {
    veda::SystemSample sample = probe.sample();
    benchmark::DoNotOptimize(sample);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SystemProbe_Sample)->Threads(1)->Threads(4)->UseRealTime();

// Baselines: the same four files with no parsing. Open/read/close each time
// (what a naive reader pays), and pread on kept descriptors (what the probe
// does), to show the probe's own cost on top of the kernel generating them.
void BM_SystemProbe_OpenReadCloseBaseline(benchmark::State& state) {
  static const char* const kFiles[] = {"/proc/stat", "/proc/meminfo", "/proc/self/statm",
                                       "/proc/self/stat"};
  char buffer[4096];
  for (auto _ : state) {
    for (const char* path : kFiles) {
      const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        state.SkipWithError("cannot open /proc");
        return;
      }
      benchmark::DoNotOptimize(::read(fd, buffer, sizeof buffer));
      ::close(fd);
    }
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_SystemProbe_OpenReadCloseBaseline);

void BM_SystemProbe_PreadBaseline(benchmark::State& state) {
  int fds[] = {::open("/proc/stat", O_RDONLY | O_CLOEXEC),
               ::open("/proc/meminfo", O_RDONLY | O_CLOEXEC),
               ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC),
               ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC)};
  char buffer[4096];
  for (auto _ : state) {
    for (const int fd : fds) benchmark::DoNotOptimize(::pread(fd, buffer, sizeof buffer, 0));
    benchmark::ClobberMemory();
  }
  for (const int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}
BENCHMARK(BM_SystemProbe_PreadBaseline);

void BM_GpuProbe_Sample(benchmark::State& state) {
  // Static: the destructor makes no NVML call, so exit-time destruction is safe.
  static veda::GpuProbe probe;
  if (!probe.is_available()) {
    const std::string message =
        "GPU probe unavailable (set PYVEDA_NVML_LIBRARY to the fake NVML): " +
        probe.unavailable_reason();
    state.SkipWithError(message.c_str());
    return;
  }
  for (auto _ : state) {
    auto samples = probe.sample();
    benchmark::DoNotOptimize(samples.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(probe.device_count()));
  state.counters["devices"] =
      benchmark::Counter(probe.device_count(), benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_GpuProbe_Sample)->Threads(1)->Threads(4)->UseRealTime();

}  // namespace
