// Declarations shared by the binding translation units of pyveda._core.
#pragma once

#include <nanobind/nanobind.h>

#include "veda/metrics/exemplar.hpp"

namespace veda::bindings {

void init_metrics(nanobind::module_& m);
void init_future(nanobind::module_& m);
void init_runtime(nanobind::module_& m);
void init_gpu(nanobind::module_& m);
void init_tracing(nanobind::module_& m);

// The current span (the ContextVar that bindings/tracing.cpp owns) as an
// exemplar; false, `out` untouched, when no span is current.
bool current_span_exemplar(Exemplar& out);

}  // namespace veda::bindings
