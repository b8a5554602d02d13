// Bindings for tracing: span ids, live spans, the tracer base class and the span store.
//
// Span and Tracer are the bases of pyveda.telemetry.tracing.Span and
// TracingSystem. The hot calls (Tracer.span, Span.__enter__/__exit__) are
// METH_FASTCALL methods: nanobind's generic dispatch would cost more than the
// span itself. The current span lives in the ContextVar `current_span`, set
// and reset through the C API. The Python subclasses add what is rare and
// Python-shaped: enums, exception formatting, repr.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "bindings.hpp"
#include "veda/tracing/otlp.hpp"
#include "veda/tracing/span_store.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace veda::bindings {
namespace {

// --- shared state -------------------------------------------------------------------------------

// Set once at import: the ContextVar holding the current span, and the Python
// classes the facade registers (its Span subclass, SpanContext, Mapping).
struct TracingTypes {
  PyObject* current_span = nullptr;  // owned by the module (attribute `current_span`)
  PyTypeObject* span_base = nullptr;
  PyObject* span_class = nullptr;  // owned by the module (attribute `_span_class`)
  PyObject* span_context_class = nullptr;
  PyObject* mapping_abc = nullptr;
};
TracingTypes types;

std::string type_name_of(PyObject* o) {
  nb::object name = nb::steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(Py_TYPE(o)), "__name__"));
  if (!name.is_valid()) {
    PyErr_Clear();
    return Py_TYPE(o)->tp_name;
  }
  return nb::str(name).c_str();
}

// repr(o) cut to 60 characters, as the f-string format {o!r:.60} does.
std::string short_repr(PyObject* o) {
  nb::object r = nb::steal(PyObject_Repr(o));
  if (!r.is_valid()) {
    PyErr_Clear();
    return "?";
  }
  if (PyUnicode_GetLength(r.ptr()) > 60) r = nb::steal(PyUnicode_Substring(r.ptr(), 0, 60));
  return nb::str(r).c_str();
}

std::string quoted(const std::string& text) { return nb::repr(nb::str(text.data(), text.size())).c_str(); }

std::string utf8(PyObject* s) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(s, &size);
  if (data == nullptr) throw nb::python_error();
  return std::string(data, static_cast<std::size_t>(size));
}

// --- attribute values ---------------------------------------------------------------------------

[[noreturn]] void unsupported(const std::string& key, PyObject* value) {
  throw nb::type_error(("attribute " + quoted(key) +
                        ": value must be str, bool, int, float or a list of one of them, got " +
                        type_name_of(value) + " (" + short_repr(value) + ")")
                           .c_str());
}

// One scalar; subclasses of str/int/float (IntEnum, ...) become the base type, as str(v)/int(v)/float(v).
AttributeValue scalar(const std::string& key, PyObject* v) {
  if (PyUnicode_CheckExact(v)) return utf8(v);
  if (PyBool_Check(v)) return v == Py_True;
  if (PyFloat_CheckExact(v)) return PyFloat_AS_DOUBLE(v);
  if (PyLong_CheckExact(v)) {
    int overflow = 0;
    const long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow != 0) {
      throw nb::type_error(("attribute " + quoted(key) + ": int value " + nb::str(nb::handle(v)).c_str() +
                            " does not fit in 64 bits")
                               .c_str());
    }
    if (n == -1 && PyErr_Occurred()) throw nb::python_error();
    return static_cast<std::int64_t>(n);
  }
  for (PyTypeObject* base : {&PyUnicode_Type, &PyLong_Type, &PyFloat_Type}) {
    if (PyObject_TypeCheck(v, base)) {
      nb::object plain = nb::steal(PyObject_CallOneArg(reinterpret_cast<PyObject*>(base), v));
      if (!plain.is_valid()) throw nb::python_error();
      return scalar(key, plain.ptr());
    }
  }
  unsupported(key, v);
}

const char* value_type_name(const AttributeValue& v) {
  switch (v.index()) {
    case 0: return "str";
    case 1: return "bool";
    case 2: return "int";
    default: return "float";
  }
}

template <class T>
std::vector<T> homogeneous(const std::string& key, std::vector<AttributeValue>& items) {
  std::vector<T> out;
  out.reserve(items.size());
  for (auto& item : items) {
    if (item.index() != items.front().index()) {
      throw nb::type_error(("attribute " + quoted(key) + ": list items must all have one type, got " +
                            value_type_name(items.front()) + " and " + value_type_name(item))
                               .c_str());
    }
    out.push_back(std::move(std::get<T>(item)));
  }
  return out;
}

AttributeValue check_value(const std::string& key, PyObject* v) {
  if (!PyList_Check(v) && !PyTuple_Check(v)) return scalar(key, v);
  nb::object seq = nb::steal(PySequence_Fast(v, "attribute list"));
  if (!seq.is_valid()) throw nb::python_error();
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.ptr());
  PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
  std::vector<AttributeValue> values;
  values.reserve(static_cast<std::size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = items[i];
    if (PyList_Check(item) || PyTuple_Check(item)) unsupported(key, item);
    values.push_back(scalar(key, item));
  }
  if (values.empty()) return std::vector<std::string>{};
  switch (values.front().index()) {
    case 0: return homogeneous<std::string>(key, values);
    case 1: return homogeneous<bool>(key, values);
    case 2: return homogeneous<std::int64_t>(key, values);
    default: return homogeneous<double>(key, values);
  }
}

