// Records one metric of each kind in the default registry and prints the
// Prometheus exposition: the smallest useful program against pyveda::core.
#include <iostream>

#include <veda/metrics.hpp>

int main() {
  veda::Registry& registry = veda::default_registry();

  auto requests = registry.counter("consumer_requests_total", "Requests handled.", {"method"});
  requests->labels({"GET"})->inc(3);
  requests->labels({"POST"})->inc();

  auto queue = registry.gauge("consumer_queue_length", "Items waiting.");
  queue->unlabelled().set(7);
  queue->unlabelled().dec(2);

  auto latency = registry.histogram("consumer_latency_seconds", "Request latency.");
  for (int i = 0; i < 10; ++i) latency->unlabelled().observe(0.25);

  std::cout << registry.render_prometheus();
  return 0;
}
