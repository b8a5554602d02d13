// Bindings for tracing: span ids, live spans, the tracer and the span store.
//
// Translation only: veda::Tracer (veda/tracing/tracer.hpp) decides parents,
// limits and ids; this file turns Python arguments into SpanStartOptions and
// the current span into a SpanAncestry. Span and Tracer are the bases of
// pyveda.telemetry.tracing.Span and TracingSystem, which pass their Span
// class to Tracer.__init__. The hot calls (Tracer.span, Span.__enter__/
// __exit__) are METH_FASTCALL methods: nanobind's generic dispatch would cost
// more than the span itself. The current span lives in the ContextVar
// `current_span`, set and reset through the C API. The Python subclasses add
// what is Python-shaped: enums, named tuples, repr.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "bindings.hpp"
#include "veda/tracing/exemplar.hpp"
#include "convert.hpp"
#include "veda/tracing/otlp.hpp"
#include "veda/tracing/span_store.hpp"
#include "veda/tracing/tracer.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace veda::bindings {
namespace {

// --- shared state -------------------------------------------------------------------------------

// Set once at import: the ContextVar holding the current span and the base
// span type. Nothing here comes from the facade.
struct TracingTypes {
  PyObject* current_span = nullptr;  // owned by the module (attribute `current_span`)
  PyTypeObject* span_base = nullptr;  // owned by the module (attribute `Span`)
};
TracingTypes types;

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

// A span's links as (trace_id, span_id, trace_state, flags, attributes, dropped_attributes_count).
nb::list from_links(const std::vector<SpanLink>& links) {
  nb::list out;
  for (const auto& l : links) {
    out.append(nb::make_tuple(id_text(l.trace_id), id_text(l.span_id), l.trace_state, l.flags,
                              from_attributes(l.attributes), l.dropped_attributes_count));
  }
  return out;
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

}  // namespace

bool current_span_exemplar(Exemplar& out) {
  if (types.current_span == nullptr) return false;
  PyObject* raw = nullptr;
  if (PyContextVar_Get(types.current_span, Py_None, &raw) < 0) throw nb::python_error();
  nb::object current = nb::steal(raw);
  const PySpan* span = span_or_null(current.ptr());
  if (span == nullptr || !nb::inst_ready(current)) return false;
  out = span_exemplar(span->span.data());
  return true;
}

namespace {

// A new instance of `span_class` (pyveda._core.Span or a subclass) around `span`.
nb::object make_span(nb::handle span_class, veda::Span&& span, nb::object parent) {
  nb::object o = nb::inst_alloc(span_class);
  new (nb::inst_ptr<PySpan>(o)) PySpan{std::move(span), std::move(parent), nb::object()};
  nb::inst_mark_ready(o);
  return o;
}

// The exception as the core records it: type name, str() (none if that
// fails) and, if asked, the formatted traceback. Python errors from the
// traceback module propagate.
ExceptionInfo exception_info(PyObject* exc, bool with_stacktrace) {
  ExceptionInfo info;
  info.type = type_name_of(exc);
  nb::object text = nb::steal(PyObject_Str(exc));
  const char* utf = text.is_valid() ? PyUnicode_AsUTF8(text.ptr()) : nullptr;
  if (utf != nullptr) {
    info.message = std::string(utf);
  } else {
    PyErr_Clear();
  }
  if (with_stacktrace && PyExceptionInstance_Check(exc)) {
    // Kept for the process's life (never released: no decref after finalisation).
    static PyObject* format = nb::object(nb::module_::import_("traceback").attr("format_exception")).release().ptr();
    nb::object tb = nb::steal(PyException_GetTraceback(exc));
    nb::object lines = nb::handle(format)(nb::handle(reinterpret_cast<PyObject*>(Py_TYPE(exc))), nb::handle(exc),
                                          tb.is_valid() ? nb::handle(tb) : nb::none());
    info.stacktrace = nb::cast<std::string>(nb::str("").attr("join")(lines));
  }
  return info;
}

void end_span(PySpan& s, std::int64_t end_time) {
  if (s.span.end(end_time)) s.parent = nb::object();
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
    // The event comes from the span's record_exception() (a subclass may
    // change it); an error in it still ends the span and restores the
    // context, then propagates.
    static PyObject* method = PyUnicode_InternFromString("record_exception");
    PyObject* call_args[] = {self, exc};
    PyObject* r = PyObject_VectorcallMethod(method, call_args, 2, nullptr);
    if (r == nullptr) PyErr_Fetch(&error_type, &error_value, &error_tb);
    Py_XDECREF(r);
    try {
      s.span.set_status(StatusCode::kError, exception_description(exception_info(exc, false)));
    } catch (...) {
      PyErr_Clear();  // only str() can fail here, and exception_info() has handled that
    }
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

// The native half of a TracingSystem: the core tracer and the class its spans get.
struct PyTracer {
  veda::Tracer tracer;
  nb::object span_class;
};

// The current span and its ancestors, as the ContextVar and the spans' `parent` links hold them.
class ContextAncestry final : public SpanAncestry {
 public:
  explicit ContextAncestry(PySpan* current) noexcept : current_(current) {}
  const veda::Span* current() const noexcept override { return current_ != nullptr ? &current_->span : nullptr; }
  const veda::Span* find(const SpanId& id) const noexcept override {
    for (PySpan* s = current_; s != nullptr; s = span_or_null(s->parent.ptr())) {
      if (s->span.data().span_id == id) return &s->span;
    }
    return nullptr;
  }

 private:
  PySpan* current_;
};

enum SpanArg { kName, kAttributes, kParentSpanId, kTraceId, kKind, kContext, kStartTime, kLinks, kSpanArgCount };
PyObject* span_arg_name(int i) {
  static PyObject* names[kSpanArgCount] = {
      PyUnicode_InternFromString("name"),         PyUnicode_InternFromString("attributes"),
      PyUnicode_InternFromString("parent_span_id"), PyUnicode_InternFromString("trace_id"),
      PyUnicode_InternFromString("kind"),         PyUnicode_InternFromString("context"),
      PyUnicode_InternFromString("start_time"),   PyUnicode_InternFromString("links")};
  return names[i];
}

// Fills `out` from positional and keyword arguments; TypeError like Python's for bad calls.
void parse_span_args(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames, PyObject* out[kSpanArgCount]) {
  if (nargs > kSpanArgCount) {
    throw nb::type_error(("span() takes at most " + std::to_string(kSpanArgCount) + " arguments (" +
                          std::to_string(nargs) + " given)")
                             .c_str());
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

// The parent a SpanContext (from extract(): trace_id, span_id, trace_flags,
// trace_state, is_remote) stands for.
SpanParent remote_parent(PyObject* context) {
  if (!PyTuple_Check(context) || PyTuple_GET_SIZE(context) != 5) {
    throw nb::type_error(
        ("context must be a SpanContext (from extract()), got " + type_name_of(context)).c_str());
  }
  nb::handle c(context);
  SpanParent parent;
  parent.trace_id = user_id<TraceId>(PyTuple_GET_ITEM(context, 0), &trace_id_from_hex, "context trace_id");
  parent.span_id = user_id<SpanId>(PyTuple_GET_ITEM(context, 1), &span_id_from_hex, "context span_id");
  parent.trace_flags = nb::cast<std::uint32_t>(c[2]);
  parent.trace_state = nb::cast<std::string>(c[3]);
  parent.is_remote = nb::cast<bool>(c[4]);
  return parent;
}

// A link to `target`: a Span (its own identity) or a SpanContext tuple, as
// remote_parent() reads one; `attributes` a mapping or None.
SpanLink make_link(PyObject* target, PyObject* attributes) {
  SpanLink link;
  if (PySpan* span = span_or_null(target)) {
    const SpanData& d = span->span.data();
    link.trace_id = d.trace_id;
    link.span_id = d.span_id;
    link.trace_state = d.trace_state;
    link.flags = (d.flags & 0xFFu) | kSpanFlagsHasIsRemote;
  } else {
    if (!PyTuple_Check(target) || PyTuple_GET_SIZE(target) != 5) {
      throw nb::type_error(("a link is to a Span or a SpanContext, got " + type_name_of(target)).c_str());
    }
    const SpanParent parent = remote_parent(target);
    link.trace_id = parent.trace_id;
    link.span_id = *parent.span_id;
    link.trace_state = parent.trace_state;
    link.flags = (parent.trace_flags & 0xFFu) | kSpanFlagsHasIsRemote | (parent.is_remote ? kSpanFlagsIsRemote : 0u);
  }
  if (given(attributes)) link.attributes = attributes_from_python(attributes);
  return link;
}

// span(links=...): each item a Span, a SpanContext, or a (Span or SpanContext, attributes) pair.
std::vector<SpanLink> links_arg(PyObject* links) {
  nb::object items = nb::steal(PySequence_Fast(links, "links must be a list of Spans or SpanContexts"));
  if (!items.is_valid()) throw nb::python_error();
  std::vector<SpanLink> out;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(items.ptr());
  out.reserve(static_cast<std::size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(items.ptr(), i);
    if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2) {
      out.push_back(make_link(PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1)));
    } else {
      out.push_back(make_link(item, nullptr));
    }
  }
  return out;
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
    SpanStartOptions options;
    options.kind = kind_arg(a[kKind]);
    if (given(a[kAttributes])) options.attributes = attributes_from_python(a[kAttributes]);
    if (given(a[kStartTime])) options.start_time_unix_nano = time_arg(a[kStartTime], "start_time");
    if (given(a[kTraceId])) options.trace_id = user_id<TraceId>(a[kTraceId], &trace_id_from_hex, "trace_id");
    if (given(a[kLinks])) options.links = links_arg(a[kLinks]);
    if (given(a[kContext])) {
      options.context = remote_parent(a[kContext]);
    } else if (PySpan* explicit_parent = span_or_null(a[kParentSpanId])) {
      // A Span as the parent: its own identity, unless the trace is given.
      if (options.trace_id) {
        options.parent_span_id = explicit_parent->span.data().span_id;
      } else {
        options.context = explicit_parent->span.as_parent();
      }
    } else if (given(a[kParentSpanId])) {
      options.parent_span_id = user_id<SpanId>(a[kParentSpanId], &span_id_from_hex, "parent_span_id");
    }

    PyObject* current_raw = nullptr;
    if (PyContextVar_Get(types.current_span, Py_None, &current_raw) < 0) throw nb::python_error();
    nb::object current = nb::steal(current_raw);
    PySpan* current_span = span_or_null(current.ptr());
    // The new span keeps the chain it can search for ancestors while it
    // records (a span under a remote parent starts a chain of its own).
    nb::object keep = given(a[kContext]) ? nb::object() : current;

    auto& t = *nb::inst_ptr<PyTracer>(self);
    veda::Span span = t.tracer.start_span(std::move(name), std::move(options), ContextAncestry(current_span));
    return make_span(t.span_class, std::move(span), std::move(keep)).release().ptr();
  });
}

PyMethodDef tracer_methods[] = {
    {"span", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&tracer_span)),
     METH_FASTCALL | METH_KEYWORDS,
     "span(self, name, attributes=None, parent_span_id=None, trace_id=None, kind=SpanKind.INTERNAL, "
     "context=None, start_time=None, links=None)\n--\n\n"
     "A started span; use it as a context manager to make it current and end it. links: Spans or "
     "SpanContexts (or (target, attributes) pairs) the span is linked to."},
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

