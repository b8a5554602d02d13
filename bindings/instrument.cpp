// Timers, in-progress trackers and exception counters: the classes of
// pyveda.telemetry.instrument (Timer, InprogressTracker, ExceptionCounter),
// which that module re-exports.
//
// `with h.time():` makes one of these objects and calls its __enter__ and
// __exit__, and a decorated function runs inside one of its wrappers, so
// these are raw CPython types: creation reuses a freed block (no nanobind
// instance bookkeeping, no malloc), __enter__/__exit__ are PyMethodDefs bound
// without allocating (FastMethod), and the wrapper is a vectorcall object.
// What is Python-shaped stays in the facade: deciding how to decorate a
// generator, coroutine or async generator function, and functools.wraps.
// instrument(f) calls the function the facade registers with
// _set_instrument_decorator(); it calls back _plain(f) for a plain function.
//
// An object made by a series' time() / track_inprogress() /
// count_exceptions() records into that series directly (the Histogram,
// Gauge or Counter core, with the current span as exemplar as inc() and
// observe() keep it); one made by calling the class (Timer(metric, name),
// InprogressTracker(gauge), ExceptionCounter(counter)) calls the object's
// Python methods, so anything with them works.
//
// Durations are seconds as double from std::chrono::steady_clock (the clock
// of time.perf_counter on Linux and macOS).
//
// Thread-safety: everything runs under the GIL. A decorated function may run
// on any number of threads at once (its start time is local to the call); a
// `with` object keeps its start time on itself, so one object must not be in
// two blocks at the same time.
#include <nanobind/nanobind.h>
#include <structmember.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "fast_method.hpp"
#include "series.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace veda::bindings {
namespace {

// --- the objects --------------------------------------------------------------------------------

enum class Role : std::uint8_t { timer, tracker, counter };

// Where an instrument records: straight into the core series behind a
// SeriesRef<Histogram/Gauge/Counter> object, or through the object's Python methods.
enum class Target : std::uint8_t { histogram, gauge, counter, python };

// The one layout of the three types (each has its own methods).
struct Instrument {
  PyObject_HEAD
  Role role;
  Target target;
  bool has_duration;
  PyObject* metric;     // the series or object recorded into (strong)
  void* series;         // a core target: the Histogram/Gauge/Counter behind `metric`, if it has one (see core())
  PyObject* method;     // a Timer with a Python target: the name of the method it records with
  PyObject* exception;  // an ExceptionCounter: the class or tuple of classes it counts
  std::int64_t start;   // a Timer: now_ticks() at __enter__, kNotStarted before
  double duration;      // a Timer: the seconds its last `with` block took
};

constexpr std::int64_t kNotStarted = std::numeric_limits<std::int64_t>::min();

struct Types {
  PyTypeObject* base[3] = {};       // Timer, InprogressTracker, ExceptionCounter, by Role
  PyObject* decorate = nullptr;     // the facade's decorate(instrument, f), once registered
  PyTypeObject* wrapper = nullptr;  // InstrumentedFunction
  PyTypeObject* ready = nullptr;    // the already-complete awaitable of __aenter__/__aexit__
  PyObject* ready_none = nullptr;
  PyObject* ready_false = nullptr;
  PyObject* inc = nullptr;  // interned method names
  PyObject* dec = nullptr;
  PyObject* qualname = nullptr;
  PyObject* labels = nullptr;
  PyTypeObject* series[3] = {};  // _core.Histogram, _core.Gauge, _core.Counter, by Target
};
Types types;

const char* const kRoleName[] = {"Timer", "InprogressTracker", "ExceptionCounter"};

Instrument* as_instrument(PyObject* o) { return reinterpret_cast<Instrument*>(o); }
std::size_t role_index(Role role) { return static_cast<std::size_t>(role); }

// Steady-clock ticks (ns on the usual platforms); a duration in seconds is
// (end - start) * kSecondsPerTick, one multiplication per measurement.
using Clock = std::chrono::steady_clock;
std::int64_t now_ticks() noexcept { return Clock::now().time_since_epoch().count(); }
constexpr double kSecondsPerTick = static_cast<double>(Clock::period::num) / static_cast<double>(Clock::period::den);
double seconds_since(std::int64_t start) noexcept { return static_cast<double>(now_ticks() - start) * kSecondsPerTick; }

FreeList<Instrument, 16> instrument_blocks;

// The core series behind `metric` (a SeriesRef of the target's kind), or
// null for a labelled family itself, which has none.
void* core_series(Target target, PyObject* metric) {
  switch (target) {
    case Target::histogram:
      return nb::inst_ptr<SeriesRef<Histogram>>(metric)->series.get();
    case Target::gauge:
      return nb::inst_ptr<SeriesRef<Gauge>>(metric)->series.get();
    case Target::counter:
      return nb::inst_ptr<SeriesRef<Counter>>(metric)->series.get();
    case Target::python:
      break;
  }
  return nullptr;
}

// The core series an instrument with a core target records into; for a
// labelled family itself the core's ValueError (select a series first).
template <class M>
M& core(const Instrument* in) {
  return in->series != nullptr ? *static_cast<M*>(in->series) : series_of<M>(in->metric);
}

// A new instrument (null with a Python error).
PyObject* make_instrument(PyTypeObject* type, Role role, Target target, PyObject* metric, PyObject* method,
                          PyObject* exception) {
  PyObject* self = instrument_blocks.alloc(type);
  if (self == nullptr) return nullptr;
  Instrument* in = as_instrument(self);
  in->role = role;
  in->target = target;
  in->has_duration = false;
  in->duration = 0.0;
  Py_INCREF(metric);
  in->metric = metric;
  in->series = core_series(target, metric);
  Py_XINCREF(method);
  in->method = method;
  Py_XINCREF(exception);
  in->exception = exception;
  in->start = kNotStarted;
  return self;
}

// --- recording ----------------------------------------------------------------------------------

// Calls metric.<name>(*args) (null or one argument); false with the Python error set.
bool call_method(Instrument* in, PyObject* name, PyObject* arg) {
  PyObject* metric = in->metric;
  Py_INCREF(metric);  // a labels() inside the call may replace in->metric
  PyObject* args[] = {metric, arg};
  PyObject* result =
      PyObject_VectorcallMethod(name, args, (arg ? 2 : 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
  Py_DECREF(metric);
  Py_XDECREF(result);
  return result != nullptr;
}

// False with ReferenceError once the collector has cleared `in` (it was in a cycle).
bool live(Instrument* in) {
  if (in->metric != nullptr) return true;
  PyErr_Format(PyExc_ReferenceError, "%s: its metric was cleared by the garbage collector", kRoleName[role_index(in->role)]);
  return false;
}

// A Timer's recording of `seconds`; false with the Python error set.
bool timer_record(Instrument* in, double seconds) noexcept {
  if (!live(in)) return false;
  try {
    switch (in->target) {
      case Target::histogram:
        record(core<Histogram>(in), seconds, nullptr, "observe");
        return true;
      case Target::gauge:
        core<Gauge>(in).set(seconds);
        return true;
      default: {
        nb::object value = nb::steal(PyFloat_FromDouble(seconds));
        if (!value.is_valid()) return false;
        return call_method(in, in->method, value.ptr());
      }
    }
  } catch (...) {
    restore_as_python_error();
  }
  return false;
}

// An InprogressTracker's inc() (entering) or dec(); false with the Python error set.
bool tracker_step(Instrument* in, bool entering) noexcept {
  if (!live(in)) return false;
  if (in->target != Target::gauge) return call_method(in, entering ? types.inc : types.dec, nullptr);
  try {
    Gauge& gauge = core<Gauge>(in);
    if (entering) {
      gauge.inc();
    } else {
      gauge.dec();
    }
    return true;
  } catch (...) {
    restore_as_python_error();
  }
  return false;
}

// An ExceptionCounter's inc(); false with the Python error set.
bool counter_inc(Instrument* in) noexcept {
  if (!live(in)) return false;
  if (in->target != Target::counter) return call_method(in, types.inc, nullptr);
  try {
    record(core<Counter>(in), 1.0, nullptr, "inc");
    return true;
  } catch (...) {
    restore_as_python_error();
  }
  return false;
}

// Whether `error` (an exception instance or None) is one an ExceptionCounter counts; -1 with a Python error.
int counts(Instrument* in, PyObject* error) {
  if (error == Py_None) return 0;
  if (!live(in)) return -1;
  return PyObject_IsInstance(error, in->exception);
}

// The Python error being raised, put aside while more of the C API runs.
class HeldError {
 public:
  HeldError() noexcept {
#if PY_VERSION_HEX >= 0x030C0000
    error_ = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&type_, &error_, &traceback_);
#endif
  }
  HeldError(const HeldError&) = delete;
  HeldError& operator=(const HeldError&) = delete;

  // Raises it again.
  void restore() noexcept {
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(error_);
#else
    PyErr_Restore(type_, error_, traceback_);
#endif
  }

  // Leaves the error raised since as the current one, with this one as its
  // __context__, as an exception raised in a `finally:` block gets.
  void chain() noexcept {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject* now = PyErr_GetRaisedException();
    PyException_SetContext(now, error_);  // steals
    PyErr_SetRaisedException(now);
#else
    PyErr_NormalizeException(&type_, &error_, &traceback_);
    if (traceback_ != nullptr) PyException_SetTraceback(error_, traceback_);
    PyObject *type = nullptr, *now = nullptr, *traceback = nullptr;
    PyErr_Fetch(&type, &now, &traceback);
    PyErr_NormalizeException(&type, &now, &traceback);
    if (now != error_) {
      PyException_SetContext(now, error_);  // steals
    } else {
      Py_DECREF(error_);
    }
    Py_DECREF(type_);
    Py_XDECREF(traceback_);
    PyErr_Restore(type, now, traceback);
#endif
  }

 private:
#if PY_VERSION_HEX < 0x030C0000
  PyObject* type_ = nullptr;
  PyObject* traceback_ = nullptr;
#endif
  PyObject* error_ = nullptr;
};

// The end of a wrapped call that returned `result` (null: raised): runs
// `record`, as a `finally:` block would, and returns what the call should.
template <class Record>
PyObject* finish(PyObject* result, Record&& record) {
  if (result != nullptr) {
    if (record()) return result;
    Py_DECREF(result);
    return nullptr;
  }
  HeldError error;
  if (record()) {
    error.restore();
  } else {
    error.chain();
  }
  return nullptr;
}

// --- the already-complete awaitable -------------------------------------------------------------

// What __aenter__/__aexit__ return: awaiting it gives `value` at once (its
// am_send returns it; as an iterator it raises StopIteration(value)).
struct Ready {
  PyObject_HEAD
  PyObject* value;
};

PyObject* make_ready(PyObject* value) {
  PyObject* self = types.ready->tp_alloc(types.ready, 0);
  if (self == nullptr) return nullptr;
  Py_INCREF(value);
  reinterpret_cast<Ready*>(self)->value = value;
  return self;
}

PyObject* ready_await(PyObject* self) {
  Py_INCREF(self);
  return self;
}

PySendResult ready_send(PyObject* self, PyObject*, PyObject** result) {
  *result = reinterpret_cast<Ready*>(self)->value;
  Py_INCREF(*result);
  return PYGEN_RETURN;
}

PyObject* ready_next(PyObject* self) {
  PyObject* stop = PyObject_CallOneArg(PyExc_StopIteration, reinterpret_cast<Ready*>(self)->value);
  if (stop != nullptr) {
    PyErr_SetObject(PyExc_StopIteration, stop);
    Py_DECREF(stop);
  }
  return nullptr;
}

// The generator protocol, for callers that drive an awaitable's iterator by hand.
PyObject* ready_send_method(PyObject* self, PyObject*) { return ready_next(self); }

PyObject* ready_throw(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 3) {
    PyErr_Format(PyExc_TypeError, "throw() takes 1 to 3 arguments, got %zd", nargs);
    return nullptr;
  }
  PyObject* error = args[0];
  if (PyExceptionInstance_Check(error)) {
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error)), error);
  } else if (PyExceptionClass_Check(error)) {
    PyErr_SetObject(error, nargs >= 2 ? args[1] : Py_None);
  } else {
    PyErr_SetString(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException");
  }
  return nullptr;
}

