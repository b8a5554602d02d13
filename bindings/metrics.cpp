// Bindings for the metric registry: counters, gauges, histograms and families.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include "bindings.hpp"
#include "convert.hpp"
#include "series.hpp"
#include "veda/metrics/otlp.hpp"
#include "veda/metrics.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace veda::bindings {
namespace {

using Labels = std::vector<std::string>;
using LabelPairs = std::vector<std::pair<std::string, std::string>>;

// Accepts int, float and anything with __float__, in one conversion pass
// (nanobind's double caster would retry ints in a slower second pass).
double as_double(nb::handle value, const char* what) {
  const double v = PyFloat_AsDouble(value.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    const bool overflow = PyErr_ExceptionMatches(PyExc_OverflowError) != 0;
    PyErr_Clear();
    if (overflow) {
      throw nb::value_error((std::string(what) + " must be a number within float range (about 1.8e308), got " +
                             nb::type_name(value.type()).c_str() + " too large to convert to float")
                                .c_str());
    }
    throw nb::type_error((std::string(what) + " must be a number (int or float), got " +
                          nb::type_name(value.type()).c_str())
                             .c_str());
  }
  return v;
}

PyObject* by_name_marker() {
  // A bare object(): hashable, equal only to itself, kept for the process's life.
  static PyObject* marker = PyObject_CallObject(reinterpret_cast<PyObject*>(&PyBaseObject_Type), nullptr);
  return marker;
}

// str(value), whole: a NUL inside the text is kept.
std::string label_text(PyObject* value) {
  nb::str text = nb::str(nb::handle(value));
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
  if (data == nullptr) {
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) throw nb::python_error();
    PyErr_Clear();  // a lone surrogate: no exposition format can carry it
    throw nb::value_error(
        ("label value " + std::string(nb::repr(text).c_str()) +
         " is not valid Unicode text (it has a lone surrogate, which UTF-8 cannot encode); "
         "label values must be encodable as UTF-8")
            .c_str());
  }
  return std::string(data, static_cast<std::size_t>(size));
}

// The cache key's part for one label value: the value itself when it is a
// str, else str(value), so 1, 1.0 and True (equal as dict keys) stay three
// series, "1", "1.0" and "True", as str() makes them.
nb::object key_part(PyObject* value) {
  if (PyUnicode_CheckExact(value)) return nb::borrow(value);
  return nb::str(nb::handle(value));
}

// A series object of the same Python type as `parent` (a facade subclass
// such as pyveda.telemetry.Counter, say), so a child has the parent's Python
// methods too (time(), count_exceptions() ...). Its __init__ is not run.
template <class M>
nb::object make_child(PyObject* parent, SeriesRef<M>&& ref) {
  nb::object child = nb::inst_alloc(nb::handle(reinterpret_cast<PyObject*>(Py_TYPE(parent))));
  new (nb::inst_ptr<SeriesRef<M>>(child)) SeriesRef<M>(std::move(ref));
  nb::inst_mark_ready(child);
  return child;
}

// labels(*values) / labels(**values), as a METH_FASTCALL method so the cached
// path costs one dict lookup: nanobind's *args/**kwargs dispatch would build a
// tuple and a dict per call. Values are converted with str(), as in
// prometheus_client; the core checks their number and names.
template <class M>
PyObject* labels_impl(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
  try {
    auto& ref = *nb::inst_ptr<SeriesRef<M>>(self);
    if (ref.series != nullptr && !ref.family->info().label_names.empty()) {
      throw nb::value_error((std::string(to_string(ref.family->info().type)) + " '" + ref.family->info().name +
                             "': this is already one labelled series (what labels(...) returned), so labels() "
                             "cannot be called on it again; call labels(...) on the metric itself")
                                .c_str());
    }
    const Py_ssize_t nkw = kwnames ? PyTuple_Size(kwnames) : 0;
    if (nkw == 0 && nargs == 0 && ref.family->info().label_names.empty()) {
      throw nb::value_error((std::string(to_string(ref.family->info().type)) + " '" + ref.family->info().name +
                             "' has no label names, so it has no labelled series to select: record on it directly")
                                .c_str());
    }
    if (nkw != 0 && nargs != 0) {
      throw nb::value_error(("'" + ref.family->info().name +
                             "': pass label values by position or by name, not both")
                                .c_str());
    }
    // Key: the value itself for one positional label, else a tuple / frozenset of the arguments.
    nb::object key;
    if (nkw == 0 && nargs == 1) {
      key = key_part(args[0]);
    } else if (nkw == 0) {
      key = nb::steal(PyTuple_New(nargs));
      for (Py_ssize_t i = 0; i < nargs; ++i) PyTuple_SetItem(key.ptr(), i, key_part(args[i]).release().ptr());
    } else {
      // (marker, names, *values): the private marker keeps these keys apart
      // from positional tuples; argument order matters, both orders hit the same series.
      key = nb::steal(PyTuple_New(nkw + 2));
      PyObject* parts[] = {by_name_marker(), kwnames};
      for (Py_ssize_t i = 0; i < 2; ++i) {
        Py_INCREF(parts[i]);
        PyTuple_SetItem(key.ptr(), i, parts[i]);
      }
      for (Py_ssize_t i = 0; i < nkw; ++i) PyTuple_SetItem(key.ptr(), i + 2, key_part(args[i]).release().ptr());
    }
    if (const std::uint64_t generation = ref.family->generation(); generation != ref.generation) {
      PyDict_Clear(ref.children.ptr());  // a series was removed through some handle: drop every cached child
      ref.generation = generation;
    }
    if (PyObject* hit = PyDict_GetItemWithError(ref.children.ptr(), key.ptr())) {
      Py_INCREF(hit);
      return hit;
    }
    if (PyErr_Occurred()) throw nb::python_error();
    // The series' label text comes from the key's parts: str() runs once per value.
    auto part = [&](Py_ssize_t i) {
      return label_text(nkw == 0 && nargs == 1 ? key.ptr() : PyTuple_GET_ITEM(key.ptr(), i + (nkw != 0 ? 2 : 0)));
    };
    std::shared_ptr<M> series;
    if (nkw != 0) {
      std::vector<std::pair<std::string, std::string>> pairs;
      for (Py_ssize_t i = 0; i < nkw; ++i) pairs.emplace_back(label_text(PyTuple_GetItem(kwnames, i)), part(i));
      series = ref.family->labels(pairs);
    } else {
      std::vector<std::string> values;
      for (Py_ssize_t i = 0; i < nargs; ++i) values.push_back(part(i));
      series = ref.family->labels(values);
    }
    nb::object child = make_child(self, SeriesRef<M>{ref.family, std::move(series), {}});
    ref.children[key] = child;
    return child.release().ptr();
  } catch (...) {
    restore_as_python_error();
  }
  return nullptr;
}

