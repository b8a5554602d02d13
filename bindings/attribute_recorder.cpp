// pyveda._core.AttributeRecorder: the recording path of pyveda.otel's
// synchronous instruments. An OpenTelemetry API call, add(amount,
// attributes) or record(value, attributes), becomes one recording into the
// series of a labelled core family whose label names are attribute keys.
//
// The common call (str attribute values, keys the family has, a valid
// amount) stays in C++: one pass over the dict, one series lookup, one
// record. Everything else goes to the facade's `problem` callable, which
// converts a value that is not a str, or reports (as the OpenTelemetry SDK
// does, by logging, never raising) an amount the instrument drops or keys
// the family lacks.
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "series.hpp"
#include "veda/metrics.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace veda::bindings {
namespace {

// What a call does with its amount: Counter.add (>= 0), an observable
// counter's total (>= 0: the counter becomes it; a smaller total than the
// last is a restart, so it resets first), UpDownCounter.add (any sign),
// Gauge.set, Histogram.record (>= 0).
enum class Op { kAdd, kTotal, kUpDown, kSet, kRecord };

struct AttributeRecorder {
  std::shared_ptr<Family<Counter>> counters;      // kAdd, kTotal
  std::shared_ptr<Family<Gauge>> gauges;          // kUpDown, kSet
  std::shared_ptr<Family<Histogram>> histograms;  // kRecord
  Op op = Op::kAdd;
  std::vector<nb::object> keys;  // the label names as interned str, in the family's order
  nb::object problem;            // problem(kind, detail): see the file comment
};

const FamilyInfo& info_of(const AttributeRecorder& r) {
  if (r.counters) return r.counters->info();
  if (r.gauges) return r.gauges->info();
  return r.histograms->info();
}

// The index of attribute key `key` among the label names, or -1.
Py_ssize_t key_index(const AttributeRecorder& r, PyObject* key) {
  const Py_ssize_t n = static_cast<Py_ssize_t>(r.keys.size());
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (r.keys[static_cast<std::size_t>(i)].ptr() == key) return i;  // the usual case: both interned
  }
  if (!PyUnicode_Check(key)) return -1;
  for (Py_ssize_t i = 0; i < n; ++i) {
    const int eq = PyUnicode_Compare(r.keys[static_cast<std::size_t>(i)].ptr(), key);
    if (eq == 0) return i;
    if (eq == -1 && PyErr_Occurred()) throw nb::python_error();
  }
  return -1;
}

// The label values for `attributes` (a dict, another mapping, or None), in
// the family's order; a key the call leaves out is "" (an absent label, in
// Prometheus' data model). Keys the family lacks go to problem("keys", attributes).
std::vector<std::string> label_values(const AttributeRecorder& r, PyObject* attributes) {
  std::vector<std::string> values(r.keys.size());
  if (attributes == nullptr || attributes == Py_None) return values;
  nb::object dict;
  if (!PyDict_Check(attributes)) {
    dict = nb::steal(PyDict_New());
    if (!dict.is_valid() || PyDict_Merge(dict.ptr(), attributes, 1) < 0) {
      PyErr_Clear();
      r.problem("attributes", nb::handle(attributes));
      return values;
    }
    attributes = dict.ptr();
  }
  bool unknown = false;
  Py_ssize_t pos = 0;
  PyObject* key = nullptr;
  PyObject* value = nullptr;
  while (PyDict_Next(attributes, &pos, &key, &value)) {
    const Py_ssize_t i = key_index(r, key);
    if (i < 0) {
      unknown = true;
      continue;
    }
    std::string& out = values[static_cast<std::size_t>(i)];
    if (PyUnicode_CheckExact(value)) {
      out = utf8(value);
    } else {
      nb::object text = r.problem("value", nb::handle(value));  // the facade's text for a bool, int, list ...
      out = utf8(text.ptr());
    }
  }
  if (unknown) r.problem("keys", nb::handle(attributes));
  return values;
}

// The series for `attributes`, held for the one record (a remove() meanwhile cannot free it).
template <class M>
std::shared_ptr<M> series_for(const std::shared_ptr<Family<M>>& family, const AttributeRecorder& r,
                              PyObject* attributes) {
  if (r.keys.empty()) {
    if (attributes != nullptr && attributes != Py_None) {
      const Py_ssize_t n = PyObject_Length(attributes);
      if (n < 0) PyErr_Clear();
      if (n != 0) r.problem("keys", nb::handle(attributes));
    }
    return std::shared_ptr<M>(family, &family->unlabelled());  // owned by the family
  }
  return family->labels(label_values(r, attributes));
}