std::string check_key(PyObject* key) {
  if (!PyUnicode_CheckExact(key)) {
    throw nb::type_error(
        ("attribute keys must be str, got " + type_name_of(key) + " (" + short_repr(key) + ")").c_str());
  }
  return utf8(key);
}

// A mapping of attributes (None: none), checked whole before anything is used.
Attributes check_attributes(PyObject* mapping) {
  Attributes out;
  if (mapping == Py_None) return out;
  if (PyDict_Check(mapping)) {
    out.reserve(static_cast<std::size_t>(PyDict_GET_SIZE(mapping)));
    Py_ssize_t pos = 0;
    PyObject *k = nullptr, *v = nullptr;
    while (PyDict_Next(mapping, &pos, &k, &v)) {
      std::string key = check_key(k);
      AttributeValue value = check_value(key, v);
      out.push_back({std::move(key), std::move(value)});
    }
    return out;
  }
  const int is_mapping = PyObject_IsInstance(mapping, types.mapping_abc);
  if (is_mapping < 0) throw nb::python_error();
  if (is_mapping == 0) {
    throw nb::type_error(("attributes must be a mapping, got " + type_name_of(mapping)).c_str());
  }
  nb::object items = nb::steal(PyMapping_Items(mapping));
  if (!items.is_valid()) throw nb::python_error();
  for (nb::handle pair : items) {
    nb::handle k = pair[0], v = pair[1];
    std::string key = check_key(k.ptr());
    AttributeValue value = check_value(key, v.ptr());
    out.push_back({std::move(key), std::move(value)});
  }
  return out;
}

nb::object from_value(const AttributeValue& value) {
  return std::visit(
      [](const auto& v) -> nb::object {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::vector<bool>>) {
          nb::list out;
          for (bool b : v) out.append(nb::bool_(b));
          return std::move(out);
        } else {
          return nb::cast(v);
        }
      },
      value);
}

nb::dict from_attributes(const Attributes& attributes) {
  nb::dict out;
  for (const auto& a : attributes) out[nb::str(a.key.data(), a.key.size())] = from_value(a.value);
  return out;
}

nb::list from_events(const std::vector<SpanEvent>& events) {
  nb::list out;
  for (const auto& e : events) {
    out.append(nb::make_tuple(e.time_unix_nano, e.name, from_attributes(e.attributes), e.dropped_attributes_count));
  }
  return out;
}

// --- ids ----------------------------------------------------------------------------------------

template <class Id>
nb::bytes id_bytes(const Id& id) {
  return nb::bytes(reinterpret_cast<const char*>(id.data()), id.size());
}

template <class Id>
nb::str id_text(const Id& id) {
  const std::string text = to_hex(id);
  return nb::str(text.data(), text.size());
}

template <class Id>
Id parse_id(std::string_view text, bool (*parse)(std::string_view, Id&) noexcept, const char* what) {
  Id id{};
  if (!parse(text, id) || !is_valid(id)) {
    throw nb::value_error((std::string(what) + " must be non-zero lowercase hex, got '" + std::string(text) + "'")
                              .c_str());
  }
  return id;
}

// A span or trace id given by a user: the message says what is allowed.
template <class Id>
Id user_id(PyObject* value, bool (*parse)(std::string_view, Id&) noexcept, const char* what) {
  Id id{};
  if (PyUnicode_Check(value)) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(value, &size);
    if (data == nullptr) PyErr_Clear();
    if (data != nullptr && parse(std::string_view(data, static_cast<std::size_t>(size)), id) && is_valid(id)) {
      return id;
    }
  }
  throw nb::value_error((std::string(what) + " must be " + std::to_string(id.size() * 2) +
                         " lowercase hex characters, not all zero; got " + short_repr(value))
                            .c_str());
}

std::int64_t time_arg(PyObject* value, const char* what) {
  nb::object n = nb::steal(PyNumber_Long(value));
  if (!n.is_valid()) {
    PyErr_Clear();
    throw nb::type_error((std::string(what) + " must be an int (ns since the epoch) or None, got " +
                          type_name_of(value))
                             .c_str());
  }
  int overflow = 0;
  const long long t = PyLong_AsLongLongAndOverflow(n.ptr(), &overflow);
  if (overflow != 0 || t < 0) {
    // OTLP carries times as fixed64: a negative time would export as a date in the year 2554.
    throw nb::value_error((std::string(what) + " must be an int of ns since the epoch in [0, 2**63), got " +
                           nb::str(nb::handle(value)).c_str())
                              .c_str());
  }
  return t;
}

// --- spans --------------------------------------------------------------------------------------

// The C++ half of a Python span.
struct PySpan {
  veda::Span span;
  nb::object parent;  // the span current when this one started (for ancestor lookups), until it ends
  nb::object token;   // the ContextVar token while this span is current
};

PySpan& as_span(PyObject* self) { return *nb::inst_ptr<PySpan>(self); }