PyObject* ready_close(PyObject*, PyObject*) { Py_RETURN_NONE; }

PyMethodDef ready_methods[] = {
    {"send", &ready_send_method, METH_O, "send($self, value, /)\n--\n\nRaises StopIteration(result)."},
    {"throw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&ready_throw)), METH_FASTCALL,
     "throw($self, error, /)\n--\n\nRaises error."},
    {"close", &ready_close, METH_NOARGS, "close($self, /)\n--\n\nDoes nothing: the awaitable is complete."},
    {nullptr, nullptr, 0, nullptr}};

void ready_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  Py_XDECREF(reinterpret_cast<Ready*>(self)->value);
  type->tp_free(self);
  Py_DECREF(type);
}

PyType_Slot ready_slots[] = {{Py_am_await, reinterpret_cast<void*>(&ready_await)},
                             {Py_am_send, reinterpret_cast<void*>(&ready_send)},
                             {Py_tp_iter, reinterpret_cast<void*>(&PyObject_SelfIter)},
                             {Py_tp_iternext, reinterpret_cast<void*>(&ready_next)},
                             {Py_tp_dealloc, reinterpret_cast<void*>(&ready_dealloc)},
                             {Py_tp_methods, ready_methods},
                             {Py_tp_doc, const_cast<char*>("An awaitable that is already complete.")},
                             {0, nullptr}};

