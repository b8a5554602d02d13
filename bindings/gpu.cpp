// Bindings for GPU telemetry: per-device samples and the runtime's GpuMonitor.
//
// Every monitor method that may reach the driver (dlopen, nvmlInit, one NVML
// sample of each device, cuInit) runs with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bindings.hpp"
#include "veda/telemetry/gpu_telemetry.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace veda::bindings {

void init_gpu(nb::module_& m) {
  using Release = nb::call_guard<nb::gil_scoped_release>;

  nb::class_<CudaComputeCapability>(m, "CudaComputeCapability", "CUDA compute capability, e.g. 9.0.")
      .def_ro("major", &CudaComputeCapability::major)
      .def_ro("minor", &CudaComputeCapability::minor);

  nb::class_<GpuDeviceSample>(m, "GpuDeviceSample",
                              "One NVIDIA device as NVML reported it; None where the driver gave no reading.")
      .def(nb::init<>())
      .def_rw("index", &GpuDeviceSample::index, "NVML index (PCI bus order, as nvidia-smi).")
      .def_rw("name", &GpuDeviceSample::name)
      .def_rw("uuid", &GpuDeviceSample::uuid)
      .def_rw("utilization_percent", &GpuDeviceSample::utilization_percent)
      .def_rw("memory_utilization_percent", &GpuDeviceSample::memory_utilization_percent)
      .def_rw("memory_used_mb", &GpuDeviceSample::memory_used_mb,
              "NVML v2 used, MiB: excludes driver-reserved memory, as nvidia-smi's Used.")
      .def_rw("memory_free_mb", &GpuDeviceSample::memory_free_mb)
      .def_rw("memory_total_mb", &GpuDeviceSample::memory_total_mb)
      .def_rw("memory_reserved_mb", &GpuDeviceSample::memory_reserved_mb)
      .def_rw("temperature_c", &GpuDeviceSample::temperature_c)
      .def_rw("power_w", &GpuDeviceSample::power_w)
      .def_rw("power_limit_w", &GpuDeviceSample::power_limit_w)
      .def_rw("sm_clock_mhz", &GpuDeviceSample::sm_clock_mhz)
      .def_rw("process_memory_mb", &GpuDeviceSample::process_memory_mb);

  nb::class_<GpuDevice, GpuDeviceSample>(m, "GpuDevice", "A device sample with its CUDA compute capability.")
      .def_ro("compute_capability", &GpuDevice::compute_capability);

  nb::class_<GpuMemoryStats>(m, "GpuMemoryStats", "Used, free and total GPU memory, MiB (None: not reported).")
      .def_ro("used_mb", &GpuMemoryStats::used_mb)
      .def_ro("free_mb", &GpuMemoryStats::free_mb)
      .def_ro("total_mb", &GpuMemoryStats::total_mb);

  nb::class_<GpuMonitor>(m, "GpuMonitor", "The GPUs of this machine through NVML (and libcuda for compute capability).")
      .def(nb::init<>(), Release())
      .def(nb::init<std::string, std::string>(), "nvml_library"_a, "cuda_library"_a, Release())
      .def("init", &GpuMonitor::init, Release())
      .def("is_available", &GpuMonitor::is_available, Release())
      .def("unavailable_reason", &GpuMonitor::unavailable_reason, Release())
      .def("device_count", &GpuMonitor::device_count, Release())
      .def("sample", &GpuMonitor::sample, Release())
      .def("devices", &GpuMonitor::devices, Release())
      .def("utilization", &GpuMonitor::utilization, "device"_a.none() = nb::none(), Release(),
           "Utilization of one device, or the mean over all; IndexError for an unknown index.")
      .def("memory_stats", &GpuMonitor::memory_stats, "device"_a.none() = nb::none(), Release(),
           "Memory of one device, or the sums over all; IndexError for an unknown index.")
      .def("shutdown", &GpuMonitor::shutdown, Release());
}

}  // namespace veda::bindings
