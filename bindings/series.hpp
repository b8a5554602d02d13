// What a Python series object (pyveda._core.Counter, Gauge, Histogram) holds,
// and how Python records into one: shared by metrics.cpp, which binds the
// series types, and instrument.cpp, whose timers, trackers and exception
// counters record into them.
#pragma once

#include <nanobind/nanobind.h>

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

#include "bindings.hpp"
#include "convert.hpp"
#include "veda/metrics.hpp"

namespace veda::bindings {

// What a Python metric object holds: its family, and the series it records
// into (null for a labelled family, whose series come from labels()).
template <class M>
struct SeriesRef {
  std::shared_ptr<Family<M>> family;
  std::shared_ptr<M> series;
  // Python objects already returned by labels(), keyed by the call's
  // positional-argument tuple, so a repeated labels(...) is one dict lookup.
  // Holds only child refs, whose own caches stay empty: no reference cycles.
  nanobind::dict children;
  // family->generation() when `children` was last known good: a remove() or
  // clear() through any handle of the family (another object sharing it, say)
  // moves it, and the cache is dropped.
  std::uint64_t generation = 0;

  // The series to record into; for a labelled family the core's ValueError
  // ("... has label names (...): select a series with .labels(...) first").
  M& get() const { return series ? *series : family->unlabelled(); }
};

// The series behind a Python object known to be a SeriesRef<M> instance.
template <class M>
M& series_of(PyObject* self) {
  return nanobind::inst_ptr<SeriesRef<M>>(self)->get();
}

// Counter.inc(v) / Histogram.observe(v) as Python calls them: with the given
// exemplar labels (a mapping; null or None: none given), else the current
// span's trace_id and span_id. A bad amount, value or label raises ValueError.
template <class M>
void record(M& metric, double v, PyObject* exemplar, const char* method) {
  static_assert(std::is_same_v<M, Counter> || std::is_same_v<M, Histogram>);
  Exemplar e;
  const bool given = exemplar != nullptr && exemplar != Py_None;
  if (given) e = exemplar_from_python(exemplar, method);  // labels checked as they are converted
  const bool with_exemplar = given || current_span_exemplar(e);
  if constexpr (std::is_same_v<M, Counter>) {
    if (!with_exemplar || !Counter::valid_amount(v)) {
      metric.inc_checked(v);  // raises with the amount's message when it is bad
    } else {
      metric.inc(v, std::move(e));
    }
  } else {
    if (!with_exemplar || !Histogram::valid_value(v)) {
      metric.observe_checked(v);  // raises with the value's message when it is bad
    } else {
      metric.observe(v, std::move(e));
    }
  }
}

// --- instrument factories (instrument.cpp), methods of the series types -------------------------

// Histogram.time() / Gauge.time(): a Timer observing into / setting this series.
PyObject* histogram_time(PyObject* self, PyObject* unused) noexcept;
PyObject* gauge_time(PyObject* self, PyObject* unused) noexcept;
// Gauge.track_inprogress(): an InprogressTracker; ValueError on a labelled gauge.
PyObject* gauge_track_inprogress(PyObject* self, PyObject* unused) noexcept;
// Counter.count_exceptions(exception=Exception): an ExceptionCounter; ValueError on a labelled counter.
PyObject* counter_count_exceptions(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                                   PyObject* kwnames) noexcept;

}  // namespace veda::bindings