PyType_Spec ready_spec = {"pyveda._core._Ready", sizeof(Ready), 0, Py_TPFLAGS_DEFAULT, ready_slots};

// --- the wrapper of a decorated plain function --------------------------------------------------

// Calls `func` inside its instrument: the object @h.time() and the others
// return for a plain function. Binds like a function (a decorated method
// gets self) and has a __dict__, so functools.wraps gives it the function's
// name, docstring and __wrapped__ (which inspect.signature follows).
struct Wrapper {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyObject* func;
  PyObject* instrument;  // an Instrument
  PyObject* dict;
  PyObject* weakrefs;
};

// The wrapper, or null with ReferenceError once the collector has cleared it (it was in a cycle).
Wrapper* live_wrapper(PyObject* o) {
  Wrapper* w = reinterpret_cast<Wrapper*>(o);
  if (w->func != nullptr && w->instrument != nullptr) return w;
  PyErr_SetString(PyExc_ReferenceError, "instrumented function: cleared by the garbage collector");
  return nullptr;
}

Wrapper* as_wrapper(PyObject* o) { return reinterpret_cast<Wrapper*>(o); }

PyObject* timed_call(PyObject* self, PyObject* const* args, std::size_t nargsf, PyObject* kwnames) {
  Wrapper* w = live_wrapper(self);
  if (w == nullptr) return nullptr;
  const std::int64_t start = now_ticks();
  PyObject* result = PyObject_Vectorcall(w->func, args, nargsf, kwnames);
  const double seconds = seconds_since(start);
  return finish(result, [&] { return timer_record(as_instrument(w->instrument), seconds); });
}

PyObject* tracked_call(PyObject* self, PyObject* const* args, std::size_t nargsf, PyObject* kwnames) {
  Wrapper* w = live_wrapper(self);
  if (w == nullptr) return nullptr;
  Instrument* in = as_instrument(w->instrument);
  if (!tracker_step(in, true)) return nullptr;
  PyObject* result = PyObject_Vectorcall(w->func, args, nargsf, kwnames);
  return finish(result, [&] { return tracker_step(in, false); });
}

PyObject* counted_call(PyObject* self, PyObject* const* args, std::size_t nargsf, PyObject* kwnames) {
  Wrapper* w = live_wrapper(self);
  if (w == nullptr) return nullptr;
  PyObject* result = PyObject_Vectorcall(w->func, args, nargsf, kwnames);
  Instrument* in = as_instrument(w->instrument);
  // As `except exception: inc(); raise`: the raised type is matched, no instance needed.
  if (result != nullptr || PyErr_ExceptionMatches(in->exception) == 0) return result;
  return finish(nullptr, [&] { return counter_inc(in); });
}

