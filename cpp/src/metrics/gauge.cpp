#include "veda/metrics/gauge.hpp"

#include <limits>
#include <stdexcept>

#include "metrics/clock.hpp"

namespace veda {

Gauge::Gauge() : cells_(&own_), created_ns_(detail::unix_now_ns()) {}

Gauge::Gauge(detail::GaugeCells* shared, bool stamped)
    : cells_(shared), stamped_(stamped), created_ns_(detail::unix_now_ns()) {}

void Gauge::stamp() noexcept { cells_->changed_unix_nano.store(detail::unix_now_ns(), std::memory_order_relaxed); }

void Gauge::set_to_current_time() noexcept {
  set(static_cast<double>(detail::unix_now_ns()) / 1e9);
}

void Gauge::set_function(std::function<double()> fn) {
  if (fn && shared()) {
    throw std::logic_error(
        "a gauge recorded in a multi-process directory cannot take a function: other processes read only its "
        "stored value; set() it instead (e.g. from a callback of your own, before each scrape)");
  }
  std::unique_ptr<const std::function<double()>> next;
  if (fn) next = std::make_unique<const std::function<double()>>(std::move(fn));
  std::lock_guard<detail::ForkSafeMutex> lock(function_mutex_);
  function_ = std::move(next);
  has_function_.store(function_ != nullptr, std::memory_order_release);
}

double Gauge::call_function() const noexcept {
  // Called under the mutex, so set_function() returns only once no call of
  // the old function is in flight: its owner may then destroy what it reads.
  std::lock_guard<detail::ForkSafeMutex> lock(function_mutex_);
  if (!function_) return cells_->value.load(std::memory_order_relaxed);
  try {
    return (*function_)();
  } catch (...) {
    return std::numeric_limits<double>::quiet_NaN();
  }
}

}  // namespace veda