// Counter.inc(amount=1.0, exemplar=None) and Histogram.observe(value,
// exemplar=None), the recording fast paths: METH_FASTCALL, so a call costs
// no more than the dispatch. The exemplar is the given labels, else the
// current span (one ContextVar read), else none.
template <class M>
PyObject* record_impl(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
  constexpr bool kCounter = std::is_same_v<M, Counter>;
  constexpr const char* kMethod = kCounter ? "inc" : "observe";
  constexpr const char* kValueName = kCounter ? "amount" : "value";
  return guarded([&]() -> PyObject* {
    PyObject* value = nullptr;
    PyObject* exemplar = nullptr;
    if (nargs > 2) {
      throw nb::type_error((std::string(kMethod) + "() takes at most 2 arguments (" + kValueName +
                            ", exemplar), got " + std::to_string(nargs))
                               .c_str());
    }
    if (nargs >= 1) value = args[0];
    if (nargs == 2) exemplar = args[1];
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; ++i) {
      PyObject* name = PyTuple_GET_ITEM(kwnames, i);
      PyObject** slot = nullptr;
      if (PyUnicode_CompareWithASCIIString(name, kValueName) == 0) {
        slot = &value;
      } else if (PyUnicode_CompareWithASCIIString(name, "exemplar") == 0) {
        slot = &exemplar;
      } else {
        throw nb::type_error((std::string(kMethod) + "() got an unexpected keyword argument " + short_repr(name) +
                              " (allowed: " + kValueName + ", exemplar)")
                                 .c_str());
      }
      if (*slot != nullptr) {
        throw nb::type_error((std::string(kMethod) + "() got multiple values for " + utf8(name)).c_str());
      }
      *slot = args[nargs + i];
    }
    double v = 1.0;
    if (value != nullptr) {
      v = as_double(nb::handle(value), kValueName);
    } else if (!kCounter) {
      throw nb::type_error("observe() missing its value: observe(value, exemplar=None)");
    }
    record(nb::inst_ptr<SeriesRef<M>>(self)->get(), v, exemplar, kMethod);
    Py_RETURN_NONE;
  });
}

#define VEDA_LABELS_METHOD(M)                                                                              \
  {"labels", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&labels_impl<M>)),                 \
   METH_FASTCALL | METH_KEYWORDS,                                                                          \
   "labels(*values, **named_values)\n--\n\n"                                                              \
   "The series for these label values, by position (label-name order) or by name.\n"                       \
   "Values are converted with str(). A series is created on first use and remembered."}

// Gauge.set(value), Gauge.inc(amount=1.0) and Gauge.dec(amount=1.0), as raw
// CPython methods (nanobind's dispatch would cost about as much as the record).
PyObject* gauge_set(PyObject* self, PyObject* value) noexcept {
  return guarded([&]() -> PyObject* {
    const double v = as_double(nb::handle(value), "value");
    nb::inst_ptr<SeriesRef<Gauge>>(self)->get().set(v);
    Py_RETURN_NONE;
  });
}

template <bool kUp>
PyObject* gauge_add(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
  return guarded([&]() -> PyObject* {
    const char* method = kUp ? "inc" : "dec";
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 1) {
      throw nb::type_error((std::string(method) + "() takes at most 1 argument (amount), got " +
                            std::to_string(nargs + nkw))
                               .c_str());
    }
    if (nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "amount") != 0) {
      throw nb::type_error((std::string(method) + "() got an unexpected keyword argument " +
                            short_repr(PyTuple_GET_ITEM(kwnames, 0)) + " (allowed: amount)")
                               .c_str());
    }
    const double amount = nargs + nkw == 1 ? as_double(nb::handle(args[0]), "amount") : 1.0;
    Gauge& gauge = nb::inst_ptr<SeriesRef<Gauge>>(self)->get();
    if constexpr (kUp) {
      gauge.inc(amount);
    } else {
      gauge.dec(amount);
    }
    Py_RETURN_NONE;
  });
}

#define VEDA_METHOD(name, impl, flags, doc) \
  { name, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(impl)), flags, doc }

// The fast-path methods of a series type: labels(), inc()/observe(), and the
// instrument factories (time(), track_inprogress(), count_exceptions(); see
// instrument.cpp). Raw CPython methods: no nanobind dispatch.
template <class M>
struct SeriesMethods;