PySpan* span_or_null(PyObject* o) {
  if (o == nullptr || o == Py_None || !PyObject_TypeCheck(o, types.span_base)) return nullptr;
  return &as_span(o);
}

// A new instance of the facade's Span class around `span`.
nb::object make_span(veda::Span&& span, nb::object parent) {
  if (types.span_class == nullptr) throw std::runtime_error("pyveda tracing is not initialised");
  nb::object o = nb::inst_alloc(nb::handle(types.span_class));
  new (nb::inst_ptr<PySpan>(o)) PySpan{std::move(span), std::move(parent), nb::object()};
  nb::inst_mark_ready(o);
  return o;
}

void end_span(PySpan& s, std::int64_t end_time) {
  if (s.span.end(end_time)) s.parent = nb::object();
}

// Runs `body` and turns C++ exceptions into Python ones (for the METH_FASTCALL methods).
template <class Body>
PyObject* guarded(Body&& body) noexcept {
  try {
    return body();
  } catch (nb::python_error& e) {
    e.restore();
  } catch (const nb::builtin_exception& e) {
    PyErr_SetString(e.type() == nb::exception_type::type_error ? PyExc_TypeError : PyExc_ValueError, e.what());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

PyObject* span_enter(PyObject* self, PyObject*) noexcept {
  PyObject* token = PyContextVar_Set(types.current_span, self);
  if (token == nullptr) return nullptr;
  as_span(self).token = nb::steal(token);
  Py_INCREF(self);
  return self;
}

// Makes the span's parent current again. A token from another context (a
// generator resumed elsewhere) cannot be used: then no span is current.
bool restore_context(PySpan& s) {
  nb::object token = std::move(s.token);
  if (!token.is_valid()) return true;
  if (PyContextVar_Reset(types.current_span, token.ptr()) == 0) return true;
  if (!PyErr_ExceptionMatches(PyExc_ValueError)) return false;
  PyErr_Clear();
  PyObject* other = PyContextVar_Set(types.current_span, Py_None);
  Py_XDECREF(other);
  return other != nullptr;
}

PyObject* span_exit(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
  if (nargs != 3) {
    PyErr_Format(PyExc_TypeError, "__exit__() takes 3 arguments (exc_type, exc, traceback), got %zd", nargs);
    return nullptr;
  }
  PySpan& s = as_span(self);
  PyObject* exc = args[1];
  PyObject *error_type = nullptr, *error_value = nullptr, *error_tb = nullptr;
  if (exc != Py_None && s.span.is_recording()) {
    // record_exception is the facade's (it formats the traceback); an error in
    // it still ends the span and restores the context, then propagates.
    static PyObject* method = PyUnicode_InternFromString("record_exception");
    PyObject* call_args[] = {self, exc};
    PyObject* r = PyObject_VectorcallMethod(method, call_args, 2, nullptr);
    if (r == nullptr) PyErr_Fetch(&error_type, &error_value, &error_tb);
    Py_XDECREF(r);
    PyObject* text = PyObject_Str(exc);
    std::string description = type_name_of(exc);
    if (text != nullptr) {
      const char* utf = PyUnicode_AsUTF8(text);
      if (utf != nullptr) description += std::string(": ") + utf;
    }
    if (PyErr_Occurred()) PyErr_Clear();
    Py_XDECREF(text);
    s.span.set_status(StatusCode::kError, std::move(description));
  }
  end_span(s, unix_nano_now());
  const bool restored = restore_context(s);
  if (error_type != nullptr) {
    if (!restored) PyErr_Clear();
    PyErr_Restore(error_type, error_value, error_tb);
    return nullptr;
  }
  if (!restored) return nullptr;
  Py_RETURN_FALSE;
}

PyMethodDef span_methods[] = {
    {"__enter__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&span_enter)), METH_NOARGS,
     "__enter__(self) -> Span\n--\n\nMakes this span the current one and returns it."},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&span_exit)), METH_FASTCALL,
     "__exit__(self, exc_type, exc, traceback) -> bool\n--\n\n"
     "Ends the span (an exception marks it as an error and is recorded with record_exception()), "
     "restores the previous current span and returns False."},
    {nullptr, nullptr, 0, nullptr}};
// A span that is current holds its token, whose context holds the span: a
// cycle until __exit__. The collector must see it (a span entered and never
// exited would otherwise leak), so the type takes part in garbage collection.
int span_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  if (!nb::inst_ready(self)) return 0;
  PySpan& s = as_span(self);
  Py_VISIT(s.parent.ptr());
  Py_VISIT(s.token.ptr());
  return 0;
}

int span_clear(PyObject* self) {
  if (nb::inst_ready(self)) {
    PySpan& s = as_span(self);
    s.parent = nb::object();
    s.token = nb::object();
  }
  return 0;
}

PyType_Slot span_slots[] = {{Py_tp_methods, span_methods},
                            {Py_tp_traverse, reinterpret_cast<void*>(&span_traverse)},
                            {Py_tp_clear, reinterpret_cast<void*>(&span_clear)},
                            {0, nullptr}};

// --- the tracer ---------------------------------------------------------------------------------

struct Tracer {
  std::shared_ptr<SpanStore> store;
  SpanLimits limits;
};

