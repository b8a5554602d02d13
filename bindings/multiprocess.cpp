// pyveda._core's multi-process functions (veda/metrics/multiprocess.hpp).
#include "veda/metrics/multiprocess.hpp"

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "veda/telemetry/telemetry.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace veda::bindings {

void warn_multiprocess() {
  for (const std::string& message : multiprocess::take_warnings()) {
    if (PyErr_WarnEx(PyExc_RuntimeWarning, ("pyveda: " + message).c_str(), 1) != 0) throw nb::python_error();
  }
}

void init_multiprocess(nb::module_& m) {
  m.def(
      "multiprocess_enable",
      [](std::string directory, std::string service, std::size_t file_bytes, bool pid_label) {
        multiprocess::enable({std::move(directory), std::move(service), file_bytes, pid_label});
      },
      "directory"_a, "service"_a = "", "file_bytes"_a = std::size_t{256} << 20, "pid_label"_a = false,
      "Records every family created from now on into this process's file in `directory` (and makes the "
      "default registry render the aggregate). ValueError for a missing directory or another one than "
      "before, RuntimeError when the file cannot be created.");
  m.def("multiprocess_enabled", &multiprocess::enabled);
  m.def("multiprocess_directory", &multiprocess::directory);
  m.def("multiprocess_process_file", &multiprocess::process_file);
  m.def(
      "multiprocess_mark_process_dead",
      [](const std::string& directory, std::int64_t pid) {
        std::size_t folded;
        {
          nb::gil_scoped_release release;
          folded = multiprocess::mark_process_dead(directory, pid);
        }
        warn_multiprocess();
        return folded;
      },
      "directory"_a, "pid"_a, "Folds the files of process `pid` into the archive if it has exited; the count folded.");
  m.def(
      "runtime_snapshot_of",
      [](const Registry& registry) {
        MetricsSnapshot snapshot;
        {
          nb::gil_scoped_release release;
          const double now =
              std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
          snapshot = from_families(registry.collect(), now);
        }
        warn_multiprocess();
        return snapshot;
      },
      "registry"_a,
      "The runtime's figures as `registry` collects them (in multi-process mode: every process's runtimes "
      "summed), as a MetricsSnapshot.");
  m.def(
      "multiprocess_series_bytes",
      [](std::string_view kind, std::size_t classic_bounds) {
        if (kind == "counter") return multiprocess::counter_series_bytes();
        if (kind == "gauge") return multiprocess::gauge_series_bytes();
        if (kind == "histogram") return multiprocess::histogram_series_bytes(classic_bounds);
        throw nb::value_error("kind must be 'counter', 'gauge' or 'histogram'");
      },
      "kind"_a, "classic_bounds"_a = 0, "Bytes of a process's file one series' values take.");
}

}  // namespace veda::bindings
