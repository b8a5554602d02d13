// Methods bound without allocating (see fast_method.hpp).
#include "fast_method.hpp"

#include <structmember.h>

#include <cstdint>

namespace nb = nanobind;

namespace veda::bindings {
namespace {

PyObject* qualname_string = nullptr;  // "__qualname__", interned
PyTypeObject* fast_type = nullptr;

// `with obj:` looks __enter__ and __exit__ up on obj's type and binds each to
// obj; for a method of tp_methods each binding is a new builtin method object
// (a GC allocation and free each: a large part of the block's cost). The
// instruments' __enter__/__exit__/__aenter__/__aexit__ are FastMethod
// descriptors instead: the same PyMethodDef, bound by a BoundMethod whose
// block comes from a free list.
struct FastMethod {
  PyObject_HEAD
  vectorcallfunc vectorcall;  // called through the class: Timer.__exit__(timer, ...)
  PyMethodDef* def;           // METH_NOARGS or METH_FASTCALL
  PyTypeObject* owner;        // borrowed: the instrument types live until the process ends (the types given to add_unallocated_methods)
};

struct BoundMethod {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyObject* self;
  FastMethod* method;  // strong
};

FreeList<BoundMethod, 16> bound_blocks;

FastMethod* as_fast(PyObject* o) { return reinterpret_cast<FastMethod*>(o); }
BoundMethod* as_bound(PyObject* o) { return reinterpret_cast<BoundMethod*>(o); }

PyObject* call_def(const PyMethodDef* def, PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                   PyObject* kwnames) {
  if (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) != 0) {
    PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", def->ml_name);
    return nullptr;
  }
  if ((def->ml_flags & METH_NOARGS) != 0) {
    if (nargs != 0) {
      PyErr_Format(PyExc_TypeError, "%s() takes no arguments (%zd given)", def->ml_name, nargs);
      return nullptr;
    }
    return def->ml_meth(self, nullptr);
  }
  using Fast = PyObject* (*)(PyObject*, PyObject* const*, Py_ssize_t);  // METH_FASTCALL
  return reinterpret_cast<Fast>(reinterpret_cast<void (*)()>(def->ml_meth))(self, args, nargs);
}

bool check_self(const FastMethod* m, PyObject* self) {
  if (PyObject_TypeCheck(self, m->owner) != 0) return true;
  PyErr_Format(PyExc_TypeError, "descriptor '%s' for '%s' objects doesn't apply to a '%s' object", m->def->ml_name,
               m->owner->tp_name, Py_TYPE(self)->tp_name);
  return false;
}

// The bound method, or null with ReferenceError once the collector has cleared it (it was in a cycle).
BoundMethod* live_bound(PyObject* self) {
  BoundMethod* b = as_bound(self);
  if (b->self != nullptr && b->method != nullptr) return b;
  PyErr_SetString(PyExc_ReferenceError, "bound method: cleared by the garbage collector");
  return nullptr;
}

PyObject* bound_call(PyObject* self, PyObject* const* args, std::size_t nargsf, PyObject* kwnames) {
  BoundMethod* b = live_bound(self);
  if (b == nullptr) return nullptr;
  return call_def(b->method->def, b->self, args, PyVectorcall_NARGS(nargsf), kwnames);
}

PyObject* fast_call(PyObject* self, PyObject* const* args, std::size_t nargsf, PyObject* kwnames) {
  FastMethod* m = as_fast(self);
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs < 1) {
    PyErr_Format(PyExc_TypeError, "unbound method %s.%s() needs an argument", m->owner->tp_name, m->def->ml_name);
    return nullptr;
  }
  if (!check_self(m, args[0])) return nullptr;
  return call_def(m->def, args[0], args + 1, nargs - 1, kwnames);
}

PyTypeObject* bound_type = nullptr;

PyObject* fast_get(PyObject* self, PyObject* obj, PyObject*) {
  FastMethod* m = as_fast(self);
  if (obj == nullptr) {
    Py_INCREF(self);
    return self;
  }
  if (!check_self(m, obj)) return nullptr;
  PyObject* bound = bound_blocks.alloc(bound_type);
  if (bound == nullptr) return nullptr;
  BoundMethod* b = as_bound(bound);
  b->vectorcall = &bound_call;
  Py_INCREF(obj);
  b->self = obj;
  Py_INCREF(self);
  b->method = m;
  return bound;
}