// instrument._plain(func): the wrapper (TypeError naming the instrument for a non-callable).
PyObject* make_wrapper(PyObject* instrument, PyObject* func) noexcept {
  if (PyCallable_Check(func) == 0) {
    PyErr_Format(PyExc_TypeError, "%s decorates a function, got %s (%R)", type_name_of(instrument).c_str(),
                 type_name_of(func).c_str(), func);
    return nullptr;
  }
  PyObject* dict = PyDict_New();
  if (dict == nullptr || PyDict_SetItemString(dict, "__wrapped__", func) < 0) {
    Py_XDECREF(dict);
    return nullptr;
  }
  PyObject* self = types.wrapper->tp_alloc(types.wrapper, 0);
  if (self == nullptr) {
    Py_DECREF(dict);
    return nullptr;
  }
  Wrapper* w = as_wrapper(self);
  switch (as_instrument(instrument)->role) {
    case Role::timer:
      w->vectorcall = &timed_call;
      break;
    case Role::tracker:
      w->vectorcall = &tracked_call;
      break;
    case Role::counter:
      w->vectorcall = &counted_call;
      break;
  }
  Py_INCREF(func);
  w->func = func;
  Py_INCREF(instrument);
  w->instrument = instrument;
  w->dict = dict;
  return self;
}

PyObject* wrapper_get(PyObject* self, PyObject* obj, PyObject*) {
  if (obj == nullptr || obj == Py_None) {
    Py_INCREF(self);
    return self;
  }
  return PyMethod_New(self, obj);
}

// Pickled by reference, as a function is: pickle looks up __module__.__qualname__.
PyObject* wrapper_reduce(PyObject* self, PyObject*) {
  PyObject* name = PyObject_GetAttr(self, types.qualname);
  if (name != nullptr || !PyErr_ExceptionMatches(PyExc_AttributeError)) return name;
  PyErr_Clear();
  Wrapper* w = live_wrapper(self);
  return w == nullptr ? nullptr : PyObject_GetAttr(w->func, types.qualname);
}

PyObject* wrapper_repr(PyObject* self) {
  Wrapper* w = as_wrapper(self);
  if (w->func == nullptr || w->instrument == nullptr) return PyUnicode_FromString("<instrumented function (cleared)>");
  return PyUnicode_FromFormat("<%R instrumented by %R>", w->func, w->instrument);
}

int wrapper_traverse(PyObject* self, visitproc visit, void* arg) {
  Wrapper* w = as_wrapper(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(w->func);
  Py_VISIT(w->instrument);
  Py_VISIT(w->dict);
  return 0;
}

int wrapper_clear(PyObject* self) {
  Wrapper* w = as_wrapper(self);
  Py_CLEAR(w->func);
  Py_CLEAR(w->instrument);
  Py_CLEAR(w->dict);
  return 0;
}

void wrapper_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (as_wrapper(self)->weakrefs != nullptr) PyObject_ClearWeakRefs(self);
  wrapper_clear(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyMethodDef wrapper_methods[] = {
    {"__reduce__", &wrapper_reduce, METH_NOARGS, "Pickled by reference, as the function it wraps."},
    {nullptr, nullptr, 0, nullptr}};

PyMemberDef wrapper_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Wrapper, vectorcall), READONLY, nullptr},
    {"__dictoffset__", T_PYSSIZET, offsetof(Wrapper, dict), READONLY, nullptr},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Wrapper, weakrefs), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyGetSetDef wrapper_getset[] = {{"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, nullptr, nullptr},
                                {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot wrapper_slots[] = {
    {Py_tp_call, reinterpret_cast<void*>(&PyVectorcall_Call)},
    {Py_tp_descr_get, reinterpret_cast<void*>(&wrapper_get)},
    {Py_tp_repr, reinterpret_cast<void*>(&wrapper_repr)},
    {Py_tp_traverse, reinterpret_cast<void*>(&wrapper_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&wrapper_clear)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&wrapper_dealloc)},
    {Py_tp_methods, wrapper_methods},
    {Py_tp_members, wrapper_members},
    {Py_tp_getset, wrapper_getset},
    {Py_tp_doc, const_cast<char*>("A plain function decorated by a Timer, InprogressTracker or ExceptionCounter: "
                                  "each call runs inside the instrument.")},
    {0, nullptr}};

PyType_Spec wrapper_spec = {
    "pyveda._core.InstrumentedFunction", sizeof(Wrapper), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    wrapper_slots};

// --- methods the three types share --------------------------------------------------------------

bool check_exit_args(Py_ssize_t nargs, const char* method) {
  if (nargs == 3) return true;
  PyErr_Format(PyExc_TypeError, "%s() takes 3 arguments (exc_type, exc, traceback), got %zd", method, nargs);
  return false;
}

bool check_end_args(Py_ssize_t nargs) {
  if (nargs == 2) return true;
  PyErr_Format(PyExc_TypeError, "_end() takes 2 arguments (token, error), got %zd", nargs);
  return false;
}

PyObject* instrument_plain(PyObject* self, PyObject* func) { return make_wrapper(self, func); }

// instrument(f): the facade's decorate(instrument, f), which picks the wrapper
// for f's kind; without one registered, _plain(f).
PyObject* instrument_call(PyObject* self, PyObject* args, PyObject* kwargs) {
  if (PyTuple_GET_SIZE(args) != 1 || (kwargs != nullptr && PyDict_GET_SIZE(kwargs) != 0)) {
    PyErr_Format(PyExc_TypeError, "%s(f) decorates one function, got %zd positional and %zd keyword arguments",
                 type_name_of(self).c_str(), PyTuple_GET_SIZE(args),
                 kwargs != nullptr ? PyDict_GET_SIZE(kwargs) : Py_ssize_t{0});
    return nullptr;
  }
  PyObject* func = PyTuple_GET_ITEM(args, 0);
  if (types.decorate == nullptr) return make_wrapper(self, func);
  PyObject* call_args[] = {self, func};
  return PyObject_Vectorcall(types.decorate, call_args, 2, nullptr);
}

PyObject* instrument_repr(PyObject* self) {
  Instrument* in = as_instrument(self);
  PyObject* metric = in->metric != nullptr ? in->metric : Py_None;
  const std::string name = type_name_of(self);
  if (in->role == Role::counter && in->exception != nullptr) {
    return PyUnicode_FromFormat("%s(%R, %R)", name.c_str(), metric, in->exception);
  }
  return PyUnicode_FromFormat("%s(%R)", name.c_str(), metric);
}

// Wraps `result` (new reference or null) as an already-complete awaitable.
PyObject* ready(PyObject* result) {
  if (result == nullptr) return nullptr;
  PyObject* awaitable = nullptr;
  if (result == Py_None) {
    awaitable = types.ready_none;
    Py_INCREF(awaitable);
  } else if (result == Py_False) {
    awaitable = types.ready_false;
    Py_INCREF(awaitable);
  } else {
    awaitable = make_ready(result);
  }
  Py_DECREF(result);
  return awaitable;
}

int instrument_traverse(PyObject* self, visitproc visit, void* arg) {
  Instrument* in = as_instrument(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(in->metric);
  Py_VISIT(in->method);
  Py_VISIT(in->exception);
  return 0;
}

int instrument_clear(PyObject* self) {
  Instrument* in = as_instrument(self);
  in->series = nullptr;
  Py_CLEAR(in->metric);
  Py_CLEAR(in->method);
  Py_CLEAR(in->exception);
  return 0;
}

void instrument_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  instrument_clear(self);
  instrument_blocks.free(self);
}

PyObject* instrument_metric(PyObject* self, void*) {
  PyObject* metric = as_instrument(self)->metric;
  if (metric == nullptr) Py_RETURN_NONE;  // only after the collector cleared it
  Py_INCREF(metric);
  return metric;
}

// --- Timer --------------------------------------------------------------------------------------

PyObject* timer_enter(PyObject* self, PyObject*) {
  as_instrument(self)->start = now_ticks();
  Py_INCREF(self);
  return self;
}

PyObject* timer_exit(PyObject* self, PyObject* const*, Py_ssize_t nargs) {
  if (!check_exit_args(nargs, "__exit__")) return nullptr;
  Instrument* in = as_instrument(self);
  if (in->start == kNotStarted) {
    PyErr_SetString(PyExc_RuntimeError, "Timer: __exit__() without __enter__(): use the timer in a with block");
    return nullptr;
  }
  in->duration = seconds_since(in->start);
  in->has_duration = true;
  if (!timer_record(in, in->duration)) return nullptr;
  Py_RETURN_FALSE;
}

PyObject* timer_aenter(PyObject* self, PyObject* arg) { return ready(timer_enter(self, arg)); }
PyObject* timer_aexit(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_exit_args(nargs, "__aexit__")) return nullptr;
  return ready(timer_exit(self, args, nargs));
}

// The token of a generator's or coroutine's timing: the clock now (an int).
PyObject* timer_begin(PyObject*, PyObject*) { return PyLong_FromLongLong(now_ticks()); }

PyObject* timer_end(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_end_args(nargs)) return nullptr;
  const long long start = PyLong_AsLongLong(args[0]);
  if (start == -1 && PyErr_Occurred()) return nullptr;
  if (!timer_record(as_instrument(self), seconds_since(start))) return nullptr;
  Py_RETURN_NONE;
}

