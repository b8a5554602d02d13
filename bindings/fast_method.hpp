// Methods bound without allocating, and the free list and type helper the
// raw CPython types of the bindings share (see instrument.cpp, their user).
//
// `with obj:` looks __enter__ and __exit__ up on obj's type and binds each to
// obj; for a method of tp_methods each binding is a new builtin method object
// (a GC allocation and free each). add_unallocated_methods() puts FastMethod
// descriptors on a type instead: the same PyMethodDef, bound by a
// BoundMethod whose block comes from a free list. They behave as builtin
// methods do (__name__, __qualname__, __doc__, __text_signature__,
// __self__, equality and hashing of bound methods).
#pragma once

#include <nanobind/nanobind.h>

#include <cstddef>

namespace veda::bindings {

// Blocks of deallocated objects of one GC type layout, reused by the next
// allocation, as CPython's own free lists for lists and tuples are: a
// `with h.time():` block then costs no malloc/free for its timer or its two
// bound methods. Used under the GIL only (no free list without one).
template <class T, std::size_t N>
class FreeList {
 public:
  // A new object of `type` (refcount 1, tracked by the collector); the
  // caller sets every field of T (a reused block keeps its old values).
  PyObject* alloc(PyTypeObject* type) {
    if (count_ == 0 || type->tp_basicsize != static_cast<Py_ssize_t>(sizeof(T))) return type->tp_alloc(type, 0);
    PyObject* op = blocks_[--count_];
    PyObject_Init(op, type);  // refcount 1, a reference to the type
    PyObject_GC_Track(op);
    return op;
  }

  // Ends an untracked, cleared object: keeps its block when there is room,
  // else type->tp_free; then drops the object's reference to its type.
  void free(PyObject* op) {
    PyTypeObject* type = Py_TYPE(op);
    if (count_ < kCapacity && type->tp_basicsize == static_cast<Py_ssize_t>(sizeof(T)) &&
        type->tp_free == PyObject_GC_Del && type->tp_finalize == nullptr) {
      blocks_[count_++] = op;
    } else {
      type->tp_free(op);
    }
    Py_DECREF(type);
  }

 private:
#ifdef Py_GIL_DISABLED
  static constexpr std::size_t kCapacity = 0;
#else
  static constexpr std::size_t kCapacity = N;
#endif
  PyObject* blocks_[N] = {};
  std::size_t count_ = 0;
};

// A heap type of the module `m`, under the module's own name (pyveda._core, or _core
// when stubgen imports the build tree's copy), set as m.<name> unless name is null.
nanobind::object new_type(nanobind::module_& m, PyType_Spec& spec, const char* name);

// Creates the FastMethod and BoundMethod types in `m` (once, before add_unallocated_methods()).
void init_fast_methods(nanobind::module_& m);

// Puts a FastMethod for each of `defs` (null-terminated: METH_NOARGS or
// METH_FASTCALL methods) on `owner`, which must live until the process ends.
void add_unallocated_methods(PyTypeObject* owner, PyMethodDef* defs);

}  // namespace veda::bindings