enum SpanArg { kName, kAttributes, kParentSpanId, kTraceId, kKind, kContext, kStartTime, kSpanArgCount };
PyObject* span_arg_name(int i) {
  static PyObject* names[kSpanArgCount] = {
      PyUnicode_InternFromString("name"),         PyUnicode_InternFromString("attributes"),
      PyUnicode_InternFromString("parent_span_id"), PyUnicode_InternFromString("trace_id"),
      PyUnicode_InternFromString("kind"),         PyUnicode_InternFromString("context"),
      PyUnicode_InternFromString("start_time")};
  return names[i];
}

// Fills `out` from positional and keyword arguments; TypeError like Python's for bad calls.
void parse_span_args(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames, PyObject* out[kSpanArgCount]) {
  if (nargs > kSpanArgCount) {
    throw nb::type_error(("span() takes at most 7 arguments (" + std::to_string(nargs) + " given)").c_str());
  }
  for (Py_ssize_t i = 0; i < nargs; ++i) out[i] = args[i];
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* kw = PyTuple_GET_ITEM(kwnames, k);
    int slot = -1;
    for (int i = 0; i < kSpanArgCount && slot < 0; ++i) {
      if (kw == span_arg_name(i)) slot = i;
    }
    for (int i = 0; i < kSpanArgCount && slot < 0; ++i) {
      if (PyUnicode_Compare(kw, span_arg_name(i)) == 0) slot = i;
    }
    if (slot < 0) {
      throw nb::type_error(("span() got an unexpected keyword argument " + short_repr(kw)).c_str());
    }
    if (out[slot] != nullptr) {
      throw nb::type_error(("span() got multiple values for argument " + short_repr(kw)).c_str());
    }
    out[slot] = args[nargs + k];
  }
  if (out[kName] == nullptr) throw nb::type_error("span() missing required argument 'name'");
}

bool given(PyObject* arg) { return arg != nullptr && arg != Py_None; }

SpanKind kind_arg(PyObject* kind) {
  if (!given(kind)) return SpanKind::kInternal;
  if (PyLong_Check(kind)) {
    const long k = PyLong_AsLong(kind);
    if (k >= 0 && k <= 5) return static_cast<SpanKind>(k);
    PyErr_Clear();
  }
  throw nb::value_error(("kind must be a SpanKind (0..5), got " + short_repr(kind)).c_str());
}

// The parent of a span started with a SpanContext (from extract()).
SpanParent remote_parent(PyObject* context) {
  const int ok = PyObject_IsInstance(context, types.span_context_class);
  if (ok < 0) throw nb::python_error();
  if (ok == 0) {
    throw nb::type_error(
        ("context must be a SpanContext (from extract()), got " + type_name_of(context)).c_str());
  }
  nb::handle c(context);
  SpanParent parent;
  parent.trace_id = user_id<TraceId>(nb::object(c[0]).ptr(), &trace_id_from_hex, "context trace_id");
  parent.span_id = user_id<SpanId>(nb::object(c[1]).ptr(), &span_id_from_hex, "context span_id");
  parent.trace_flags = nb::cast<std::uint32_t>(c[2]);
  parent.trace_state = nb::cast<std::string>(c[3]);
  parent.is_remote = nb::cast<bool>(c[4]);
  return parent;
}

PyObject* tracer_span(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
  return guarded([&]() -> PyObject* {
    if (!nb::inst_ready(self)) throw std::runtime_error("span(): Tracer.__init__ was not called");
    PyObject* a[kSpanArgCount] = {};
    parse_span_args(args, nargs, kwnames, a);
    if (!PyUnicode_Check(a[kName])) {
      throw nb::type_error(("span name must be a str, got " + type_name_of(a[kName])).c_str());
    }
    std::string name = utf8(a[kName]);
    const SpanKind kind = kind_arg(a[kKind]);
    Attributes attributes = given(a[kAttributes]) ? check_attributes(a[kAttributes]) : Attributes{};
    const std::int64_t start = given(a[kStartTime]) ? time_arg(a[kStartTime], "start_time") : unix_nano_now();

    PyObject* current_raw = nullptr;
    if (PyContextVar_Get(types.current_span, Py_None, &current_raw) < 0) throw nb::python_error();
    nb::object current = nb::steal(current_raw);
    PySpan* current_span = span_or_null(current.ptr());

    // The parent, first match wins: context, parent_span_id, the current span.
    SpanParent parent;
    const SpanParent* parent_ptr = &parent;
    nb::object keep;  // the span chain the new span can search for ancestors
    if (given(a[kContext])) {
      parent = remote_parent(a[kContext]);
    } else if (given(a[kParentSpanId])) {
      keep = current;
      PySpan* explicit_parent = span_or_null(a[kParentSpanId]);
      const SpanId parent_id = explicit_parent != nullptr
                                   ? explicit_parent->span.data().span_id
                                   : user_id<SpanId>(a[kParentSpanId], &span_id_from_hex, "parent_span_id");
      if (given(a[kTraceId])) {
        parent.trace_id = user_id<TraceId>(a[kTraceId], &trace_id_from_hex, "trace_id");
        parent.span_id = parent_id;
      } else {
        // The parent's trace: found among the current span and its ancestors.
        PySpan* ancestor = current_span;
        while (ancestor != nullptr && ancestor->span.data().span_id != parent_id) {
          ancestor = span_or_null(ancestor->parent.ptr());
        }
        if (ancestor != nullptr) {
          parent = ancestor->span.as_parent();
        } else {
          parent.trace_id = current_span != nullptr ? current_span->span.data().trace_id : generate_trace_id();
          parent.span_id = parent_id;
        }
      }
    } else if (current_span != nullptr) {
      keep = current;
      parent = current_span->span.as_parent();
    } else if (given(a[kTraceId])) {
      parent.trace_id = user_id<TraceId>(a[kTraceId], &trace_id_from_hex, "trace_id");  // a root in a known trace
    } else {
      parent_ptr = nullptr;
    }

    auto& tracer = *nb::inst_ptr<Tracer>(self);
    veda::Span span = veda::Span::start(std::move(name), kind, parent_ptr, start, tracer.store, tracer.limits);
    if (!attributes.empty()) span.set_attributes(std::move(attributes));
    return make_span(std::move(span), std::move(keep)).release().ptr();
  });
}