PyObject* timer_duration(PyObject* self, void*) {
  Instrument* in = as_instrument(self);
  if (!in->has_duration) Py_RETURN_NONE;
  return PyFloat_FromDouble(in->duration);
}

// What labels() picked becomes the timer's metric. A timer recording into a
// core series keeps doing so, so the new metric must be a series of the same kind.
bool set_metric(Instrument* in, PyObject* value) {
  if (in->target != Target::python) {
    PyTypeObject* series = types.series[static_cast<std::size_t>(in->target)];
    if (PyObject_TypeCheck(value, series) == 0) {
      PyErr_Format(PyExc_TypeError,
                   "Timer: this timer records into a %s series, so labels() must return one, got %s",
                   series->tp_name, type_name_of(value).c_str());
      return false;
    }
  }
  Py_INCREF(value);
  Py_XSETREF(in->metric, value);
  in->series = core_series(in->target, value);
  return true;
}

// timer.labels(*values, **named_values): records into metric.labels(...) from now on; returns the timer.
PyObject* timer_labels(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  Instrument* in = as_instrument(self);
  if (!live(in)) return nullptr;
  nb::object labels = nb::steal(PyObject_GetAttr(in->metric, types.labels));
  if (!labels.is_valid()) return nullptr;
  nb::object series = nb::steal(PyObject_Vectorcall(labels.ptr(), args, static_cast<std::size_t>(nargs), kwnames));
  if (!series.is_valid() || !set_metric(in, series.ptr())) return nullptr;
  Py_INCREF(self);
  return self;
}

// Timer(metric, callback_name): records with getattr(metric, callback_name)(seconds).
PyObject* timer_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"metric", "callback_name", nullptr};
  PyObject* metric = nullptr;
  PyObject* name = nullptr;
  if (PyArg_ParseTupleAndKeywords(args, kwargs, "OO:Timer", const_cast<char**>(keywords), &metric, &name) == 0) {
    return nullptr;
  }
  if (!PyUnicode_Check(name)) {
    PyErr_Format(PyExc_TypeError, "Timer: callback_name must be a str naming the method to record with, got %s",
                 type_name_of(name).c_str());
    return nullptr;
  }
  PyObject* callback = PyObject_GetAttr(metric, name);
  if (callback == nullptr) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return nullptr;
    PyErr_Clear();
  }
  const bool callable = callback != nullptr && PyCallable_Check(callback) != 0;
  Py_XDECREF(callback);
  if (!callable) {
    PyErr_Format(PyExc_TypeError, "Timer: %s has no method %R to record with", type_name_of(metric).c_str(), name);
    return nullptr;
  }
  return make_instrument(type, Role::timer, Target::python, metric, name, nullptr);
}

