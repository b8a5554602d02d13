// pyveda._core.FutureCore: the native base of pyveda.runtime.Future (see future.hpp).
#include "future.hpp"

#include <nanobind/nanobind.h>

#include <nanobind/stl/optional.h>

#include <optional>
#include <utility>

namespace nb = nanobind;
using namespace nb::literals;

namespace veda::bindings {
namespace {

// concurrent.futures.Future's public methods, which drive an attached future.
struct BaseMethods {
  nb::object done, running, cancelled, set_running_or_notify_cancel, set_result, set_exception, cancel;
};

const BaseMethods& base() {
  static const BaseMethods* methods = [] {
    nb::object cls = nb::module_::import_("concurrent.futures").attr("Future");
    return new BaseMethods{cls.attr("done"),       cls.attr("running"),
                           cls.attr("cancelled"),  cls.attr("set_running_or_notify_cancel"),
                           cls.attr("set_result"), cls.attr("set_exception"),
                           cls.attr("cancel")};
  }();
  return *methods;
}

PyFuture& native(nb::handle self) { return *nb::inst_ptr<PyFuture>(self); }

int future_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  if (!nb::inst_ready(self)) return 0;
  return native(self).traverse(visit, arg);
}

int future_clear(PyObject* self) {
  if (nb::inst_ready(self)) native(self).clear();
  return 0;
}

PyType_Slot future_slots[] = {{Py_tp_traverse, reinterpret_cast<void*>(future_traverse)},
                              {Py_tp_clear, reinterpret_cast<void*>(future_clear)},
                              {0, nullptr}};

}  // namespace

bool PyFuture::start(nb::handle self) {
  PyFuture& f = native(self);
  if (!f.attached()) return f.state_.try_start();
  return nb::cast<bool>(base().set_running_or_notify_cancel(self));
}

void PyFuture::finish(nb::handle self, nb::handle result, nb::handle exception) {
  PyFuture& f = native(self);
  if (!f.attached()) {
    f.raised_ = static_cast<bool>(exception);
    f.value_ = nb::borrow(exception ? exception : result);
    f.state_.finish();
    return;
  }
  if (exception) {
    base().set_exception(self, exception);
  } else {
    base().set_result(self, result);
  }
}

void PyFuture::cancel_unrun(nb::handle self) {
  PyFuture& f = native(self);
  if (!f.attached()) {
    f.state_.try_cancel();
    f.state_.try_start();  // records that the runner saw the cancellation
    return;
  }
  base().cancel(self);
  base().set_running_or_notify_cancel(self);
}

Outcome PyFuture::peek() const {
  if (attached()) return Outcome::attached;
  switch (state_.status()) {
    case FutureStatus::pending:
      return Outcome::pending;
    case FutureStatus::running:
      return Outcome::running;
    case FutureStatus::cancelled:
      return Outcome::cancelled;
    case FutureStatus::cancelled_notified:
      return Outcome::cancelled_notified;
    case FutureStatus::finished:
      break;
  }
  return raised_ ? Outcome::raised : Outcome::returned;
}

Outcome PyFuture::attach() {
  if (attached()) return Outcome::attached;
  const Outcome outcome = peek();
  attached_.store(true, std::memory_order_release);
  return outcome;
}

int PyFuture::traverse(visitproc visit, void* arg) const {
  Py_VISIT(value_.ptr());
  Py_VISIT(runtime_.ptr());
  return 0;
}

void PyFuture::clear() {
  value_.reset();
  runtime_.reset();
}

void init_future(nb::module_& m) {
  auto cls = nb::class_<PyFuture>(m, "FutureCore",
                       "The native state of a pyveda.runtime.Future (which derives from it and from "
                       "concurrent.futures.Future); package-internal.",
                       nb::type_slots(future_slots))
      .def(nb::init<nb::object>(), "runtime"_a)
      .def(
          "done",
          [](nb::handle self) {
            const PyFuture& f = native(self);
            return f.attached() ? nb::cast<bool>(base().done(self)) : f.native_done();
          },
          "True once the task finished or was cancelled.")
      .def(
          "running",
          [](nb::handle self) {
            const PyFuture& f = native(self);
            return f.attached() ? nb::cast<bool>(base().running(self)) : f.peek() == Outcome::running;
          },
          "True while the task runs.")
      .def(
          "cancelled",
          [](nb::handle self) {
            const PyFuture& f = native(self);
            if (f.attached()) return nb::cast<bool>(base().cancelled(self));
            const Outcome o = f.peek();
            return o == Outcome::cancelled || o == Outcome::cancelled_notified;
          },
          "True if the task was cancelled before it ran.")
      .def(
          "_peek", [](const PyFuture& f) { return nb::make_tuple(static_cast<int>(f.peek()), f.value()); },
          "(outcome, value): the outcome code (see pyveda.runtime) and the result or exception once finished.")
      .def(
          "_attach", [](PyFuture& f) { return nb::make_tuple(static_cast<int>(f.attach()), f.value()); },
          "Hands the state to the base class's fields; returns what _peek() returned just before.")
      .def(
          "_try_cancel",
          [](PyFuture& f) -> std::optional<bool> {
            if (f.attached()) return std::nullopt;
            return f.try_cancel();
          },
          "Cancels a native future (True if cancelled); None once attached (the base class cancels).")
      .def_prop_ro("_attached", &PyFuture::attached, "True once the base class's fields hold the state.")
      .def_prop_ro("_runtime", [](const PyFuture& f) { return f.runtime(); });
  // The outcome codes _peek() and _attach() return, for pyveda.runtime.
  const std::pair<const char*, Outcome> outcomes[] = {
      {"PENDING", Outcome::pending},     {"RUNNING", Outcome::running},
      {"RETURNED", Outcome::returned},   {"RAISED", Outcome::raised},
      {"CANCELLED", Outcome::cancelled}, {"CANCELLED_NOTIFIED", Outcome::cancelled_notified},
      {"ATTACHED", Outcome::attached}};
  for (const auto& [name, code] : outcomes) cls.attr(name) = static_cast<int>(code);
}

}  // namespace veda::bindings