void init_tracing(nb::module_& m) {
  types.current_span = PyContextVar_New("pyveda_current_span", Py_None);
  if (types.current_span == nullptr) throw nb::python_error();
  m.attr("current_span") = nb::steal(types.current_span);

  m.def("new_trace_id", [] { return to_hex(generate_trace_id()); },
        "A random trace id: 32 lowercase hex characters, never all zero.");
  m.def("new_span_id", [] { return to_hex(generate_span_id()); },
        "A random span id: 16 lowercase hex characters, never all zero.");
  m.def(
      "check_attributes", [](nb::handle mapping) { return from_attributes(attributes_from_python(mapping.ptr())); },
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
      .def_ro("dropped_links_count", &SpanData::dropped_links_count)
      .def_prop_ro("links", [](const SpanData& s) { return from_links(s.links); },
                   nb::sig("def links(self) -> list[tuple[str, str, str, int, dict[str, object], int]]"),
                   "(trace_id, span_id, trace_state, flags, attributes, dropped_attributes_count) per link.");

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
      .def_prop_ro("_links", [](const PySpan& s) { return from_links(s.span.data().links); },
                   nb::sig("def _links(self) -> list[tuple[str, str, str, int, dict[str, object], int]]"),
                   "(trace_id, span_id, trace_state, flags, attributes, dropped_attributes_count) per link.")
      .def_prop_ro("dropped_links_count", [](const PySpan& s) { return s.span.data().dropped_links_count; },
                   "Links dropped past max_links.")
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
            std::string k = attribute_key(key.ptr());
            AttributeValue v = attribute_value(k, value.ptr());
            as_span(self.ptr()).span.set_attribute(std::move(k), std::move(v));
            return nb::borrow(self);
          },
          "key"_a, "value"_a.none(), nb::sig("def set_attribute(self, key: str, value: object) -> typing_extensions.Self"),
          "Sets one attribute (ignored once the span has ended); TypeError naming the key for an "
          "unsupported value.")
      .def(
          "set_attributes",
          [](nb::handle self, nb::handle attributes) {
            as_span(self.ptr()).span.set_attributes(attributes_from_python(attributes.ptr()));
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
            event.attributes = attributes_from_python(attributes.ptr());
            event.time_unix_nano = timestamp.is_none() ? unix_nano_now() : time_arg(timestamp.ptr(), "timestamp");
            as_span(self.ptr()).span.add_event(std::move(event));
            return nb::borrow(self);
          },
          "name"_a.none(), "attributes"_a.none() = nb::none(), "timestamp"_a.none() = nb::none(),
          nb::sig("def add_event(self, name: str, attributes: collections.abc.Mapping[str, object] | None = None, "
                  "timestamp: int | None = None) -> typing_extensions.Self"),
          "Adds an event (timestamp in ns since the epoch, default now); ignored once the span has ended.")
      .def(
          "add_link",
          [](nb::handle self, nb::handle target, nb::handle attributes) {
            as_span(self.ptr()).span.add_link(make_link(target.ptr(), attributes.ptr()));
            return nb::borrow(self);
          },
          "context"_a.none(), "attributes"_a.none() = nb::none(),
          nb::sig("def add_link(self, context: Span | tuple[str, str, int, str, bool], "
                  "attributes: collections.abc.Mapping[str, object] | None = None) -> typing_extensions.Self"),
          "Links this span to another span (a Span, or a SpanContext from extract()); ignored once the span "
          "has ended, and counted in dropped_links_count past max_links.")
      .def(
          "update_name",
          [](nb::handle self, nb::handle name) {
            if (!PyUnicode_Check(name.ptr())) {
              throw nb::type_error(("span name must be a str, got " + type_name_of(name.ptr())).c_str());
            }
            as_span(self.ptr()).span.update_name(utf8(name.ptr()));
            return nb::borrow(self);
          },
          "name"_a.none(), nb::sig("def update_name(self, name: str) -> typing_extensions.Self"),
          "Renames the span (the sampler decided on the first name); ignored once the span has ended.")
      .def(
          "record_exception",
          [](nb::handle self, nb::handle exception, nb::handle attributes) {
            if (!PyExceptionInstance_Check(exception.ptr())) {
              throw nb::type_error(("record_exception() takes an exception instance, got " +
                                    type_name_of(exception.ptr()) + " (" + short_repr(exception.ptr()) + ")")
                                       .c_str());
            }
            Attributes extra = attributes_from_python(attributes.ptr());
            as_span(self.ptr()).span.add_event(
                exception_event(exception_info(exception.ptr(), true), unix_nano_now(), std::move(extra)));
            return nb::borrow(self);
          },
          "exception"_a, "attributes"_a.none() = nb::none(),
          nb::sig("def record_exception(self, exception: BaseException, "
                  "attributes: collections.abc.Mapping[str, object] | None = None) -> typing_extensions.Self"),
          "Adds an `exception` event with the OpenTelemetry semantic-convention attributes (exception.type, "
          "exception.message, exception.stacktrace), then `attributes`; ignored once the span has ended.")
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
            span.attributes = attributes_from_python(attributes.ptr());
            if (!events.is_none()) {
              if (!PyList_Check(events.ptr())) throw nb::type_error("events must be a list or None");
              for (nb::handle e : events) {
                const Py_ssize_t size = PyTuple_Check(e.ptr()) ? PyTuple_GET_SIZE(e.ptr()) : 0;
                if (size != 3 && size != 4) {
                  throw nb::type_error(
                      "each event must be a (time_unix_nano, name, attributes[, dropped_attributes_count]) tuple");
                }
                span.events.push_back({nb::cast<std::int64_t>(e[0]), nb::cast<std::string>(e[1]),
                                       attributes_from_python(e[2].ptr()),
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
            const Attributes res = attributes_from_python(resource.ptr());
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

  nb::class_<PyTracer> tracer(m, "Tracer",
                              "The native half of pyveda.telemetry.TracingSystem: a veda::Tracer, which starts "
                              "spans, picks their parents and keeps the finished ones in its SpanStore.",
                              nb::type_slots(tracer_slots));
  tracer
      .def(
          "__init__",
          [](PyTracer* t, std::size_t capacity, std::size_t max_attributes, std::size_t max_events,
             std::size_t max_event_attributes, std::optional<std::size_t> max_attribute_length,
             nb::handle span_class, std::string_view sampler, std::string_view sampler_arg, std::size_t max_links,
             std::size_t max_link_attributes) {
            if (span_class.is_none()) span_class = nb::handle(reinterpret_cast<PyObject*>(types.span_base));
            if (!PyType_Check(span_class.ptr()) ||
                !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(span_class.ptr()), types.span_base)) {
              throw nb::type_error(("span_class must be pyveda._core.Span or a subclass of it, got " +
                                    short_repr(span_class.ptr()))
                                       .c_str());
            }
            SpanLimits limits;
            limits.max_attributes = max_attributes;
            limits.max_events = max_events;
            limits.max_event_attributes = max_event_attributes;
            limits.max_links = max_links;
            limits.max_link_attributes = max_link_attributes;
            limits.max_attribute_length = max_attribute_length.value_or(SpanLimits::kUnlimited);
            new (t) PyTracer{veda::Tracer(capacity, limits, Sampler::from_name(sampler, sampler_arg)),
                             nb::borrow(span_class)};
          },
          "capacity"_a = SpanStore::kDefaultCapacity, "max_attributes"_a = SpanLimits{}.max_attributes,
          "max_events"_a = SpanLimits{}.max_events, "max_event_attributes"_a = SpanLimits{}.max_event_attributes,
          "max_attribute_length"_a.none() = nb::none(), "span_class"_a.none() = nb::none(),
          "sampler"_a = "parentbased_always_on", "sampler_arg"_a = "", "max_links"_a = SpanLimits{}.max_links,
          "max_link_attributes"_a = SpanLimits{}.max_link_attributes,
          nb::sig("def __init__(self, capacity: int = 100000, max_attributes: int = 128, max_events: int = 128, "
                  "max_event_attributes: int = 128, max_attribute_length: int | None = None, "
                  "span_class: type[Span] | None = None, sampler: str = 'parentbased_always_on', "
                  "sampler_arg: str = '', max_links: int = 128, max_link_attributes: int = 128) -> None"),
          "Span limits as OpenTelemetry's (max_attribute_length None: strings kept whole); span_class: "
          "the class of the spans this tracer makes (default Span); sampler and sampler_arg as "
          "OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG name them (ValueError naming what is allowed).")
      .def_prop_ro("sampler", [](const PyTracer& t) { return t.tracer.sampler().description(); },
                   "The sampler, as the OpenTelemetry SDK describes it (e.g. ParentBased{root:AlwaysOnSampler}).")
      .def_prop_ro(
          "span_limits",
          [](const PyTracer& t) {
            const SpanLimits& limits = t.tracer.limits();
            nb::dict out;
            out["max_attributes"] = limits.max_attributes;
            out["max_events"] = limits.max_events;
            out["max_event_attributes"] = limits.max_event_attributes;
            out["max_links"] = limits.max_links;
            out["max_link_attributes"] = limits.max_link_attributes;
            out["max_attribute_length"] = limits.max_attribute_length == SpanLimits::kUnlimited
                                              ? nb::none()
                                              : nb::object(nb::int_(limits.max_attribute_length));
            return out;
          },
          nb::sig("def span_limits(self) -> dict[str, int | None]"),
          "The limits each span of this tracer has (see TracingSystem).")
      .def_prop_ro("_store", [](const PyTracer& t) { return t.tracer.store(); }, "The span store.")
      .def(
          "get_spans",
          [](const PyTracer& t) {
            nb::list out;
            for (auto& record : t.tracer.store()->records()) {
              out.append(make_span(t.span_class, veda::Span(std::move(record)), nb::object()));
            }
            return out;
          },
          nb::sig("def get_spans(self) -> list[Span]"), "The finished spans, oldest first (ended spans only).")
      .def(
          "_spans_since",
          [](const PyTracer& t, std::uint64_t after) {
            std::uint64_t newest = 0;
            nb::list out;
            for (auto& record : t.tracer.store()->records_since(after, &newest)) {
              out.append(make_span(t.span_class, veda::Span(std::move(record)), nb::object()));
            }
            return nb::make_tuple(out, newest);
          },
          "after"_a, nb::sig("def _spans_since(self, after: int) -> tuple[list[Span], int]"),
          "The finished spans recorded after sequence number `after` that are still buffered, oldest first, "
          "and the newest sequence number (pass it as `after` next time to read each span once).");
  tracer.def(
      "_wait_for_spans",
      [](const PyTracer& t, std::uint64_t sequence, double timeout) {
        if (!(timeout >= 0.0)) throw nb::value_error("timeout must be a number of seconds >= 0");
        const std::chrono::duration<double> seconds(std::min(timeout, 1e9));  // at most ~31 years
        nb::gil_scoped_release release;
        return t.tracer.store()->wait_for_added(sequence,
                                                std::chrono::duration_cast<std::chrono::nanoseconds>(seconds));
      },
      "sequence"_a, "timeout"_a,
      "Waits (without the GIL) until span number `sequence` has been recorded, _wake_span_waiters() is "
      "called or `timeout` seconds pass; True if the span count has reached `sequence`.");
  tracer.def(
      "_wake_span_waiters", [](const PyTracer& t) { t.tracer.store()->wake(); },
      "Ends every _wait_for_spans() in progress now.");
}

}  // namespace veda::bindings