template <>
struct SeriesMethods<Counter> {
  static inline PyMethodDef defs[] = {
      VEDA_LABELS_METHOD(Counter),
      VEDA_METHOD("inc", &record_impl<Counter>, METH_FASTCALL | METH_KEYWORDS,
                  "inc(amount=1.0, exemplar=None)\n--\n\n"
                  "Adds amount (a finite number >= 0; ValueError otherwise). Keeps an exemplar: the given labels, "
                  "else the current span's trace_id and span_id."),
      VEDA_METHOD("count_exceptions", &counter_count_exceptions, METH_FASTCALL | METH_KEYWORDS,
                  "count_exceptions(exception=Exception)\n--\n\n"
                  "An ExceptionCounter adding 1 each time an `exception` (a class or a tuple of them) leaves a "
                  "block or decorated function; the exception propagates. ValueError on a labelled counter: call "
                  "it on labels(...)."),
      {nullptr, nullptr, 0, nullptr}};
  static inline PyType_Slot slots[] = {{Py_tp_methods, defs}, {0, nullptr}};
};

template <>
struct SeriesMethods<Gauge> {
  static inline PyMethodDef defs[] = {
      VEDA_LABELS_METHOD(Gauge),
      VEDA_METHOD("set", &gauge_set, METH_O, "set($self, value, /)\n--\n\nSets the gauge to value."),
      VEDA_METHOD("inc", &gauge_add<true>, METH_FASTCALL | METH_KEYWORDS,
                  "inc(amount=1.0)\n--\n\nAdds amount."),
      VEDA_METHOD("dec", &gauge_add<false>, METH_FASTCALL | METH_KEYWORDS,
                  "dec(amount=1.0)\n--\n\nSubtracts amount."),
      VEDA_METHOD("time", &gauge_time, METH_NOARGS,
                  "time($self, /)\n--\n\n"
                  "A Timer setting the gauge to the seconds a block or decorated function took."),
      VEDA_METHOD("track_inprogress", &gauge_track_inprogress, METH_NOARGS,
                  "track_inprogress($self, /)\n--\n\n"
                  "An InprogressTracker: inc() when a block or decorated function starts, dec() when it ends. "
                  "ValueError on a labelled gauge: call it on labels(...)."),
      {nullptr, nullptr, 0, nullptr}};
  static inline PyType_Slot slots[] = {{Py_tp_methods, defs}, {0, nullptr}};
};

template <>
struct SeriesMethods<Histogram> {
  static inline PyMethodDef defs[] = {
      VEDA_LABELS_METHOD(Histogram),
      VEDA_METHOD("observe", &record_impl<Histogram>, METH_FASTCALL | METH_KEYWORDS,
                  "observe(value, exemplar=None)\n--\n\n"
                  "Records a finite value >= 0 (ValueError otherwise). Keeps an exemplar: the given labels, else "
                  "the current span's trace_id and span_id."),
      VEDA_METHOD("time", &histogram_time, METH_NOARGS,
                  "time($self, /)\n--\n\n"
                  "A Timer observing the seconds a block or decorated function took (on a labelled histogram, "
                  "ValueError when it records unless labels(...) picked a series)."),
      {nullptr, nullptr, 0, nullptr}};
  static inline PyType_Slot slots[] = {{Py_tp_methods, defs}, {0, nullptr}};
};

#undef VEDA_METHOD
#undef VEDA_LABELS_METHOD

template <class M>
nb::class_<SeriesRef<M>> bind_series(nb::module_& m, const char* name, const char* doc) {
  using R = SeriesRef<M>;
  using F = Family<M>;
  return nb::class_<R>(m, name, doc, nb::type_slots(SeriesMethods<M>::slots))
      .def(
          "__init__",
          [](R* self, std::shared_ptr<F> family) {
            std::shared_ptr<M> series = family->info().label_names.empty() ? family->labels(Labels{}) : nullptr;
            new (self) R{std::move(family), std::move(series), {}};
          },
          "family"_a, "Binds to a family: its only series, or none if it has label names.")
      .def(
          "remove",
          [](R& r, nb::args args) {
            std::vector<std::string> values;
            for (nb::handle value : args) values.push_back(label_text(value.ptr()));
            if (r.family->remove(values)) r.children.clear();
          },
          "values"_a, nb::sig("def remove(self, *values: object) -> None"),
          "Stops exporting the series with these label values (handles keep working).")
      .def(
          "clear",
          [](R& r) {
            r.family->clear();
            r.children.clear();
          },
          "Removes every labelled series.")
      .def_prop_ro("_family", [](const R& r) { return r.family; });
}

template <class M>
void bind_family(nb::module_& m, const char* name, const char* doc) {
  using F = Family<M>;
  using R = SeriesRef<M>;
  nb::class_<F>(m, name, doc)
      .def(
          "labels", [](std::shared_ptr<F> f, const Labels& values) { return R{f, f->labels(values), {}}; },
          "values"_a, "The series for these label values (in label-name order), created on first use.")
      .def(
          "labels_by_name",
          [](std::shared_ptr<F> f, const LabelPairs& pairs) { return R{f, f->labels(pairs), {}}; }, "pairs"_a,
          "The series for (name, value) pairs given in any order.")
      .def("remove", &F::remove, "values"_a, "Stops exporting one series; False if it did not exist.")
      .def("clear", &F::clear, "Removes every labelled series.")
      .def("__len__", &F::size)
      .def(
          "label_sets",
          [](const F& f) {
            std::vector<std::vector<std::string>> out;
            f.for_each([&](const std::vector<std::string>& labels, const M&) { out.push_back(labels); });
            nb::list sets;
            for (const auto& labels : out) {
              nb::list values;
              for (const std::string& v : labels) values.append(nb::str(v.data(), v.size()));
              sets.append(nb::tuple(values));
            }
            return sets;
          },
          nb::sig("def label_sets(self) -> list[tuple[str, ...]]"),
          "The label values of every series, in creation order.")
      .def_prop_ro("unit", [](const F& f) { return f.info().unit; })
      .def_prop_ro("name", [](const F& f) { return f.info().name; })
      .def_prop_ro("help", [](const F& f) { return f.info().help; })
      .def_prop_ro("label_names", [](const F& f) { return f.info().label_names; })
      .def_prop_ro("max_series", &F::max_series)
      .def_prop_ro("shared", &F::shared, "Whether the series record into a multi-process file.");
}

