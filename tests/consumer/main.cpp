// Records one metric of each kind in the default registry, runs tasks on a
// Runtime with telemetry inside a span, and prints the Prometheus and
// OpenMetrics expositions and the span: the smallest useful program against
// pyveda::core.
#include <atomic>
#include <iostream>

#include <memory>

#include <veda/metrics.hpp>
#include <veda/runtime/runtime.hpp>
#include <veda/tracing/otlp.hpp>
#include <veda/tracing/span.hpp>
#include <veda/tracing/span_store.hpp>

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
  auto spans = std::make_shared<veda::SpanStore>(16);
  veda::Span batch = veda::Span::start("batch", veda::SpanKind::kInternal, nullptr, veda::unix_nano_now(), spans);
  batch.set_attribute("tasks", std::int64_t{1000});
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
  batch.end(veda::unix_nano_now());

  std::cout << registry.render_prometheus();
  std::cout << registry.render_openmetrics();
  const auto records = spans->records();
  const std::string otlp = veda::encode_otlp_trace_records({{"service.name", std::string("consumer")}}, "consumer",
                                                           "1", records);
  std::cout << "spans " << records.size() << " " << records.at(0)->name << " " << veda::to_hex(records.at(0)->trace_id).size()
            << " otlp_bytes_nonzero " << (otlp.size() > 40) << "\n";
  return 0;
}