PyMethodDef tracer_methods[] = {
    {"span", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&tracer_span)),
     METH_FASTCALL | METH_KEYWORDS,
     "span(self, name, attributes=None, parent_span_id=None, trace_id=None, kind=SpanKind.INTERNAL, "
     "context=None, start_time=None)\n--\n\n"
     "A started span; use it as a context manager to make it current and end it."},
    {nullptr, nullptr, 0, nullptr}};
PyType_Slot tracer_slots[] = {{Py_tp_methods, tracer_methods}, {0, nullptr}};

nb::list to_list(std::vector<SpanData>&& spans) {
  nb::list out;
  for (auto& s : spans) out.append(nb::cast(std::move(s)));
  return out;
}

nb::list shared_list(const std::vector<std::shared_ptr<const SpanData>>& records) {
  nb::list out;
  for (const auto& r : records) out.append(nb::cast(std::const_pointer_cast<SpanData>(r)));
  return out;
}

}  // namespace

Attributes attributes_from_python(PyObject* mapping) { return check_attributes(mapping); }

void init_tracing(nb::module_& m) {
  types.current_span = PyContextVar_New("pyveda_current_span", Py_None);
  if (types.current_span == nullptr) throw nb::python_error();
  m.attr("current_span") = nb::steal(types.current_span);
  types.mapping_abc = nb::module_::import_("collections.abc").attr("Mapping").ptr();  // kept alive by the module

  m.def("new_trace_id", [] { return to_hex(generate_trace_id()); },
        "A random trace id: 32 lowercase hex characters, never all zero.");
  m.def("new_span_id", [] { return to_hex(generate_span_id()); },
        "A random span id: 16 lowercase hex characters, never all zero.");
  m.def(
      "check_attributes", [](nb::handle mapping) { return from_attributes(check_attributes(mapping.ptr())); },
      "attributes"_a.none(), nb::sig("def check_attributes(attributes: object) -> dict[str, object]"),
      "The attributes as a span stores them (lists for tuples, plain int/str/float for their "
      "subclasses); TypeError naming the key for a value that is not str, bool, int, float or a "
      "homogeneous list of one of them.");

  nb::class_<SpanData>(m, "SpanData", "A finished span, as the span store holds it (read-only).")
      .def_prop_ro("trace_id", [](const SpanData& s) { return to_hex(s.trace_id); })
      .def_prop_ro("span_id", [](const SpanData& s) { return to_hex(s.span_id); })
      .def_prop_ro(
          "parent_span_id",
          [](const SpanData& s) -> nb::object {
            if (!s.parent_span_id) return nb::none();
            return id_text(*s.parent_span_id);
          },
          nb::sig("def parent_span_id(self) -> str | None"))
      .def_prop_ro("trace_id_bytes", [](const SpanData& s) { return id_bytes(s.trace_id); })
      .def_prop_ro("span_id_bytes", [](const SpanData& s) { return id_bytes(s.span_id); })
      .def_prop_ro("parent_span_id_bytes",
                   [](const SpanData& s) {
                     return s.parent_span_id ? id_bytes(*s.parent_span_id) : nb::bytes("", 0);
                   })
      .def_ro("trace_state", &SpanData::trace_state)
      .def_ro("flags", &SpanData::flags)
      .def_ro("name", &SpanData::name)
      .def_prop_ro("kind", [](const SpanData& s) { return static_cast<int>(s.kind); })
      .def_ro("start_time_unix_nano", &SpanData::start_time_unix_nano)
      .def_ro("end_time_unix_nano", &SpanData::end_time_unix_nano)
      .def_prop_ro("attributes", [](const SpanData& s) { return from_attributes(s.attributes); },
                   nb::sig("def attributes(self) -> dict[str, object]"))
      .def_prop_ro("events", [](const SpanData& s) { return from_events(s.events); },
                   nb::sig("def events(self) -> list[tuple[int, str, dict[str, object], int]]"),
                   "(time_unix_nano, name, attributes, dropped_attributes_count) per event, in the order added.")
      .def_prop_ro("status_code", [](const SpanData& s) { return static_cast<int>(s.status_code); })
      .def_ro("status_message", &SpanData::status_message)
      .def_ro("dropped_attributes_count", &SpanData::dropped_attributes_count)
      .def_ro("dropped_events_count", &SpanData::dropped_events_count)
      .def_ro("dropped_links_count", &SpanData::dropped_links_count);

  nb::class_<PySpan> span_class(
      m, "Span",
      "The native half of pyveda.telemetry.Span: a live span, then its finished record. "
      "Made by Tracer.span() and Tracer.get_spans(), not by calling the class.",
      nb::type_slots(span_slots));
  types.span_base = reinterpret_cast<PyTypeObject*>(span_class.ptr());
  span_class
      .def_prop_ro("name", [](const PySpan& s) { return s.span.data().name; })
      .def_prop_ro("trace_id", [](const PySpan& s) { return id_text(s.span.data().trace_id); })
      .def_prop_ro("span_id", [](const PySpan& s) { return id_text(s.span.data().span_id); })
      .def_prop_ro(
          "parent_span_id",
          [](const PySpan& s) -> nb::object {
            const auto& parent = s.span.data().parent_span_id;
            if (!parent) return nb::none();
            return id_text(*parent);
          },
          nb::sig("def parent_span_id(self) -> str | None"))
      .def_prop_ro("trace_state", [](const PySpan& s) { return s.span.data().trace_state; })
      .def_prop_ro("flags", [](const PySpan& s) { return s.span.data().flags; },
                   "OTLP Span.flags: W3C trace flags in the low byte, then the is-remote bits.")
      .def_prop_ro("_kind", [](const PySpan& s) { return static_cast<int>(s.span.data().kind); })
      .def_prop_ro("start_time", [](const PySpan& s) { return s.span.data().start_time_unix_nano; },
                   "Start, in ns since the Unix epoch.")
      .def_prop_ro(
          "end_time",
          [](const PySpan& s) -> nb::object {
            if (s.span.is_recording()) return nb::none();
            return nb::int_(s.span.data().end_time_unix_nano);
          },
          nb::sig("def end_time(self) -> int | None"), "End, in ns since the Unix epoch; None while live.")
      .def_prop_ro(
          "duration_ms",
          [](const PySpan& s) {
            const auto& d = s.span.data();
            const std::int64_t end = s.span.is_recording() ? unix_nano_now() : d.end_time_unix_nano;
            return static_cast<double>(end - d.start_time_unix_nano) / 1e6;
          },
          "Milliseconds from start to end (to now while the span is live).")
      .def_prop_ro("is_recording", [](const PySpan& s) { return s.span.is_recording(); })
      .def_prop_ro("attributes", [](const PySpan& s) { return from_attributes(s.span.data().attributes); },
                   nb::sig("def attributes(self) -> dict[str, object]"), "A copy of the attributes.")
      .def_prop_ro("_events", [](const PySpan& s) { return from_events(s.span.data().events); },
                   nb::sig("def _events(self) -> list[tuple[int, str, dict[str, object], int]]"))
      .def_prop_ro("dropped_attributes_count", [](const PySpan& s) { return s.span.data().dropped_attributes_count; },
                   "Attributes dropped because the span had its maximum (TracingSystem max_attributes).")
      .def_prop_ro("dropped_events_count", [](const PySpan& s) { return s.span.data().dropped_events_count; },
                   "Events dropped because the span had its maximum (TracingSystem max_events).")
      .def_prop_ro("_status_code", [](const PySpan& s) { return static_cast<int>(s.span.data().status_code); })
      .def_prop_ro(
          "status_description",
          [](const PySpan& s) -> nb::object {
            const auto& message = s.span.data().status_message;
            if (message.empty()) return nb::none();
            return nb::str(message.data(), message.size());
          },
          nb::sig("def status_description(self) -> str | None"))
      .def(
          "set_attribute",
          [](nb::handle self, nb::handle key, nb::handle value) {
            std::string k = check_key(key.ptr());
            AttributeValue v = check_value(k, value.ptr());
            as_span(self.ptr()).span.set_attribute(std::move(k), std::move(v));
            return nb::borrow(self);
          },
          "key"_a, "value"_a.none(), nb::sig("def set_attribute(self, key: str, value: object) -> typing_extensions.Self"),
          "Sets one attribute (ignored once the span has ended); TypeError naming the key for an "
          "unsupported value.")
      .def(
          "set_attributes",
          [](nb::handle self, nb::handle attributes) {
            as_span(self.ptr()).span.set_attributes(check_attributes(attributes.ptr()));
            return nb::borrow(self);
          },
          "attributes"_a.none(),
          nb::sig("def set_attributes(self, attributes: collections.abc.Mapping[str, object]) -> typing_extensions.Self"),
          "Sets several attributes; all are checked before any is set.")
      .def(
          "add_event",
          [](nb::handle self, nb::handle name, nb::handle attributes, nb::handle timestamp) {
            if (!PyUnicode_Check(name.ptr())) {
              throw nb::type_error(("event name must be a str, got " + type_name_of(name.ptr())).c_str());
            }
            SpanEvent event;
            event.name = utf8(name.ptr());
            event.attributes = check_attributes(attributes.ptr());
            event.time_unix_nano = timestamp.is_none() ? unix_nano_now() : time_arg(timestamp.ptr(), "timestamp");
            as_span(self.ptr()).span.add_event(std::move(event));
            return nb::borrow(self);
          },
          "name"_a.none(), "attributes"_a.none() = nb::none(), "timestamp"_a.none() = nb::none(),
          nb::sig("def add_event(self, name: str, attributes: collections.abc.Mapping[str, object] | None = None, "
                  "timestamp: int | None = None) -> typing_extensions.Self"),
          "Adds an event (timestamp in ns since the epoch, default now); ignored once the span has ended.")
      .def(
          "_set_status",
          [](PySpan& s, int code, std::string description) {
            if (code < 0 || code > 2) throw nb::value_error("status code must be 0, 1 or 2");
            return s.span.set_status(static_cast<StatusCode>(code), std::move(description));
          },
          "code"_a, "description"_a, "Sets the status code and description; False if ignored.")
      .def(
          "end",
          [](nb::handle self, nb::handle end_time) {
            end_span(as_span(self.ptr()),
                     end_time.is_none() ? unix_nano_now() : time_arg(end_time.ptr(), "end_time"));
          },
          "end_time"_a.none() = nb::none(), nb::sig("def end(self, end_time: int | None = None) -> None"),
          "Ends the span (end_time in ns since the epoch, default now) and hands it to the span store; "
          "later calls do nothing.");

  nb::class_<SpanStore>(m, "SpanStore",
                        "A bounded ring of finished spans; when full the oldest is dropped and counted "
                        "in pyveda_spans_dropped_total.")
      .def(nb::init<std::size_t>(), "capacity"_a = SpanStore::kDefaultCapacity)
      .def(
          "add",
          [](SpanStore& store, std::string_view trace_id, std::string_view span_id, std::string_view parent_span_id,
             std::string trace_state, std::uint32_t flags, std::string name, int kind, std::int64_t start,
             std::int64_t end, nb::handle attributes, nb::handle events, int status_code,
             std::string status_message) {
            if (kind < 0 || kind > 5) throw nb::value_error("span kind must be 0..5");
            if (status_code < 0 || status_code > 2) throw nb::value_error("status code must be 0..2");
            SpanData span;
            span.trace_id = parse_id<TraceId>(trace_id, &trace_id_from_hex, "trace_id");
            span.span_id = parse_id<SpanId>(span_id, &span_id_from_hex, "span_id");
            if (!parent_span_id.empty()) {
              span.parent_span_id = parse_id<SpanId>(parent_span_id, &span_id_from_hex, "parent_span_id");
            }
            span.trace_state = std::move(trace_state);
            span.flags = flags;
            span.name = std::move(name);
            span.kind = static_cast<SpanKind>(kind);
            span.start_time_unix_nano = start;
            span.end_time_unix_nano = end;
            span.attributes = check_attributes(attributes.ptr());
            if (!events.is_none()) {
              if (!PyList_Check(events.ptr())) throw nb::type_error("events must be a list or None");
              for (nb::handle e : events) {
                const Py_ssize_t size = PyTuple_Check(e.ptr()) ? PyTuple_GET_SIZE(e.ptr()) : 0;
                if (size != 3 && size != 4) {
                  throw nb::type_error(
                      "each event must be a (time_unix_nano, name, attributes[, dropped_attributes_count]) tuple");
                }
                span.events.push_back({nb::cast<std::int64_t>(e[0]), nb::cast<std::string>(e[1]),
                                       check_attributes(e[2].ptr()),
                                       size == 4 ? nb::cast<std::uint32_t>(e[3]) : 0u});
              }
            }
            span.status_code = static_cast<StatusCode>(status_code);
            span.status_message = std::move(status_message);
            store.add(std::move(span));
          },
          "trace_id"_a, "span_id"_a, "parent_span_id"_a, "trace_state"_a, "flags"_a, "name"_a, "kind"_a,
          "start_time_unix_nano"_a, "end_time_unix_nano"_a, "attributes"_a.none(), "events"_a.none(),
          "status_code"_a, "status_message"_a,
          nb::sig("def add(self, trace_id: str, span_id: str, parent_span_id: str, trace_state: str, "
                  "flags: int, name: str, kind: int, start_time_unix_nano: int, end_time_unix_nano: int, "
                  "attributes: dict[str, object] | None, "
                  "events: list[tuple[int, str, dict[str, object] | None] | tuple[int, str, dict[str, object] | None, int]] | None, "
                  "status_code: int, status_message: str) -> None"),
          "Records a finished span (ids as lowercase hex; parent_span_id '' for a root).")
      .def(
          "add_span",
          [](SpanStore& store, nb::handle span) {
            PySpan* s = span_or_null(span.ptr());
            if (s == nullptr) throw nb::type_error(("expected a Span, got " + type_name_of(span.ptr())).c_str());
            if (s->span.is_recording()) {
              throw nb::value_error(("span " + quoted(s->span.data().name) + " has not ended").c_str());
            }
            store.add(s->span.record());
          },
          "span"_a, nb::sig("def add_span(self, span: Span) -> None"),
          "Records a finished span (shared, not copied); ValueError for a span that has not ended.")
      .def(
          "snapshot", [](const SpanStore& s) { return shared_list(s.records()); },
          nb::sig("def snapshot(self) -> list[SpanData]"), "The finished spans, oldest first.")
      .def(
          "drain",
          [](SpanStore& s) {
            std::vector<SpanData> spans;
            {
              nb::gil_scoped_release release;
              spans = s.drain();
            }
            return to_list(std::move(spans));
          },
          nb::sig("def drain(self) -> list[SpanData]"), "Removes and returns the finished spans, oldest first.")
      .def(
          "encode_otlp",
          [](const SpanStore& s, nb::handle resource, std::string_view scope_name, std::string_view scope_version) {
            const Attributes res = check_attributes(resource.ptr());
            std::string out;
            {
              nb::gil_scoped_release release;
              out = encode_otlp_trace_records(res, scope_name, scope_version, s.records());
            }
            return nb::bytes(out.data(), out.size());
          },
          "resource"_a, "scope_name"_a, "scope_version"_a,
          nb::sig("def encode_otlp(self, resource: dict[str, object], scope_name: str, scope_version: str) "
                  "-> bytes"),
          "The finished spans as a serialised OTLP ExportTraceServiceRequest (protobuf), oldest first.")
      .def("clear", &SpanStore::clear)
      .def("__len__", &SpanStore::size)
      .def_prop_ro("capacity", &SpanStore::capacity)
      .def_prop_ro("dropped", &SpanStore::dropped, "Spans this store dropped because it was full.");

  nb::class_<Tracer>(m, "Tracer",
                     "The native half of pyveda.telemetry.TracingSystem: starts spans and keeps the "
                     "finished ones in its SpanStore.",
                     nb::type_slots(tracer_slots))
      .def(
          "__init__",
          [](Tracer* t, std::size_t capacity, std::size_t max_attributes, std::size_t max_events,
             std::size_t max_event_attributes, std::optional<std::size_t> max_attribute_length) {
            SpanLimits limits;
            limits.max_attributes = max_attributes;
            limits.max_events = max_events;
            limits.max_event_attributes = max_event_attributes;
            limits.max_attribute_length = max_attribute_length.value_or(SpanLimits::kUnlimited);
            new (t) Tracer{std::make_shared<SpanStore>(capacity), limits};
          },
          "capacity"_a = SpanStore::kDefaultCapacity, "max_attributes"_a = SpanLimits{}.max_attributes,
          "max_events"_a = SpanLimits{}.max_events, "max_event_attributes"_a = SpanLimits{}.max_event_attributes,
          "max_attribute_length"_a.none() = nb::none(),
          "Span limits as OpenTelemetry's (max_attribute_length None: strings kept whole).")
      .def_prop_ro(
          "span_limits",
          [](const Tracer& t) {
            nb::dict out;
            out["max_attributes"] = t.limits.max_attributes;
            out["max_events"] = t.limits.max_events;
            out["max_event_attributes"] = t.limits.max_event_attributes;
            out["max_attribute_length"] = t.limits.max_attribute_length == SpanLimits::kUnlimited
                                              ? nb::none()
                                              : nb::object(nb::int_(t.limits.max_attribute_length));
            return out;
          },
          nb::sig("def span_limits(self) -> dict[str, int | None]"),
          "The limits each span of this tracer has (see TracingSystem).")
      .def_prop_ro("_store", [](const Tracer& t) { return t.store; }, "The span store.")
      .def(
          "get_spans",
          [](const Tracer& t) {
            nb::list out;
            for (auto& record : t.store->records()) out.append(make_span(veda::Span(std::move(record)), nb::object()));
            return out;
          },
          nb::sig("def get_spans(self) -> list[Span]"), "The finished spans, oldest first (ended spans only).")
      .def(
          "_spans_since",
          [](const Tracer& t, std::uint64_t after) {
            std::uint64_t newest = 0;
            nb::list out;
            for (auto& record : t.store->records_since(after, &newest)) {
              out.append(make_span(veda::Span(std::move(record)), nb::object()));
            }
            return nb::make_tuple(out, newest);
          },
          "after"_a, nb::sig("def _spans_since(self, after: int) -> tuple[list[Span], int]"),
          "The finished spans recorded after sequence number `after` that are still buffered, oldest first, "
          "and the newest sequence number (pass it as `after` next time to read each span once).");

  m.def(
      "_register_tracing_types",
      [m](nb::handle span_class, nb::handle span_context_class) {
        if (!PyType_Check(span_class.ptr()) ||
            !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(span_class.ptr()), types.span_base)) {
          throw nb::type_error("span_class must be a subclass of pyveda._core.Span");
        }
        if (!PyType_Check(span_context_class.ptr())) throw nb::type_error("span_context_class must be a class");
        nb::module_ mod = nb::borrow<nb::module_>(m);
        mod.attr("_span_class") = span_class;
        mod.attr("_span_context_class") = span_context_class;
        types.span_class = span_class.ptr();  // kept alive by the module attributes
        types.span_context_class = span_context_class.ptr();
      },
      "span_class"_a, "span_context_class"_a,
      "Called once by pyveda.telemetry.tracing: the Span subclass that Tracer.span() makes, and SpanContext.");
}

}  // namespace veda::bindings