// Where a collected value came from, spelled out only for an error message.
struct Where {
  const std::string* family = nullptr;  // the family's name, once known
  Py_ssize_t sample = -1;               // the sample's index, or -1
  const std::string* sample_name = nullptr;
  const char* what = "";

  std::string str() const {
    std::string out = family ? "metric family '" + *family + "'" : std::string("a collected metric family");
    if (sample >= 0) out += ", sample " + std::to_string(sample);
    if (sample_name) out += " ('" + *sample_name + "')";
    if (*what) out += std::string(sample >= 0 || family ? ": " : " ") + what;
    return out;
  }
  Where with(const char* w) const {
    Where copy = *this;
    copy.what = w;
    return copy;
  }
};

// The text of a str attribute or item.
std::string text_of(PyObject* value, const Where& where) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_Check(value) ? PyUnicode_AsUTF8AndSize(value, &size) : nullptr;
  if (data == nullptr) {
    if (!PyUnicode_Check(value)) {
      throw nb::type_error(
          (where.str() + " must be a str, got " + type_name_of(value) + " (" + short_repr(value) + ")").c_str());
    }
    PyErr_Clear();
    throw nb::value_error((where.str() + " " + short_repr(value) + " is not valid Unicode text (a lone surrogate)").c_str());
  }
  return std::string(data, static_cast<std::size_t>(size));
}

nb::object attribute(nb::handle object, const char* name, const Where& where) {
  PyObject* value = PyObject_GetAttrString(object.ptr(), name);
  if (value == nullptr) {
    PyErr_Clear();
    std::string owner = where.family ? where.str() : "a collected metric family (" + type_name_of(object.ptr()) + ")";
    throw nb::type_error((owner + " has no attribute '" + name +
                          "': a collector's collect() must yield metric families (name, documentation, type, unit, "
                          "samples), such as pyveda.telemetry.GaugeMetricFamily")
                             .c_str());
  }
  return nb::steal(value);
}

double number_of(PyObject* value, const Where& where) {
  if (PyFloat_CheckExact(value)) return PyFloat_AS_DOUBLE(value);
  const double v = PyFloat_AsDouble(value);
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw nb::type_error(
        (where.str() + " must be a number, got " + type_name_of(value) + " (" + short_repr(value) + ")").c_str());
  }
  return v;
}

std::optional<double> timestamp_of(PyObject* value, const Where& where) {
  if (value == Py_None) return std::nullopt;
  return number_of(value, where);
}

LabelList labels_of(PyObject* labels, const Where& where) {
  if (!PyDict_Check(labels)) {
    throw nb::type_error((where.str() + " must be a dict of str to str, got " + type_name_of(labels)).c_str());
  }
  LabelList out;
  out.reserve(static_cast<std::size_t>(PyDict_GET_SIZE(labels)));
  Py_ssize_t pos = 0;
  PyObject *key = nullptr, *value = nullptr;
  while (PyDict_Next(labels, &pos, &key, &value)) {
    std::string name = text_of(key, where.with("labels: a label name"));
    out.emplace_back(std::move(name), text_of(value, where.with("labels: a label value")));
  }
  return out;
}

// Item i of a sample or exemplar (a tuple, a namedtuple or any sequence).
PyObject* item(PyObject* fast, Py_ssize_t i) { return PySequence_Fast_GET_ITEM(fast, i); }

bool exemplar_allowed(SampleType type, std::string_view family, std::string_view sample) {
  auto is = [&](std::string_view suffix) {
    return sample.size() == family.size() + suffix.size() && sample.substr(family.size()) == suffix;
  };
  switch (type) {
    case SampleType::counter: return is("_total");
    case SampleType::histogram:
    case SampleType::gaugehistogram: return is("_bucket");
    default: return false;
  }
}

// A sample's fields as a borrowed array: a tuple's own (namedtuples are
// tuples), else a list made from the sequence, kept in `holder`.
PyObject** fields_of(PyObject* raw, nb::object& holder, Py_ssize_t& size) {
  if (PyTuple_Check(raw)) {
    size = PyTuple_GET_SIZE(raw);
    return &PyTuple_GET_ITEM(raw, 0);
  }
  holder = nb::steal(PySequence_Fast(raw, ""));
  if (!holder.is_valid()) {
    PyErr_Clear();
    size = 0;
    return nullptr;
  }
  size = PySequence_Fast_GET_SIZE(holder.ptr());
  return PySequence_Fast_ITEMS(holder.ptr());
}

SampleExemplar exemplar_of(PyObject* raw, const Where& where) {
  nb::object holder;
  Py_ssize_t size = 0;
  PyObject** fields = fields_of(raw, holder, size);
  if (fields == nullptr || size < 2) {
    throw nb::type_error((where.with("exemplar must be an Exemplar (labels, value[, timestamp])").str()).c_str());
  }
  SampleExemplar exemplar;
  exemplar.labels = labels_of(fields[0], where.with("exemplar labels"));
  exemplar.value = number_of(fields[1], where.with("exemplar value"));
  if (size > 2) exemplar.timestamp = timestamp_of(fields[2], where.with("exemplar timestamp"));
  return exemplar;
}

