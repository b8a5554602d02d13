// pyveda._core: the compiled half of PyVeda. Each area binds itself in its own file.
#include <nanobind/nanobind.h>

#include "bindings.hpp"

NB_MODULE(_core, m) {
  m.doc() = "Native core of PyVeda (C++17). Use the pyveda package, not this module.";
  veda::bindings::init_metrics(m);
  veda::bindings::init_instruments(m);
  veda::bindings::init_states(m);
  veda::bindings::init_gpu(m);
  veda::bindings::init_future(m);
  veda::bindings::init_runtime(m);
  veda::bindings::init_tracing(m);
  veda::bindings::init_multiprocess(m);
  veda::bindings::init_attribute_recorder(m);
}