// A PyMethodDef's doc without its "name(...)\n--\n\n" signature line, and that signature.
PyObject* doc_part(const PyMethodDef* def, bool signature) {
  const char* doc = def->ml_doc;
  if (doc == nullptr) Py_RETURN_NONE;
  const char* end = std::strstr(doc, ")\n--\n\n");
  const std::size_t name_length = std::strlen(def->ml_name);
  const bool has_signature =
      end != nullptr && std::strncmp(doc, def->ml_name, name_length) == 0 && doc[name_length] == '(';
  if (signature) {
    if (!has_signature) Py_RETURN_NONE;
    return PyUnicode_FromStringAndSize(doc + name_length, end + 1 - (doc + name_length));
  }
  return PyUnicode_FromString(has_signature ? end + 6 : doc);
}

PyObject* fast_name(PyObject* self, void*) { return PyUnicode_FromString(as_fast(self)->def->ml_name); }
PyObject* fast_qualname(PyObject* self, void*) {
  FastMethod* m = as_fast(self);
  nb::object owner = nb::steal(PyObject_GetAttr(reinterpret_cast<PyObject*>(m->owner), qualname_string));
  if (!owner.is_valid()) return nullptr;
  return PyUnicode_FromFormat("%S.%s", owner.ptr(), m->def->ml_name);
}
PyObject* fast_doc(PyObject* self, void*) { return doc_part(as_fast(self)->def, false); }
PyObject* fast_signature(PyObject* self, void*) { return doc_part(as_fast(self)->def, true); }
PyObject* fast_objclass(PyObject* self, void*) {
  PyObject* owner = reinterpret_cast<PyObject*>(as_fast(self)->owner);
  Py_INCREF(owner);
  return owner;
}

PyObject* fast_repr(PyObject* self) {
  FastMethod* m = as_fast(self);
  return PyUnicode_FromFormat("<method '%s' of '%s' objects>", m->def->ml_name, m->owner->tp_name);
}

void fast_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyGetSetDef fast_getset[] = {{"__name__", &fast_name, nullptr, nullptr, nullptr},
                             {"__qualname__", &fast_qualname, nullptr, nullptr, nullptr},
                             {"__doc__", &fast_doc, nullptr, nullptr, nullptr},
                             {"__text_signature__", &fast_signature, nullptr, nullptr, nullptr},
                             {"__objclass__", &fast_objclass, nullptr, nullptr, nullptr},
                             {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyMemberDef fast_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(FastMethod, vectorcall), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot fast_slots[] = {{Py_tp_call, reinterpret_cast<void*>(&PyVectorcall_Call)},
                            {Py_tp_descr_get, reinterpret_cast<void*>(&fast_get)},
                            {Py_tp_repr, reinterpret_cast<void*>(&fast_repr)},
                            {Py_tp_getset, fast_getset},
                            {Py_tp_members, fast_members},
                            {Py_tp_dealloc, reinterpret_cast<void*>(&fast_dealloc)},
                            {0, nullptr}};

PyType_Spec fast_spec = {"pyveda._core._FastMethod", sizeof(FastMethod), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
                         fast_slots};

// The bound method's descriptor as an object, or null with ReferenceError (see live_bound).
PyObject* bound_method_of(PyObject* self) {
  BoundMethod* b = live_bound(self);
  return b == nullptr ? nullptr : reinterpret_cast<PyObject*>(b->method);
}

PyObject* bound_self(PyObject* self, void*) {
  BoundMethod* b = live_bound(self);
  if (b == nullptr) return nullptr;
  Py_INCREF(b->self);
  return b->self;
}

PyObject* bound_name(PyObject* self, void*) {
  PyObject* method = bound_method_of(self);
  return method == nullptr ? nullptr : fast_name(method, nullptr);
}

PyObject* bound_qualname(PyObject* self, void*) {
  PyObject* method = bound_method_of(self);
  return method == nullptr ? nullptr : fast_qualname(method, nullptr);
}

PyObject* bound_doc(PyObject* self, void*) {
  PyObject* method = bound_method_of(self);
  return method == nullptr ? nullptr : fast_doc(method, nullptr);
}

PyObject* bound_signature(PyObject* self, void*) {
  PyObject* method = bound_method_of(self);
  return method == nullptr ? nullptr : fast_signature(method, nullptr);
}

PyObject* bound_repr(PyObject* self) {
  BoundMethod* b = as_bound(self);
  if (b->self == nullptr || b->method == nullptr) return PyUnicode_FromString("<built-in method (cleared)>");
  return PyUnicode_FromFormat("<built-in method %s of %s object at %p>", b->method->def->ml_name,
                              Py_TYPE(b->self)->tp_name, static_cast<void*>(b->self));
}

// Equal when bound to the same object by the same method, as builtin methods are.
PyObject* bound_compare(PyObject* a, PyObject* b, int op) {
  if ((op != Py_EQ && op != Py_NE) || Py_TYPE(b) != Py_TYPE(a)) Py_RETURN_NOTIMPLEMENTED;
  const bool same = as_bound(a)->self == as_bound(b)->self && as_bound(a)->method == as_bound(b)->method;
  return PyBool_FromLong((op == Py_EQ) == same ? 1 : 0);
}

Py_hash_t bound_hash(PyObject* self) {
  Py_hash_t hash = PyObject_Hash(as_bound(self)->self);
  if (hash == -1) return -1;
  hash ^= static_cast<Py_hash_t>(reinterpret_cast<std::uintptr_t>(as_bound(self)->method) >> 4);
  return hash == -1 ? -2 : hash;
}

int bound_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(as_bound(self)->self);
  Py_VISIT(reinterpret_cast<PyObject*>(as_bound(self)->method));
  return 0;
}

int bound_clear(PyObject* self) {
  BoundMethod* b = as_bound(self);
  Py_CLEAR(b->self);
  PyObject* method = reinterpret_cast<PyObject*>(b->method);
  b->method = nullptr;
  Py_XDECREF(method);
  return 0;
}

void bound_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  bound_clear(self);
  bound_blocks.free(self);
}