// What a custom collector yielded (prometheus_client-style Metric objects:
// name, documentation, type, unit, samples of (name, labels, value,
// timestamp, exemplar)), as the core's sample families.
std::vector<SampleFamily> sample_families_from_python(nb::handle metrics) {
  std::vector<SampleFamily> out;
  nb::object fast_metrics = nb::steal(PySequence_Fast(metrics.ptr(), "collected metrics must be a sequence"));
  if (!fast_metrics.is_valid()) throw nb::python_error();
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast_metrics.ptr());
  out.reserve(static_cast<std::size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    nb::handle metric = item(fast_metrics.ptr(), i);
    SampleFamily family;
    Where where;
    family.name = text_of(attribute(metric, "name", where).ptr(), where.with("name"));
    where.family = &family.name;
    family.help = text_of(attribute(metric, "documentation", where).ptr(), where.with("documentation"));
    const std::string type = text_of(attribute(metric, "type", where).ptr(), where.with("type"));
    const auto sample_type = sample_type_from(type);
    if (!sample_type) {
      throw nb::value_error((where.str() + " has type '" + type +
                             "'; allowed: counter, gauge, summary, histogram, gaugehistogram, info, stateset, unknown")
                                .c_str());
    }
    family.type = *sample_type;
    nb::object unit = attribute(metric, "unit", where);
    if (!unit.is_none()) family.unit = text_of(unit.ptr(), where.with("unit"));
    nb::object samples = attribute(metric, "samples", where);
    nb::object fast = nb::steal(PySequence_Fast(samples.ptr(), ""));
    if (!fast.is_valid()) {
      PyErr_Clear();
      throw nb::type_error((where.str() + ": samples must be a list of samples, got " + type_name_of(samples.ptr())).c_str());
    }
    const Py_ssize_t count = PySequence_Fast_GET_SIZE(fast.ptr());
    family.samples.resize(static_cast<std::size_t>(count));
    for (Py_ssize_t k = 0; k < count; ++k) {
      PyObject* raw = item(fast.ptr(), k);
      Sample& sample = family.samples[static_cast<std::size_t>(k)];
      Where at = where;
      at.sample = k;
      nb::object holder;
      Py_ssize_t size = 0;
      PyObject** fields = fields_of(raw, holder, size);
      if (fields == nullptr || size < 3) {
        throw nb::type_error((at.str() + " must be a Sample (name, labels, value[, timestamp, exemplar]), got " +
                              type_name_of(raw))
                                 .c_str());
      }
      sample.name = text_of(fields[0], at.with("name"));
      at.sample_name = &sample.name;
      sample.labels = labels_of(fields[1], at);
      sample.value = number_of(fields[2], at.with("value"));
      if (size > 3 && fields[3] != Py_None) sample.timestamp = timestamp_of(fields[3], at.with("timestamp"));
      if (size > 4 && fields[4] != Py_None) {
        if (!exemplar_allowed(family.type, family.name, sample.name)) {
          throw nb::value_error((where.str() + " has an exemplar on sample '" + sample.name +
                                 "'; exemplars are allowed only on a counter's _total and a histogram's _bucket "
                                 "samples")
                                    .c_str());
        }
        sample.exemplar = exemplar_of(fields[4], at);
      }
    }
    out.push_back(std::move(family));
  }
  return out;
}

NameEscaping escaping_from(std::string_view name) {
  const auto escaping = name_escaping_from(name);
  if (!escaping) {
    throw nb::value_error(("unknown name escaping '" + std::string(name) +
                           "'; allowed: underscores, dots, values, allow-utf-8")
                              .c_str());
  }
  return *escaping;
}

// One scrape's request: the collected families, the sample names of
// restricted_registry(names) (None for everything) and the escaping.
Registry::Scrape scrape_from_python(nb::handle collected, nb::handle names, std::string_view escaping) {
  Registry::Scrape scrape;
  scrape.escaping = escaping_from(escaping);
  scrape.collected = sample_families_from_python(collected);
  if (!names.is_none()) {
    Registry::NameSet only;
    Where where;
    where.what = "a metric name to restrict to";
    for (nb::handle name : names) only.insert(text_of(name.ptr(), where));
    scrape.only = std::move(only);
  }
  return scrape;
}

// The raw method tables _own_fast_methods() copies, by the native type they belong to.
std::vector<std::pair<PyTypeObject*, PyMethodDef*>>& fast_method_tables() {
  static std::vector<std::pair<PyTypeObject*, PyMethodDef*>> tables;
  return tables;
}

}  // namespace

// CPython specialises a call to a C method only when the receiver's type is
// exactly the method's own; the facade's classes subclass the native types,
// so _own_fast_methods() gives them copies of the fast paths made for them.
void add_fast_methods(PyTypeObject* base, PyMethodDef* defs) { fast_method_tables().emplace_back(base, defs); }