// Bound without allocating (see FastMethod).
PyMethodDef timer_with[] = {
    {"__enter__", &timer_enter, METH_NOARGS, "__enter__($self, /)\n--\n\nStarts the clock; returns the timer."},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&timer_exit)), METH_FASTCALL,
     "__exit__($self, exc_type, exc, traceback, /)\n--\n\n"
     "Records the seconds since __enter__ (also when the block raised) and returns False."},
    {"__aenter__", &timer_aenter, METH_NOARGS, "__aenter__($self, /)\n--\n\n__enter__(), as an awaitable."},
    {"__aexit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&timer_aexit)), METH_FASTCALL,
     "__aexit__($self, exc_type, exc, traceback, /)\n--\n\n__exit__(), as an awaitable."},
    {nullptr, nullptr, 0, nullptr}};

PyMethodDef timer_methods[] = {
    {"labels", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&timer_labels)),
     METH_FASTCALL | METH_KEYWORDS,
     "labels($self, /, *values, **named_values)\n--\n\n"
     "Records into metric.labels(*values, **named_values) from now on, also inside the block and in functions "
     "decorated before; returns the timer (prometheus_client returns None)."},
    {"_plain", &instrument_plain, METH_O,
     "_plain($self, func, /)\n--\n\nfunc wrapped so each call is timed (TypeError if it is not callable)."},
    {"_begin", &timer_begin, METH_NOARGS, "_begin($self, /)\n--\n\nThe token _end() takes: the clock now."},
    {"_end", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&timer_end)), METH_FASTCALL,
     "_end($self, token, error, /)\n--\n\nRecords the seconds since _begin() returned token."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef timer_getset[] = {
    {"duration", &timer_duration, nullptr, "The seconds the last with block took, or None before one ended.",
     nullptr},
    {"_metric", &instrument_metric, nullptr, "The metric the timer records into.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

// --- InprogressTracker --------------------------------------------------------------------------

PyObject* tracker_enter(PyObject* self, PyObject*) {
  if (!tracker_step(as_instrument(self), true)) return nullptr;
  Py_RETURN_NONE;
}

PyObject* tracker_exit(PyObject* self, PyObject* const*, Py_ssize_t nargs) {
  if (!check_exit_args(nargs, "__exit__")) return nullptr;
  if (!tracker_step(as_instrument(self), false)) return nullptr;
  Py_RETURN_FALSE;
}

PyObject* tracker_aenter(PyObject* self, PyObject* arg) { return ready(tracker_enter(self, arg)); }
PyObject* tracker_aexit(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_exit_args(nargs, "__aexit__")) return nullptr;
  return ready(tracker_exit(self, args, nargs));
}

PyObject* tracker_end(PyObject* self, PyObject* const*, Py_ssize_t nargs) {
  if (!check_end_args(nargs) || !tracker_step(as_instrument(self), false)) return nullptr;
  Py_RETURN_NONE;
}

// InprogressTracker(gauge): gauge.inc() on entry, gauge.dec() on exit.
PyObject* tracker_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"gauge", nullptr};
  PyObject* gauge = nullptr;
  if (PyArg_ParseTupleAndKeywords(args, kwargs, "O:InprogressTracker", const_cast<char**>(keywords), &gauge) == 0) {
    return nullptr;
  }
  return make_instrument(type, Role::tracker, Target::python, gauge, nullptr, nullptr);
}

// Bound without allocating (see FastMethod).
PyMethodDef tracker_with[] = {
    {"__enter__", &tracker_enter, METH_NOARGS, "__enter__($self, /)\n--\n\nAdds 1 to the gauge; returns None."},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&tracker_exit)), METH_FASTCALL,
     "__exit__($self, exc_type, exc, traceback, /)\n--\n\nSubtracts 1 from the gauge; returns False."},
    {"__aenter__", &tracker_aenter, METH_NOARGS, "__aenter__($self, /)\n--\n\n__enter__(), as an awaitable."},
    {"__aexit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&tracker_aexit)), METH_FASTCALL,
     "__aexit__($self, exc_type, exc, traceback, /)\n--\n\n__exit__(), as an awaitable."},
    {nullptr, nullptr, 0, nullptr}};

PyMethodDef tracker_methods[] = {
    {"_plain", &instrument_plain, METH_O,
     "_plain($self, func, /)\n--\n\nfunc wrapped so the gauge counts its running calls (TypeError if it is "
     "not callable)."},
    {"_begin", &tracker_enter, METH_NOARGS, "_begin($self, /)\n--\n\nAdds 1 to the gauge; returns None."},
    {"_end", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&tracker_end)), METH_FASTCALL,
     "_end($self, token, error, /)\n--\n\nSubtracts 1 from the gauge."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef tracker_getset[] = {{"_gauge", &instrument_metric, nullptr, "The gauge tracked.", nullptr},
                                {nullptr, nullptr, nullptr, nullptr, nullptr}};

// --- ExceptionCounter ---------------------------------------------------------------------------

PyObject* counter_enter(PyObject*, PyObject*) { Py_RETURN_NONE; }

PyObject* counter_exit(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_exit_args(nargs, "__exit__")) return nullptr;
  Instrument* in = as_instrument(self);
  const int counted = counts(in, args[1]);
  if (counted < 0 || (counted > 0 && !counter_inc(in))) return nullptr;
  Py_RETURN_FALSE;
}

PyObject* counter_aenter(PyObject* self, PyObject* arg) { return ready(counter_enter(self, arg)); }
PyObject* counter_aexit(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_exit_args(nargs, "__aexit__")) return nullptr;
  return ready(counter_exit(self, args, nargs));
}

