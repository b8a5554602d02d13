// Records one metric of each kind in the default registry, runs tasks on a
// Runtime with telemetry, and prints the Prometheus exposition: the smallest
// useful program against pyveda::core.
#include <atomic>
#include <iostream>

#include <veda/metrics.hpp>
#include <veda/runtime/runtime.hpp>

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

  // 1,000 native tasks, every 100th failing, waited for by the caller helping.
  veda::RuntimeOptions options;
  options.num_threads = 2;
  options.enable_telemetry = true;
  veda::Runtime runtime(options);
  std::atomic<int> done{0};
  for (int i = 0; i < 1000; ++i) {
    runtime.scheduler().submit([i, &done] {
      done.fetch_add(1);
      return i % 100 != 0;
    });
  }
  runtime.scheduler().help_until([&] { return done.load() == 1000; });
  runtime.shutdown();

  std::cout << registry.render_prometheus();
  return 0;
}
