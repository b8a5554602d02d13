#include "veda/metrics/gauge.hpp"

#include "metrics/clock.hpp"

namespace veda {

Gauge::Gauge() noexcept : created_ns_(detail::unix_now_ns()) {}

void Gauge::set_to_current_time() noexcept {
  set(static_cast<double>(detail::unix_now_ns()) / 1e9);
}

}  // namespace veda