// record(amount, attributes=None, context=None), METH_FASTCALL: the
// instrument's add/set/record. `context` is accepted, as the API's, and not used.
PyObject* recorder_call(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
  return guarded([&]() -> PyObject* {
    auto& r = *nb::inst_ptr<AttributeRecorder>(self);
    PyObject* amount = nargs > 0 ? args[0] : nullptr;
    PyObject* attributes = nargs > 1 ? args[1] : nullptr;
    if (nargs > 3) throw nb::type_error("takes at most 3 arguments (amount, attributes, context)");
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; ++i) {
      PyObject* name = PyTuple_GET_ITEM(kwnames, i);
      if (PyUnicode_CompareWithASCIIString(name, "attributes") == 0 && attributes == nullptr) {
        attributes = args[nargs + i];
      } else if (PyUnicode_CompareWithASCIIString(name, "amount") == 0 && amount == nullptr) {
        amount = args[nargs + i];
      } else if (PyUnicode_CompareWithASCIIString(name, "context") != 0 || nargs > 2) {
        throw nb::type_error(("got an unexpected or repeated keyword argument " + short_repr(name) +
                              " (allowed: amount, attributes, context)")
                                 .c_str());
      }
    }
    if (amount == nullptr) throw nb::type_error("missing the amount: (amount, attributes=None, context=None)");
    const double v = PyFloat_AsDouble(amount);
    if (v == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      r.problem("amount", nb::handle(amount));  // not a number: dropped, and said so
      Py_RETURN_NONE;
    }
    if (!std::isfinite(v) || ((r.op == Op::kAdd || r.op == Op::kTotal || r.op == Op::kRecord) && v < 0.0)) {
      r.problem("amount", nb::handle(amount));  // negative for an add-only instrument, or NaN/inf: dropped
      Py_RETURN_NONE;
    }
    switch (r.op) {
      case Op::kAdd:
        record(*series_for(r.counters, r, attributes), v, nullptr, "add");
        break;
      case Op::kTotal: {
        const std::shared_ptr<Counter> series = series_for(r.counters, r, attributes);
        const double last = series->get();
        if (v < last) series->reset();
        series->inc(v < last ? v : v - last);
        break;
      }
      case Op::kUpDown:
        series_for(r.gauges, r, attributes)->inc(v);
        break;
      case Op::kSet:
        series_for(r.gauges, r, attributes)->set(v);
        break;
      case Op::kRecord:
        record(*series_for(r.histograms, r, attributes), v, nullptr, "record");
        break;
    }
    Py_RETURN_NONE;
  });
}

int recorder_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  if (!nb::inst_ready(self)) return 0;
  auto& r = *nb::inst_ptr<AttributeRecorder>(self);
  Py_VISIT(r.problem.ptr());
  return 0;
}

int recorder_clear(PyObject* self) {
  if (nb::inst_ready(self)) nb::inst_ptr<AttributeRecorder>(self)->problem.reset();
  return 0;
}

PyMethodDef recorder_methods[] = {
    {"record", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&recorder_call)),
     METH_FASTCALL | METH_KEYWORDS,
     "record(amount, attributes=None, context=None)\n--\n\n"
     "Records `amount` into the series of `attributes` (the instrument's add, set or record)."},
    {nullptr, nullptr, 0, nullptr}};
PyType_Slot recorder_slots[] = {{Py_tp_methods, recorder_methods},
                                {Py_tp_traverse, reinterpret_cast<void*>(&recorder_traverse)},
                                {Py_tp_clear, reinterpret_cast<void*>(&recorder_clear)},
                                {0, nullptr}};

template <class M>
void init_recorder(AttributeRecorder* self, std::shared_ptr<Family<M>> family, Op op, nb::handle problem) {
  if (!family) throw nb::type_error("AttributeRecorder needs a metric family");
  if (!PyCallable_Check(problem.ptr())) {
    throw nb::type_error(("problem must be callable, got " + type_name_of(problem.ptr())).c_str());
  }
  AttributeRecorder r;
  r.op = op;
  if constexpr (std::is_same_v<M, Counter>) r.counters = family;
  if constexpr (std::is_same_v<M, Gauge>) r.gauges = family;
  if constexpr (std::is_same_v<M, Histogram>) r.histograms = family;
  for (const std::string& name : family->info().label_names) {
    PyObject* key = PyUnicode_FromStringAndSize(name.data(), static_cast<Py_ssize_t>(name.size()));
    if (key == nullptr) throw nb::python_error();
    PyUnicode_InternInPlace(&key);
    r.keys.push_back(nb::steal(key));
  }
  r.problem = nb::borrow(problem);
  new (self) AttributeRecorder(std::move(r));
}

}  // namespace

void init_attribute_recorder(nb::module_& m) {
  nb::class_<AttributeRecorder>(
      m, "AttributeRecorder",
      "The recording path of an OpenTelemetry API instrument (pyveda.otel): record(amount, attributes) "
      "records into the series whose label values are the attributes' values (a key left out: ''). "
      "problem(kind, detail) is called for what the fast path does not do: kind 'value' (return the label "
      "text of a value that is not a str), 'amount' (an amount dropped: not a number, not finite, or "
      "negative for a counter, a total or a histogram), 'keys' (attributes with keys the family lacks; the call "
      "records without them) and 'attributes' (not a mapping; recorded with none).",
      nb::type_slots(recorder_slots))
      .def(
          "__init__",
          [](AttributeRecorder* self, std::shared_ptr<Family<Counter>> family, nb::handle problem, bool total) {
            init_recorder(self, std::move(family), total ? Op::kTotal : Op::kAdd, problem);
          },
          "family"_a, "problem"_a, "total"_a = false,
          "A Counter.add recorder, or (total) one that sets an observable counter's total.")
      .def(
          "__init__",
          [](AttributeRecorder* self, std::shared_ptr<Family<Gauge>> family, bool up_down, nb::handle problem) {
            init_recorder(self, std::move(family), up_down ? Op::kUpDown : Op::kSet, problem);
          },
          "family"_a, "up_down"_a, "problem"_a, "An UpDownCounter.add (up_down) or Gauge.set recorder.")
      .def(
          "__init__",
          [](AttributeRecorder* self, std::shared_ptr<Family<Histogram>> family, nb::handle problem) {
            init_recorder(self, std::move(family), Op::kRecord, problem);
          },
          "family"_a, "problem"_a, "A Histogram.record recorder.")
      .def_prop_ro(
          "label_names", [](const AttributeRecorder& r) { return info_of(r).label_names; },
          "The attribute keys that are label names, in the family's order.");
}

}  // namespace veda::bindings
