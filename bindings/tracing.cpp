// Bindings for tracing: span ids, finished-span records and the span store.
//
// The Python facade (pyveda.telemetry.tracing) keeps the live span and its
// context; a span that ends crosses once, as SpanStore.add(...), and comes
// back as SpanData records from snapshot()/drain().
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <variant>

#include "bindings.hpp"
#include "veda/tracing/otlp.hpp"
#include "veda/tracing/span_store.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace veda::bindings {
namespace {

[[noreturn]] void bad_value(const std::string& key, nb::handle value) {
  throw nb::type_error(("attribute '" + key + "': unsupported value type " +
                        nb::type_name(value.type()).c_str())
                           .c_str());
}

template <class T>
std::vector<T> as_vector(const std::string& key, nb::handle list) {
  std::vector<T> out;
  out.reserve(nb::len(list));
  for (nb::handle item : list) {
    if constexpr (std::is_same_v<T, bool>) {
      if (!PyBool_Check(item.ptr())) bad_value(key, item);
      out.push_back(item.ptr() == Py_True);
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
      if (!PyLong_Check(item.ptr()) || PyBool_Check(item.ptr())) bad_value(key, item);
      out.push_back(nb::cast<std::int64_t>(item));
    } else if constexpr (std::is_same_v<T, double>) {
      if (!PyFloat_Check(item.ptr())) bad_value(key, item);
      out.push_back(PyFloat_AS_DOUBLE(item.ptr()));
    } else {
      if (!PyUnicode_Check(item.ptr())) bad_value(key, item);
      out.push_back(nb::cast<std::string>(item));
    }
  }
  return out;
}

// Python value (already validated by the facade) -> AttributeValue.
AttributeValue to_value(const std::string& key, nb::handle v) {
  PyObject* p = v.ptr();
  if (PyBool_Check(p)) return p == Py_True;
  if (PyLong_Check(p)) return nb::cast<std::int64_t>(v);
  if (PyFloat_Check(p)) return PyFloat_AS_DOUBLE(p);
  if (PyUnicode_Check(p)) return nb::cast<std::string>(v);
  if (PyList_Check(p) || PyTuple_Check(p)) {
    if (nb::len(v) == 0) return std::vector<std::string>{};
    nb::handle first = v[0];
    if (PyBool_Check(first.ptr())) return as_vector<bool>(key, v);
    if (PyLong_Check(first.ptr())) return as_vector<std::int64_t>(key, v);
    if (PyFloat_Check(first.ptr())) return as_vector<double>(key, v);
    if (PyUnicode_Check(first.ptr())) return as_vector<std::string>(key, v);
  }
  bad_value(key, v);
}

Attributes to_attributes(nb::handle mapping) {
  Attributes out;
  if (mapping.is_none()) return out;
  if (!PyDict_Check(mapping.ptr())) {
    throw nb::type_error(("attributes must be a dict or None, got " +
                          std::string(nb::type_name(mapping.type()).c_str()))
                             .c_str());
  }
  nb::dict d = nb::borrow<nb::dict>(mapping);
  out.reserve(d.size());
  for (auto [k, v] : d) {
    std::string key = nb::cast<std::string>(k);
    AttributeValue value = to_value(key, v);
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
  for (const auto& a : attributes) out[a.key.c_str()] = from_value(a.value);
  return out;
}

template <class Id>
nb::bytes id_bytes(const Id& id) {
  return nb::bytes(reinterpret_cast<const char*>(id.data()), id.size());
}

template <class Id>
Id parse_id(std::string_view text, bool (*parse)(std::string_view, Id&) noexcept, const char* what) {
  Id id{};
  if (!parse(text, id) || !is_valid(id)) {
    throw nb::value_error((std::string(what) + " must be non-zero lowercase hex, got '" +
                           std::string(text) + "'")
                              .c_str());
  }
  return id;
}

nb::list to_list(std::vector<SpanData>&& spans) {
  nb::list out;
  for (auto& s : spans) out.append(nb::cast(std::move(s)));
  return out;
}

}  // namespace

void init_tracing(nb::module_& m) {
  m.def("new_trace_id", [] { return to_hex(generate_trace_id()); },
        "A random trace id: 32 lowercase hex characters, never all zero.");
  m.def("new_span_id", [] { return to_hex(generate_span_id()); },
        "A random span id: 16 lowercase hex characters, never all zero.");
  m.def(
      "new_ids",
      [] {
        const std::string trace_id = to_hex(generate_trace_id());
        const std::string span_id = to_hex(generate_span_id());
        return nb::make_tuple(nb::str(trace_id.data(), trace_id.size()), nb::str(span_id.data(), span_id.size()));
      },
      nb::sig("def new_ids() -> tuple[str, str]"),
      "A new root span's ids in one call: (new_trace_id(), new_span_id()).");

  nb::class_<SpanData>(m, "SpanData", "A finished span, as the span store holds it (read-only).")
      .def_prop_ro("trace_id", [](const SpanData& s) { return to_hex(s.trace_id); })
      .def_prop_ro("span_id", [](const SpanData& s) { return to_hex(s.span_id); })
      .def_prop_ro("parent_span_id",
                   [](const SpanData& s) -> nb::object {
                     if (!s.parent_span_id) return nb::none();
                     return nb::str(to_hex(*s.parent_span_id).c_str());
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
      .def_prop_ro(
          "events",
          [](const SpanData& s) {
            nb::list out;
            for (const auto& e : s.events) {
              out.append(nb::make_tuple(e.time_unix_nano, e.name, from_attributes(e.attributes)));
            }
            return out;
          },
          nb::sig("def events(self) -> list[tuple[int, str, dict[str, object]]]"),
          "(time_unix_nano, name, attributes) per event, in the order added.")
      .def_prop_ro("status_code", [](const SpanData& s) { return static_cast<int>(s.status_code); })
      .def_ro("status_message", &SpanData::status_message)
      .def_ro("dropped_attributes_count", &SpanData::dropped_attributes_count)
      .def_ro("dropped_events_count", &SpanData::dropped_events_count)
      .def_ro("dropped_links_count", &SpanData::dropped_links_count);

  nb::class_<SpanStore>(m, "SpanStore",
                        "A bounded ring of finished spans; when full the oldest is dropped and counted "
                        "in pyveda_spans_dropped_total.")
      .def(nb::init<std::size_t>(), "capacity"_a = SpanStore::kDefaultCapacity)
      .def(
          "add",
          [](SpanStore& store, std::string_view trace_id, std::string_view span_id,
             std::string_view parent_span_id, std::string trace_state, std::uint32_t flags, std::string name,
             int kind, std::int64_t start, std::int64_t end, nb::handle attributes, nb::handle events,
             int status_code, std::string status_message) {
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
            span.attributes = to_attributes(attributes);
            if (!events.is_none()) {
              if (!PyList_Check(events.ptr())) throw nb::type_error("events must be a list or None");
              for (nb::handle e : events) {
                if (!PyTuple_Check(e.ptr()) || PyTuple_GET_SIZE(e.ptr()) != 3) {
                  throw nb::type_error("each event must be a (time_unix_nano, name, attributes) tuple");
                }
                span.events.push_back(
                    {nb::cast<std::int64_t>(e[0]), nb::cast<std::string>(e[1]), to_attributes(e[2]), 0});
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
                  "events: list[tuple[int, str, dict[str, object] | None]] | None, "
                  "status_code: int, status_message: str) -> None"),
          "Records a finished span (ids as lowercase hex; parent_span_id '' for a root).")
      .def("snapshot", [](const SpanStore& s) {
        std::vector<SpanData> spans;
        {
          nb::gil_scoped_release release;
          spans = s.snapshot();
        }
        return to_list(std::move(spans));
      }, nb::sig("def snapshot(self) -> list[SpanData]"), "Copies of the finished spans, oldest first.")
      .def("drain", [](SpanStore& s) {
        std::vector<SpanData> spans;
        {
          nb::gil_scoped_release release;
          spans = s.drain();
        }
        return to_list(std::move(spans));
      }, nb::sig("def drain(self) -> list[SpanData]"), "Removes and returns the finished spans, oldest first.")
      .def(
          "encode_otlp",
          [](const SpanStore& s, nb::handle resource, std::string_view scope_name, std::string_view scope_version) {
            const Attributes res = to_attributes(resource);
            std::string out;
            {
              nb::gil_scoped_release release;
              out = encode_otlp_traces(res, scope_name, scope_version, s.snapshot());
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
}

}  // namespace veda::bindings
