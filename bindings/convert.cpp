// Conversions between Python objects and core values, and C++ exceptions as
// Python ones: the one place every binding translation unit takes them from.
#include "convert.hpp"

#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace nb = nanobind;

namespace veda::bindings {
namespace {

PyObject* mapping_abc() {
  static PyObject* mapping = nb::object(nb::module_::import_("collections.abc").attr("Mapping")).release().ptr();
  return mapping;
}

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

PyObject* builtin_type(nb::exception_type type) noexcept {
  switch (type) {
    case nb::exception_type::stop_iteration: return PyExc_StopIteration;
    case nb::exception_type::index_error: return PyExc_IndexError;
    case nb::exception_type::key_error: return PyExc_KeyError;
    case nb::exception_type::value_error: return PyExc_ValueError;
    case nb::exception_type::type_error: return PyExc_TypeError;
    case nb::exception_type::buffer_error: return PyExc_BufferError;
    case nb::exception_type::import_error: return PyExc_ImportError;
    case nb::exception_type::attribute_error: return PyExc_AttributeError;
    default: return PyExc_RuntimeError;
  }
}

}  // namespace

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

Exemplar exemplar_from_python(PyObject* mapping, const char* owner) {
  if (!PyDict_Check(mapping)) {
    throw nb::type_error((std::string(owner) + "(): exemplar must be a dict of str labels such as "
                          "{'trace_id': 'abc123'}, got " + type_name_of(mapping))
                             .c_str());
  }
  Exemplar e;
  PyObject* key = nullptr;
  PyObject* value = nullptr;
  Py_ssize_t pos = 0;
  while (PyDict_Next(mapping, &pos, &key, &value)) {
    if (!PyUnicode_Check(key) || !PyUnicode_Check(value)) {
      throw nb::type_error((std::string(owner) + "(): exemplar labels must be str names and str values, got " +
                            type_name_of(key) + " " + short_repr(key) + ": " + type_name_of(value) + " " +
                            short_repr(value))
                               .c_str());
    }
    e.labels.emplace_back(utf8(key), utf8(value));
  }
  check_exemplar_labels(e.labels);
  return e;
}

AttributeValue attribute_value(const std::string& key, PyObject* v) {
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

std::string attribute_key(PyObject* key) {
  if (!PyUnicode_CheckExact(key)) {
    throw nb::type_error(
        ("attribute keys must be str, got " + type_name_of(key) + " (" + short_repr(key) + ")").c_str());
  }
  return utf8(key);
}

Attributes attributes_from_python(PyObject* mapping) {
  Attributes out;
  if (mapping == Py_None) return out;
  if (PyDict_Check(mapping)) {
    out.reserve(static_cast<std::size_t>(PyDict_GET_SIZE(mapping)));
    Py_ssize_t pos = 0;
    PyObject *k = nullptr, *v = nullptr;
    while (PyDict_Next(mapping, &pos, &k, &v)) {
      std::string key = attribute_key(k);
      AttributeValue value = attribute_value(key, v);
      out.push_back({std::move(key), std::move(value)});
    }
    return out;
  }
  const int is_mapping = PyObject_IsInstance(mapping, mapping_abc());
  if (is_mapping < 0) throw nb::python_error();
  if (is_mapping == 0) {
    throw nb::type_error(("attributes must be a mapping, got " + type_name_of(mapping)).c_str());
  }
  nb::object items = nb::steal(PyMapping_Items(mapping));
  if (!items.is_valid()) throw nb::python_error();
  for (nb::handle pair : items) {
    nb::handle k = pair[0], v = pair[1];
    std::string key = attribute_key(k.ptr());
    AttributeValue value = attribute_value(key, v.ptr());
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

void restore_as_python_error() noexcept {
  try {
    throw;
  } catch (nb::python_error& e) {
    e.restore();
  } catch (const nb::builtin_exception& e) {
    PyErr_SetString(builtin_type(e.type()), e.what());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::invalid_argument& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::length_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::domain_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::out_of_range& e) {
    PyErr_SetString(PyExc_IndexError, e.what());
  } catch (const std::overflow_error& e) {
    PyErr_SetString(PyExc_OverflowError, e.what());
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
  }
}

}  // namespace veda::bindings
