#include "veda/metrics/counter.hpp"

#include <stdexcept>
#include <string>

#include "metrics/clock.hpp"
#include "veda/metrics/text_format.hpp"

namespace veda {

Counter::Counter()
    : own_(detail::allocate_cells(sizeof(detail::CounterCells))),
      cells_(new (own_.get()) detail::CounterCells),
      created_ns_(detail::unix_now_ns()),
      exemplars_(1) {}

Counter::Counter(detail::CounterCells* shared, void* shared_exemplar)
    : cells_(shared), created_ns_(detail::unix_now_ns()), exemplars_(1, shared_exemplar) {}

void Counter::inc_checked(double amount) {
  if (!valid_amount(amount)) {
    std::string message = "counter increment must be a finite number >= 0, got ";
    append_double(message, amount);
    message += " (counters only go up; use a Gauge for values that go down)";
    throw std::invalid_argument(message);
  }
  cells_->value.add(amount);
}

void Counter::inc(double amount, Exemplar exemplar) {
  if (!valid_amount(amount)) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  cells_->value.add(amount);
  exemplar.value = amount;
  if (exemplar.unix_nano == 0) exemplar.unix_nano = detail::unix_now_ns();
  exemplars_.set(0, std::move(exemplar));
}

void Counter::inc_checked(double amount, Exemplar exemplar) {
  check_exemplar_labels(exemplar.labels);
  if (!valid_amount(amount)) inc_checked(amount);  // throws with the amount's message
  inc(amount, std::move(exemplar));
}

double Counter::get() const noexcept {
  return cells_->get();
}

void Counter::reset() noexcept {
  std::lock_guard<std::mutex> lock(reset_mutex_);
  cells_->base.store(cells_->value.sum(), std::memory_order_relaxed);
  cells_->reset_unix_nano.store(detail::unix_now_ns(), std::memory_order_relaxed);
}

}  // namespace veda
