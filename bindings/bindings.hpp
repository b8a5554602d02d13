// Declarations shared by the binding translation units of pyveda._core.
#pragma once

#include <nanobind/nanobind.h>

#include "veda/tracing/span.hpp"

namespace veda::bindings {

// A Python mapping of OTLP attributes (None: none) as core Attributes, checked
// whole first; TypeError/ValueError name the key and the rule (tracing.cpp).
Attributes attributes_from_python(PyObject* mapping);

void init_metrics(nanobind::module_& m);
void init_runtime(nanobind::module_& m);
void init_gpu(nanobind::module_& m);
void init_tracing(nanobind::module_& m);

}  // namespace veda::bindings
