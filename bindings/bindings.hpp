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
void init_instruments(nanobind::module_& m);  // after init_metrics
void init_states(nanobind::module_& m);
void init_multiprocess(nanobind::module_& m);
void init_attribute_recorder(nanobind::module_& m);  // after init_metrics

// Turns what the multi-process aggregate queued (veda::multiprocess::take_warnings())
// into Python RuntimeWarnings; call with the GIL held after collecting.
void warn_multiprocess();

// The current span (the ContextVar that bindings/tracing.cpp owns) as an
// exemplar; false, `out` untouched, when no span is current.
bool current_span_exemplar(Exemplar& out);

// Raw CPython methods (METH_FASTCALL, METH_O, METH_NOARGS) are specialised by
// the interpreter only when called on an object of exactly their own type:
// registers `defs` (a null-terminated table in base's tp_methods) for
// _core._own_fast_methods(cls), which gives a Python subclass of `base` its
// own copies.
void add_fast_methods(PyTypeObject* base, PyMethodDef* defs);

}  // namespace veda::bindings