void init_metrics(nb::module_& m) {
  using CounterRef = SeriesRef<Counter>;
  using GaugeRef = SeriesRef<Gauge>;
  using HistogramRef = SeriesRef<Histogram>;

  bind_series<Counter>(m, "Counter", "A counter series: a total that only goes up.")
      .def(
          "get", [](const CounterRef& r) { return r.get().get(); }, "The total since creation or the last reset().")
      .def(
          "reset", [](const CounterRef& r) { r.get().reset(); }, "Starts again from zero.")
      .def_prop_ro("created_unix_nano", [](const CounterRef& r) { return r.get().created_unix_nano(); });

  bind_series<Gauge>(m, "Gauge", "A gauge series: a value that goes up and down.")
      .def(
          "set_to_current_time", [](const GaugeRef& r) { r.get().set_to_current_time(); },
          "Sets the gauge to the current Unix time in seconds.")
      .def(
          "get", [](const GaugeRef& r) { return r.get().get(); }, "The current value.")
      .def_prop_ro("created_unix_nano", [](const GaugeRef& r) { return r.get().created_unix_nano(); });

  nb::class_<HistogramSnapshot>(m, "HistogramSnapshot",
                                "A copy of a histogram in OpenTelemetry exponential-histogram layout.")
      .def_ro("scale", &HistogramSnapshot::scale)
      .def_ro("zero_count", &HistogramSnapshot::zero_count)
      .def_ro("zero_threshold", &HistogramSnapshot::zero_threshold)
      .def_ro("offset", &HistogramSnapshot::offset)
      .def_ro("counts", &HistogramSnapshot::counts)
      .def_ro("count", &HistogramSnapshot::count)
      .def_ro("sum", &HistogramSnapshot::sum)
      .def_ro("min", &HistogramSnapshot::min)
      .def_ro("max", &HistogramSnapshot::max)
      .def_ro("start_unix_nano", &HistogramSnapshot::start_unix_nano)
      .def_ro("bounds", &HistogramSnapshot::bounds, "Classic bucket bounds (empty without classic buckets).")
      .def_ro("bound_counts", &HistogramSnapshot::bound_counts,
              "Per classic bucket (previous bound, bound] its count, then the count above the last bound.")
      .def("percentile", &HistogramSnapshot::percentile, "p"_a, "Estimated value at percentile p in [0, 100].")
      .def("mean", &HistogramSnapshot::mean)
      .def("bucket_lower", &HistogramSnapshot::bucket_lower, "index"_a, "base**index, the bucket's exclusive lower bound.");

  bind_series<Histogram>(m, "Histogram", "A histogram series: a base-2 exponential sketch.")
      .def(
          "get_percentile",
          [](const HistogramRef& r, double p, bool recent) {
            if (!recent) return r.get().percentile(p);
            if (r.get().max_age_seconds() <= 0) {
              throw nb::value_error(("get_percentile(recent=True) needs a histogram made with max_age_seconds; '" +
                                     r.family->info().name + "' has none")
                                        .c_str());
            }
            return r.get().recent().percentile(p);
          },
          "p"_a, "recent"_a = false,
          "Estimated value at percentile p in [0, 100] over every observation, or with recent=True over about "
          "the last max_age_seconds; NaN without observations.")
      .def(
          "get_mean", [](const HistogramRef& r) { return r.get().mean(); }, "Mean; NaN before any observation.")
      .def(
          "get_count", [](const HistogramRef& r) { return r.get().count(); }, "Number of observations.")
      .def(
          "get_sum", [](const HistogramRef& r) { return r.get().sum(); }, "Sum of observations.")
      .def(
          "get_min", [](const HistogramRef& r) { return r.get().min(); }, "Smallest observation; NaN before any.")
      .def(
          "get_max", [](const HistogramRef& r) { return r.get().max(); }, "Largest observation; NaN before any.")
      .def(
          "snapshot", [](const HistogramRef& r) { return r.get().snapshot(); },
          "The buckets in OpenTelemetry exponential-histogram layout.")
      .def(
          "recent", [](const HistogramRef& r) { return r.get().recent(); },
          "The observations of about the last max_age_seconds (the snapshot without a window).")
      .def_prop_ro("scale", [](const HistogramRef& r) { return r.family->info().scale; })
      .def_prop_ro(
          "max_age_seconds",
          [](const HistogramRef& r) -> std::optional<double> {
            const double age = r.family->info().max_age_s;
            return age > 0 ? std::optional<double>(age) : std::nullopt;
          },
          "Seconds of the recent window behind the summary quantiles, or None.")
      .def_prop_ro(
          "buckets", [](const HistogramRef& r) { return r.family->info().buckets; },
          "The classic bucket bounds, without +Inf (empty without classic buckets).");

  bind_family<Counter>(m, "CounterFamily", "A counter and its labelled series.");
  bind_family<Gauge>(m, "GaugeFamily", "A gauge and its labelled series.");
  bind_family<Histogram>(m, "HistogramFamily", "A histogram and its labelled series.");

  add_fast_methods(reinterpret_cast<PyTypeObject*>(nb::type<CounterRef>().ptr()), SeriesMethods<Counter>::defs);
  add_fast_methods(reinterpret_cast<PyTypeObject*>(nb::type<GaugeRef>().ptr()), SeriesMethods<Gauge>::defs);
  add_fast_methods(reinterpret_cast<PyTypeObject*>(nb::type<HistogramRef>().ptr()), SeriesMethods<Histogram>::defs);
  m.def(
      "_own_fast_methods",
      [](nb::type_object cls) {
        for (const auto& [base, defs] : fast_method_tables()) {
          if (!PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(cls.ptr()), base)) continue;
          for (PyMethodDef* def = defs; def->ml_name != nullptr; ++def) {
            nb::object descriptor = nb::steal(PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), def));
            if (!descriptor.is_valid()) throw nb::python_error();
            nb::setattr(cls, def->ml_name, descriptor);
          }
        }
      },
      "cls"_a,
      "Gives a Python subclass of a native type with raw fast-path methods (Counter, Gauge, Histogram, "
      "EnumState) its own copies of them.");

  nb::class_<Registry>(m, "Registry", "A set of metric families rendered together.")
      .def(nb::init<>())
      .def("counter", &Registry::counter, "name"_a, "help"_a, "label_names"_a = Labels{}, "unit"_a = "")
      .def(
          "gauge",
          [](Registry& r, std::string name, std::string help, Labels label_names, std::string unit,
             std::string_view multiprocess_mode, bool up_down) {
            return r.gauge(std::move(name), std::move(help), std::move(label_names), std::move(unit),
                           gauge_mode_from(multiprocess_mode), up_down);
          },
          "name"_a, "help"_a, "label_names"_a = Labels{}, "unit"_a = "", "multiprocess_mode"_a = "all",
          "up_down"_a = false,
          "A gauge family; multiprocess_mode: how the multi-process aggregate combines processes (all, liveall, "
          "min, livemin, max, livemax, sum, livesum, mostrecent, livemostrecent); up_down: an up-down sum "
          "(an OpenTelemetry UpDownCounter), which OTLP carries as a non-monotonic Sum.")
      .def("set_multiprocess_directory", &Registry::set_multiprocess_directory, "directory"_a,
           "Makes every rendering report the aggregate of the processes recording in `directory` ('' : this "
           "process only).")
      .def("multiprocess_directory", &Registry::multiprocess_directory)
      .def("histogram", &Registry::histogram, "name"_a, "help"_a, "label_names"_a = Labels{},
           "scale"_a = Histogram::kDefaultScale, "buckets"_a = std::vector<double>{}, "max_age_s"_a = 0.0,
           "unit"_a = "",
           "A histogram family; buckets: classic bucket bounds (increasing, finite; +Inf is added), "
           "empty for none.")
      .def("unregister", &Registry::unregister, "name"_a)
      .def("clear", &Registry::clear)
      .def("names", &Registry::names)
      .def("exposed_names", &Registry::exposed_sample_names,
           "Every sample name the families expose or may expose (x, x_total, x_created ...), sorted.")
      .def("__len__", &Registry::size)
      .def(
          "summary",
          [](Registry& r, std::string name, std::string help, Labels label_names, std::vector<double> quantiles,
             double max_age_s, std::string unit) {
            return r.summary(std::move(name), std::move(help), std::move(label_names), std::move(quantiles),
                             max_age_s, std::move(unit));
          },
          "name"_a, "help"_a, "label_names"_a = Labels{}, "quantiles"_a = std::vector<double>{}, "max_age_s"_a = 0.0,
          "unit"_a = "",
          "A summary family (a histogram every format shows as a summary with exactly these quantiles; none: "
          "_count and _sum only).")
      .def("__contains__", [](const Registry& r, std::shared_ptr<CounterFamily> f) { return r.contains(f); })
      .def("__contains__", [](const Registry& r, std::shared_ptr<GaugeFamily> f) { return r.contains(f); })
      .def("__contains__", [](const Registry& r, std::shared_ptr<HistogramFamily> f) { return r.contains(f); },
           "Whether this registry exposes exactly that family.")
      .def("add", [](Registry& r, std::shared_ptr<CounterFamily> f) { r.add(f); }, "family"_a)
      .def("add", [](Registry& r, std::shared_ptr<GaugeFamily> f) { r.add(f); }, "family"_a)
      .def("add", [](Registry& r, std::shared_ptr<HistogramFamily> f) { r.add(f); }, "family"_a,
           "Exposes a family made elsewhere here too (adding it twice does nothing; a clash raises ValueError).")
      .def(
          "render_prometheus",
          [](const Registry& r, nb::handle collected, nb::handle names, std::string_view escaping) {
            Registry::Scrape scrape = scrape_from_python(collected, names, escaping);
            std::string out;
            {
              nb::gil_scoped_release release;
              out = r.render_prometheus(scrape);
            }
            warn_multiprocess();
            return out;
          },
          "collected"_a = nb::tuple(), "names"_a = nb::none(), "escaping"_a = "underscores",
          nb::sig("def render_prometheus(self, collected: Sequence[object] = (), names: Iterable[str] | None = None, "
                  "escaping: str = 'underscores') -> str"),
          "The registry (with `names`, only the families exposing one of those sample names), then the "
          "`collected` metric families (name, documentation, type, unit, samples), in Prometheus text format "
          "0.0.4; names outside the legacy character set escaped as `escaping` says (underscores, dots, values, "
          "allow-utf-8).")
      .def(
          "render_openmetrics",
          [](const Registry& r, bool created_series, nb::handle collected, nb::handle names,
             std::string_view escaping) {
            Registry::Scrape scrape = scrape_from_python(collected, names, escaping);
            scrape.created_series = created_series;
            std::string out;
            {
              nb::gil_scoped_release release;
              out = r.render_openmetrics(scrape);
            }
            warn_multiprocess();
            return out;
          },
          "created_series"_a = true, "collected"_a = nb::tuple(), "names"_a = nb::none(),
          "escaping"_a = "underscores",
          nb::sig("def render_openmetrics(self, created_series: bool = True, collected: Sequence[object] = (), "
                  "names: Iterable[str] | None = None, escaping: str = 'underscores') -> str"),
          "The same as OpenMetrics 1.0 text (ends in '# EOF'), with a _created sample per counter, histogram and "
          "summary series of the registry's own unless created_series is False.")
      .def(
          "encode_protobuf",
          [](const Registry& r, nb::handle collected, nb::handle names, std::string_view escaping) {
            Registry::Scrape scrape = scrape_from_python(collected, names, escaping);
            std::string body;
            {
              nb::gil_scoped_release release;
              body = r.encode_protobuf(scrape);
            }
            warn_multiprocess();
            return nb::bytes(body.data(), body.size());
          },
          "collected"_a = nb::tuple(), "names"_a = nb::none(), "escaping"_a = "underscores",
          nb::sig("def encode_protobuf(self, collected: Sequence[object] = (), names: Iterable[str] | None = None, "
                  "escaping: str = 'underscores') -> bytes"),
          "The same as length-delimited io.prometheus.client.MetricFamily messages "
          "(native histograms; see veda/metrics/protobuf_format.hpp).")
      .def(
          "encode_otlp",
          [](const Registry& r, nb::handle resource, std::string_view scope_name, std::string_view scope_version,
             std::int64_t time_unix_nano) {
            const Attributes attributes = attributes_from_python(resource.ptr());
            std::string body;
            {
              nb::gil_scoped_release release;
              body = encode_otlp_metrics(r.collect(), attributes, scope_name, scope_version, time_unix_nano);
            }
            warn_multiprocess();
            return nb::bytes(body.data(), body.size());
          },
          "resource"_a, "scope_name"_a, "scope_version"_a, "time_unix_nano"_a,
          nb::sig("def encode_otlp(self, resource: dict[str, object], scope_name: str, scope_version: str, "
                  "time_unix_nano: int) -> bytes"),
          "Every family as a serialised OTLP ExportMetricsServiceRequest (see veda/metrics/otlp.hpp).")
      .def(
          "collect_samples",
          [](const Registry& r) {
            std::vector<FamilySnapshot> families;
            {
              nb::gil_scoped_release release;
              families = r.collect();
            }
            warn_multiprocess();
            nb::list out;
            std::string quantile;
            for (const FamilySnapshot& family : families) {
              const FamilyInfo& info = family.info;
              nb::list samples;
              for_each_sample(family, [&](const ExposedSample& sample) {
                nb::dict labels;
                for (std::size_t i = 0; i < info.label_names.size(); ++i) {
                  labels[info.label_names[i].c_str()] = sample.series->label_values[i];
                }
                if (sample.has_quantile) {
                  quantile.clear();
                  append_double(quantile, sample.quantile);
                  labels["quantile"] = quantile;
                }
                if (sample.has_le) {
                  quantile.clear();
                  append_canonical_number(quantile, sample.le);
                  labels["le"] = quantile;
                }
                samples.append(nb::make_tuple(nb::str(sample.name.data(), sample.name.size()), labels, sample.value));
              });
              const std::string_view type = exposition_type(info);
              out.append(nb::make_tuple(info.name, info.help, nb::str(type.data(), type.size()), samples));
            }
            return out;
          },
          nb::sig("def collect_samples(self) -> list[tuple[str, str, str, list[tuple[str, dict[str, str], float]]]]"),
          "The registry's families as (name, help, type, samples), each sample (name, labels, value): "
          "the lines of the 0.0.4 text, unformatted.");

  m.def("is_valid_metric_name", &is_valid_metric_name, "name"_a, "Whether name matches [a-zA-Z_:][a-zA-Z0-9_:]*.");
  m.def(
      "set_legacy_name_validation",
      [](bool legacy) { set_name_validation(legacy ? NameValidation::legacy : NameValidation::utf8); }, "legacy"_a,
      "True: metric and label names must use the legacy character set; False: any UTF-8 text without control "
      "characters.");
  m.def(
      "legacy_name_validation", [] { return name_validation() == NameValidation::legacy; },
      "Whether names must use the legacy character set.");
  m.def(
      "check_metric_name", [](std::string_view name) { check_metric_name(name); }, "name"_a,
      "ValueError naming the rule unless name is valid under the current validation.");
  m.def(
      "check_label_name", [](std::string_view name) { check_label_name(name); }, "name"_a,
      "ValueError naming the rule unless name is valid under the current validation.");
  m.def(
      "escape_metric_name",
      [](std::string_view name, std::string_view escaping) { return escaped_metric_name(name, escaping_from(escaping)); },
      "name"_a, "escaping"_a, "The name as an exposition with that escaping writes it (unquoted).");
  m.def(
      "render_openmetrics_from_text",
      [](std::string_view text) {
        std::string out;
        render_openmetrics_from_text(text, out);
        return out;
      },
      "text"_a,
      "Prometheus text format 0.0.4 rewritten as OpenMetrics 1.0 text ending in '# EOF'; ValueError naming the "
      "line for malformed input.");
  m.def("is_valid_label_name", &is_valid_label_name, "name"_a,
        "Whether name matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with '__'.");
  m.def("default_registry", &default_registry, nb::rv_policy::reference,
        "The process-wide registry metrics register in by default.");
  m.def("check_histogram_bounds", &Histogram::check_bounds, "bounds"_a,
        "The classic bucket bounds without a trailing +Inf; ValueError naming the rule they break.");
  m.attr("PROMETHEUS_CONTENT_TYPE") = std::string(kPrometheusContentType);
  m.attr("OPENMETRICS_CONTENT_TYPE") = std::string(kOpenMetricsContentType);
  m.attr("PROTOBUF_CONTENT_TYPE") = std::string(kProtobufContentType);
  m.attr("HISTOGRAM_DEFAULT_SCALE") = Histogram::kDefaultScale;
  nb::list quantiles;
  for (const double q : kSummaryQuantiles) quantiles.append(q);
  m.attr("SUMMARY_QUANTILES") = nb::tuple(quantiles);  // every export's quantile set
  m.attr("HISTOGRAM_MIN_SCALE") = Histogram::kMinScale;
  m.attr("HISTOGRAM_MAX_SCALE") = Histogram::kMaxScale;
  m.attr("HISTOGRAM_MAX_BUCKETS") = Histogram::kMaxBuckets;
}

}  // namespace veda::bindings