PyObject* counter_end(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_end_args(nargs)) return nullptr;
  Instrument* in = as_instrument(self);
  const int counted = counts(in, args[1]);
  if (counted < 0 || (counted > 0 && !counter_inc(in))) return nullptr;
  Py_RETURN_NONE;
}

PyObject* counter_exception(PyObject* self, void*) {
  PyObject* exception = as_instrument(self)->exception;
  if (exception == nullptr) Py_RETURN_NONE;
  Py_INCREF(exception);
  return exception;
}

// An exception class or a flat tuple of them; TypeError otherwise, as count_exceptions() words it.
bool check_exception_types(PyObject* exception) {
  bool ok = PyExceptionClass_Check(exception) != 0;
  if (!ok && PyTuple_Check(exception)) {
    ok = true;
    for (Py_ssize_t i = 0; ok && i < PyTuple_GET_SIZE(exception); ++i) {
      ok = PyExceptionClass_Check(PyTuple_GET_ITEM(exception, i)) != 0;
    }
  }
  if (!ok) {
    PyErr_Format(PyExc_TypeError, "count_exceptions() takes an exception class or a tuple of them, got %R",
                 exception);
  }
  return ok;
}

// ExceptionCounter(counter, exception=Exception): counter.inc() per exception of those types.
PyObject* counter_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"counter", "exception", nullptr};
  PyObject* counter = nullptr;
  PyObject* exception = PyExc_Exception;
  if (PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:ExceptionCounter", const_cast<char**>(keywords), &counter,
                                  &exception) == 0 ||
      !check_exception_types(exception)) {
    return nullptr;
  }
  return make_instrument(type, Role::counter, Target::python, counter, nullptr, exception);
}

// Bound without allocating (see FastMethod).
PyMethodDef counter_with[] = {
    {"__enter__", &counter_enter, METH_NOARGS, "__enter__($self, /)\n--\n\nReturns None."},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&counter_exit)), METH_FASTCALL,
     "__exit__($self, exc_type, exc, traceback, /)\n--\n\n"
     "Adds 1 to the counter if exc is one of the exception types; returns False (the exception propagates)."},
    {"__aenter__", &counter_aenter, METH_NOARGS, "__aenter__($self, /)\n--\n\n__enter__(), as an awaitable."},
    {"__aexit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&counter_aexit)), METH_FASTCALL,
     "__aexit__($self, exc_type, exc, traceback, /)\n--\n\n__exit__(), as an awaitable."},
    {nullptr, nullptr, 0, nullptr}};