PyGetSetDef bound_getset[] = {{"__self__", &bound_self, nullptr, nullptr, nullptr},
                              {"__name__", &bound_name, nullptr, nullptr, nullptr},
                              {"__qualname__", &bound_qualname, nullptr, nullptr, nullptr},
                              {"__doc__", &bound_doc, nullptr, nullptr, nullptr},
                              {"__text_signature__", &bound_signature, nullptr, nullptr, nullptr},
                              {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyMemberDef bound_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(BoundMethod, vectorcall), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot bound_slots[] = {{Py_tp_call, reinterpret_cast<void*>(&PyVectorcall_Call)},
                             {Py_tp_repr, reinterpret_cast<void*>(&bound_repr)},
                             {Py_tp_richcompare, reinterpret_cast<void*>(&bound_compare)},
                             {Py_tp_hash, reinterpret_cast<void*>(&bound_hash)},
                             {Py_tp_getset, bound_getset},
                             {Py_tp_members, bound_members},
                             {Py_tp_traverse, reinterpret_cast<void*>(&bound_traverse)},
                             {Py_tp_clear, reinterpret_cast<void*>(&bound_clear)},
                             {Py_tp_dealloc, reinterpret_cast<void*>(&bound_dealloc)},
                             {0, nullptr}};

PyType_Spec bound_spec = {"pyveda._core._BoundMethod", sizeof(BoundMethod), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL, bound_slots};

}  // namespace

// A type of the module `m`, under the module's own name (pyveda._core, or _core
// when stubgen imports the build tree's copy), set as m.<name> unless name is null.
nb::object new_type(nb::module_& m, PyType_Spec& spec, const char* name) {
  nb::object type = nb::steal(PyType_FromModuleAndSpec(m.ptr(), &spec, nullptr));
  if (!type.is_valid()) throw nb::python_error();
  type.attr("__module__") = m.attr("__name__");
  if (name != nullptr) m.attr(name) = type;
  return type;
}

void init_fast_methods(nb::module_& m) {
  qualname_string = PyUnicode_InternFromString("__qualname__");
  if (qualname_string == nullptr) throw nb::python_error();
  // Module-lifetime types: referenced from here too, used without a module lookup.
  fast_type = reinterpret_cast<PyTypeObject*>(new_type(m, fast_spec, nullptr).release().ptr());
  bound_type = reinterpret_cast<PyTypeObject*>(new_type(m, bound_spec, nullptr).release().ptr());
}

// Puts a FastMethod for each of `defs` (null-terminated) on `owner`.
void add_unallocated_methods(PyTypeObject* owner, PyMethodDef* defs) {
  for (PyMethodDef* def = defs; def->ml_name != nullptr; ++def) {
    PyObject* self = fast_type->tp_alloc(fast_type, 0);
    if (self == nullptr) throw nb::python_error();
    nb::object method = nb::steal(self);
    as_fast(self)->vectorcall = &fast_call;
    as_fast(self)->def = def;
    as_fast(self)->owner = owner;
    if (PyObject_SetAttrString(reinterpret_cast<PyObject*>(owner), def->ml_name, self) < 0) {
      throw nb::python_error();
    }
  }
}

}  // namespace veda::bindings
