// Conversions between Python objects and core values, and C++ exceptions as
// Python ones: the one place every binding translation unit takes them from.
#pragma once

#include <nanobind/nanobind.h>

#include <cstdint>
#include <string>
#include <vector>

#include "veda/metrics/exemplar.hpp"
#include "veda/tracing/span.hpp"

namespace veda::bindings {

// --- text for messages --------------------------------------------------------------------------

// The __name__ of o's type (tp_name if that fails).
std::string type_name_of(PyObject* o);
// repr(o) cut to 60 characters, as the f-string format {o!r:.60} does; "?" if repr() fails.
std::string short_repr(PyObject* o);
// The Python repr of `text` ('...').
std::string quoted(const std::string& text);
// The UTF-8 text of a str; a Python error (surrogates) is raised as nb::python_error.
std::string utf8(PyObject* s);

// --- attributes ---------------------------------------------------------------------------------

// An attribute key: a str, else TypeError naming the type.
std::string attribute_key(PyObject* key);
// An attribute value for `key`: str, bool, int (64-bit), float or a
// homogeneous list/tuple of one of them; subclasses (IntEnum, ...) become
// their base type. TypeError naming the key and the rule otherwise.
AttributeValue attribute_value(const std::string& key, PyObject* value);
// A mapping of attributes (None: none) as core Attributes, checked whole
// before anything is used; TypeError/ValueError name the key and the rule.
Attributes attributes_from_python(PyObject* mapping);

nanobind::object from_value(const AttributeValue& value);

// An `exemplar=` argument: a Mapping[str, str] of exemplar labels, checked by
// the core's rule. TypeError for anything else, naming `owner`.
Exemplar exemplar_from_python(PyObject* mapping, const char* owner);
nanobind::dict from_attributes(const Attributes& attributes);

// A time in ns since the Unix epoch: an int in [0, 2**63) (anything
// int() takes); TypeError/ValueError naming `what` otherwise.
std::int64_t time_arg(PyObject* value, const char* what);

// --- exceptions ---------------------------------------------------------------------------------

// Inside a catch block: sets the Python error for the exception being
// handled, as nanobind translates them (std::invalid_argument, length_error
// and domain_error: ValueError; out_of_range: IndexError; overflow_error:
// OverflowError; bad_alloc: MemoryError; nb::python_error restored; other
// exceptions: RuntimeError).
void restore_as_python_error() noexcept;

// Runs `body` (returning a new reference or null) for a raw CPython entry
// point (METH_FASTCALL methods), turning C++ exceptions into Python ones.
template <class Body>
PyObject* guarded(Body&& body) noexcept {
  try {
    return body();
  } catch (...) {
    restore_as_python_error();
  }
  return nullptr;
}

}  // namespace veda::bindings
