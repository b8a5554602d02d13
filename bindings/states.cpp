// pyveda._core.EnumState: the native half of pyveda.telemetry.Enum.
//
// An Enum's state() is its hot call; here it is one METH_O method: a dict
// lookup (state -> index) and an assignment. Everything else about an Enum
// (names, labels, children, collection, error messages) is the facade's;
// state() asks the object's _bad_state(state) for the exception to raise
// when `state` is not one of its states.
//
// Thread-safety: state() runs under the GIL and is one reference swap.
#include <nanobind/nanobind.h>

#include "bindings.hpp"

namespace nb = nanobind;

namespace veda::bindings {
namespace {

struct EnumState {
  PyObject_HEAD
  PyObject* index;  // dict: state -> its index (null until set)
  PyObject* value;  // the current state's index
};

EnumState* as_state(PyObject* o) { return reinterpret_cast<EnumState*>(o); }

PyObject* bad_state_name = nullptr;

// The facade's exception for a state it does not have, raised as `raise ... from None`.
PyObject* raise_bad_state(PyObject* self, PyObject* state) {
  PyObject* error = PyObject_CallMethodOneArg(self, bad_state_name, state);
  if (error == nullptr) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return nullptr;
    PyErr_Clear();  // the bare native type: no words of the facade's
    PyErr_Format(PyExc_ValueError, "%R is not one of the states", state);
    return nullptr;
  }
  if (!PyExceptionInstance_Check(error)) {
    PyErr_Format(PyExc_TypeError, "_bad_state() must return an exception, got %R", error);
  } else {
    PyException_SetCause(error, nullptr);  // and __suppress_context__ = True
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error)), error);
  }
  Py_DECREF(error);
  return nullptr;
}

PyObject* enum_state(PyObject* self, PyObject* state) {
  EnumState* s = as_state(self);
  if (s->index != nullptr) {
    PyObject* value = PyDict_GetItemWithError(s->index, state);  // borrowed
    if (value != nullptr) {
      Py_INCREF(value);
      Py_SETREF(s->value, value);
      Py_RETURN_NONE;
    }
    if (PyErr_Occurred()) {
      if (!PyErr_ExceptionMatches(PyExc_TypeError)) return nullptr;  // an unhashable state: not one of them
      PyErr_Clear();
    }
  }
  return raise_bad_state(self, state);
}

PyObject* enum_get_value(PyObject* self, void*) {
  PyObject* value = as_state(self)->value;
  if (value == nullptr) value = Py_None;
  Py_INCREF(value);
  return value;
}

int enum_set_value(PyObject* self, PyObject* value, void*) {
  if (value == nullptr) {
    PyErr_SetString(PyExc_AttributeError, "EnumState: _value cannot be deleted");
    return -1;
  }
  Py_INCREF(value);
  Py_XSETREF(as_state(self)->value, value);
  return 0;
}

PyObject* enum_get_index(PyObject* self, void*) {
  PyObject* index = as_state(self)->index;
  if (index == nullptr) Py_RETURN_NONE;
  Py_INCREF(index);
  return index;
}

int enum_set_index(PyObject* self, PyObject* index, void*) {
  if (index == nullptr || !PyDict_Check(index)) {
    PyErr_Format(PyExc_TypeError, "EnumState: _index must be a dict of state to index, got %s",
                 index == nullptr ? "a deletion" : Py_TYPE(index)->tp_name);
    return -1;
  }
  Py_INCREF(index);
  Py_XSETREF(as_state(self)->index, index);
  return 0;
}

PyObject* enum_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  // Takes whatever the subclass's __init__ takes; __init__ sets _index.
  (void)args;
  (void)kwargs;
  PyObject* self = type->tp_alloc(type, 0);
  if (self == nullptr) return nullptr;
  as_state(self)->value = PyLong_FromLong(0);
  if (as_state(self)->value == nullptr) {
    Py_DECREF(self);
    return nullptr;
  }
  return self;
}

int enum_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(as_state(self)->index);
  Py_VISIT(as_state(self)->value);
  return 0;
}

int enum_clear(PyObject* self) {
  Py_CLEAR(as_state(self)->index);
  Py_CLEAR(as_state(self)->value);
  return 0;
}

void enum_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  enum_clear(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyMethodDef enum_methods[] = {
    {"state", &enum_state, METH_O,
     "state($self, state, /)\n--\n\n"
     "Moves to `state` (a key of _index); otherwise raises the exception _bad_state(state) returns."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef enum_getset[] = {
    {"_value", &enum_get_value, &enum_set_value, "The current state's index.", nullptr},
    {"_index", &enum_get_index, &enum_set_index, "The states state() accepts: a dict of state to index.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot enum_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(&enum_new)},
    {Py_tp_methods, enum_methods},
    {Py_tp_getset, enum_getset},
    {Py_tp_traverse, reinterpret_cast<void*>(&enum_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&enum_clear)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&enum_dealloc)},
    {Py_tp_doc, const_cast<char*>("The native half of pyveda.telemetry.Enum: the current state's index and the "
                                  "states state() accepts.")},
    {0, nullptr}};

PyType_Spec enum_spec = {"pyveda._core.EnumState", sizeof(EnumState), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, enum_slots};

}  // namespace

void init_states(nb::module_& m) {
  bad_state_name = PyUnicode_InternFromString("_bad_state");
  nb::object type = nb::steal(PyType_FromModuleAndSpec(m.ptr(), &enum_spec, nullptr));
  if (!type.is_valid() || bad_state_name == nullptr) throw nb::python_error();
  type.attr("__module__") = m.attr("__name__");  // pyveda._core, or _core when stubgen imports the build tree
  add_fast_methods(reinterpret_cast<PyTypeObject*>(type.ptr()), enum_methods);
  m.attr("EnumState") = type;  // the module keeps the type alive
}

}  // namespace veda::bindings