PyMethodDef counter_methods[] = {
    {"_plain", &instrument_plain, METH_O,
     "_plain($self, func, /)\n--\n\nfunc wrapped so its exceptions are counted (TypeError if it is not "
     "callable)."},
    {"_begin", &counter_enter, METH_NOARGS, "_begin($self, /)\n--\n\nReturns None."},
    {"_end", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&counter_end)), METH_FASTCALL,
     "_end($self, token, error, /)\n--\n\nAdds 1 to the counter if error is one of the exception types."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef counter_getset[] = {
    {"_counter", &instrument_metric, nullptr, "The counter incremented.", nullptr},
    {"_exception", &counter_exception, nullptr, "The exception class or tuple of classes counted.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

// --- the types ----------------------------------------------------------------------------------

#define VEDA_INSTRUMENT_SLOTS(prefix, doc)                                              \
  {                                                                                     \
    {Py_tp_new, reinterpret_cast<void*>(&prefix##_new)},                                \
        {Py_tp_methods, prefix##_methods}, {Py_tp_getset, prefix##_getset},             \
        {Py_tp_call, reinterpret_cast<void*>(&instrument_call)},                        \
        {Py_tp_repr, reinterpret_cast<void*>(&instrument_repr)},                        \
        {Py_tp_traverse, reinterpret_cast<void*>(&instrument_traverse)},                \
        {Py_tp_clear, reinterpret_cast<void*>(&instrument_clear)},                      \
        {Py_tp_dealloc, reinterpret_cast<void*>(&instrument_dealloc)},                  \
        {Py_tp_doc, const_cast<char*>(doc)}, { 0, nullptr }                             \
  }

PyType_Slot timer_slots[] = VEDA_INSTRUMENT_SLOTS(
    timer,
    "Timer(metric, callback_name)\n--\n\n"
    "Times a block or a function and records the duration in seconds.\n\n"
    "Histogram.time() and Summary.time() make one observing into the series, Gauge.time() one setting the "
    "gauge; Timer(metric, callback_name) records with getattr(metric, callback_name)(seconds) on any object. "
    "Use it in with / async with (it is what __enter__ returns; afterwards `duration` holds the seconds "
    "recorded, None before) or as a decorator of a function, generator function, coroutine function or async "
    "generator function (the whole execution or iteration). A block that raises is recorded too; the "
    "exception propagates.\n\n"
    "On a labelled metric pick the series before the block ends: with h.labels('GET').time(): ..., or, as "
    "prometheus_client allows, call labels(...) on the timer (with h.time() as t: ...; t.labels(status)). A "
    "timer of a labelled metric whose series was never chosen raises the metric's ValueError when it records.");
PyType_Slot tracker_slots[] = VEDA_INSTRUMENT_SLOTS(
    tracker,
    "InprogressTracker(gauge)\n--\n\n"
    "Adds 1 to a gauge while a block or function runs: inc() on entry, dec() on exit (also when it raises).\n\n"
    "Gauge.track_inprogress() makes one recording into the series (ValueError on a labelled gauge: call it on "
    "labels(...)); InprogressTracker(gauge) calls gauge.inc() and gauge.dec() on any object. For with / async "
    "with (__enter__ returns None) or as a decorator, as Timer.");
PyType_Slot counter_slots[] = VEDA_INSTRUMENT_SLOTS(
    counter,
    "ExceptionCounter(counter, exception=Exception)\n--\n\n"
    "Adds 1 to a counter each time an exception of the given type(s) leaves a block or function; the "
    "exception is never swallowed.\n\n"
    "Counter.count_exceptions(exception) makes one recording into the series (ValueError on a labelled "
    "counter: call it on labels(...)); ExceptionCounter(counter, exception) calls counter.inc() on any object. "
    "`exception` is an exception class or a tuple of them. GeneratorExit (a generator closed early) and "
    "asyncio.CancelledError derive from BaseException, so the default Exception does not count them. For "
    "with / async with (__enter__ returns None) or as a decorator, as Timer.");

#undef VEDA_INSTRUMENT_SLOTS

constexpr unsigned kInstrumentFlags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC;
PyType_Spec instrument_specs[] = {
    {"pyveda._core.Timer", sizeof(Instrument), 0, kInstrumentFlags, timer_slots},
    {"pyveda._core.InprogressTracker", sizeof(Instrument), 0, kInstrumentFlags, tracker_slots},
    {"pyveda._core.ExceptionCounter", sizeof(Instrument), 0, kInstrumentFlags, counter_slots},
};

// A series' own instrument, recording into it directly.
PyObject* series_instrument(Role role, Target target, PyObject* series, PyObject* exception) {
  return make_instrument(types.base[role_index(role)], role, target, series, nullptr, exception);
}


}  // namespace

// --- the factories on the series types ----------------------------------------------------------

PyObject* histogram_time(PyObject* self, PyObject*) noexcept {
  return series_instrument(Role::timer, Target::histogram, self, nullptr);
}

PyObject* gauge_time(PyObject* self, PyObject*) noexcept {
  return series_instrument(Role::timer, Target::gauge, self, nullptr);
}

PyObject* gauge_track_inprogress(PyObject* self, PyObject*) noexcept {
  return guarded([&] {
    series_of<Gauge>(self);  // a labelled gauge: its ValueError now, as prometheus_client
    return series_instrument(Role::tracker, Target::gauge, self, nullptr);
  });
}

PyObject* counter_count_exceptions(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                                   PyObject* kwnames) noexcept {
  return guarded([&]() -> PyObject* {
    PyObject* exception = nargs >= 1 ? args[0] : nullptr;
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 1) {
      PyErr_Format(PyExc_TypeError, "count_exceptions() takes at most 1 argument (exception), got %zd",
                   nargs + nkw);
      return nullptr;
    }
    if (nkw == 1) {
      PyObject* name = PyTuple_GET_ITEM(kwnames, 0);
      if (PyUnicode_CompareWithASCIIString(name, "exception") != 0) {
        PyErr_Format(PyExc_TypeError, "count_exceptions() got an unexpected keyword argument %R (allowed: exception)",
                     name);
        return nullptr;
      }
      exception = args[0];
    }
    series_of<Counter>(self);  // a labelled counter: its ValueError now, as prometheus_client
    if (exception == nullptr) {
      exception = PyExc_Exception;
    } else if (!check_exception_types(exception)) {
      return nullptr;
    }
    return series_instrument(Role::counter, Target::counter, self, exception);
  });
}

void init_instruments(nb::module_& m) {
  types.inc = PyUnicode_InternFromString("inc");
  types.dec = PyUnicode_InternFromString("dec");
  types.qualname = PyUnicode_InternFromString("__qualname__");
  types.labels = PyUnicode_InternFromString("labels");
  types.series[static_cast<std::size_t>(Target::histogram)] =
      reinterpret_cast<PyTypeObject*>(nb::type<SeriesRef<Histogram>>().ptr());
  types.series[static_cast<std::size_t>(Target::gauge)] =
      reinterpret_cast<PyTypeObject*>(nb::type<SeriesRef<Gauge>>().ptr());
  types.series[static_cast<std::size_t>(Target::counter)] =
      reinterpret_cast<PyTypeObject*>(nb::type<SeriesRef<Counter>>().ptr());

  // Module-lifetime objects: the types stay referenced from here too (the
  // factories use them without a module lookup).
  init_fast_methods(m);
  PyMethodDef* with_methods[] = {timer_with, tracker_with, counter_with};
  for (std::size_t i = 0; i < 3; ++i) {
    nb::object type = new_type(m, instrument_specs[i], kRoleName[i]);
    add_unallocated_methods(reinterpret_cast<PyTypeObject*>(type.ptr()), with_methods[i]);
    types.base[i] = reinterpret_cast<PyTypeObject*>(type.release().ptr());
  }
  types.wrapper = reinterpret_cast<PyTypeObject*>(new_type(m, wrapper_spec, "InstrumentedFunction").release().ptr());
  types.ready = reinterpret_cast<PyTypeObject*>(new_type(m, ready_spec, nullptr).release().ptr());
  types.ready_none = make_ready(Py_None);
  types.ready_false = make_ready(Py_False);
  if (types.ready_none == nullptr || types.ready_false == nullptr) throw nb::python_error();

  m.def(
      "_set_instrument_decorator",
      [](nb::object decorate) {
        if (PyCallable_Check(decorate.ptr()) == 0) {
          throw nb::type_error(("_set_instrument_decorator() takes a callable, got " + type_name_of(decorate.ptr()))
                                   .c_str());
        }
        Py_XSETREF(types.decorate, decorate.release().ptr());
      },
      "decorate"_a,
      "Sets what instrument(f) calls: decorate(instrument, f), returning the wrapped function (for a plain "
      "function, from instrument._plain(f)).");
}

}  // namespace veda::bindings
