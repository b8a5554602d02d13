// Declarations shared by the binding translation units of pyveda._core.
#pragma once

#include <nanobind/nanobind.h>

namespace veda::bindings {

void init_metrics(nanobind::module_& m);
void init_future(nanobind::module_& m);
void init_runtime(nanobind::module_& m);
void init_gpu(nanobind::module_& m);
void init_tracing(nanobind::module_& m);

}  // namespace veda::bindings
