#include "veda/tracing/span_store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "veda/metrics/registry.hpp"

namespace veda {
namespace {

SpanData make_span(std::string name, std::int64_t start = 0) {
  SpanData span;
  span.trace_id = generate_trace_id();
  span.span_id = generate_span_id();
  span.name = std::move(name);
  span.start_time_unix_nano = start;
  span.end_time_unix_nano = start + 10;
  span.attributes.push_back({"k", AttributeValue{std::int64_t{3}}});
  span.attributes.push_back({"list", AttributeValue{std::vector<std::string>{"a", "b"}}});
  span.events.push_back({start + 1, "ev", {{"x", AttributeValue{true}}}, 0});
  return span;
}

double registry_dropped() {
  for (const auto& family : default_registry().collect()) {
    if (family.info.name == "pyveda_spans_dropped") return family.series.at(0).value;
  }
  return -1.0;
}

TEST(SpanStore, RejectsZeroCapacity) { EXPECT_THROW(SpanStore(0), std::invalid_argument); }

TEST(SpanStore, SnapshotIsOldestFirstAndKeepsFields) {
  SpanStore store(8);
  for (int i = 0; i < 5; ++i) store.add(make_span("s" + std::to_string(i), i * 100));
  const auto spans = store.snapshot();
  ASSERT_EQ(spans.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(spans[static_cast<std::size_t>(i)].name, "s" + std::to_string(i));
  EXPECT_EQ(std::get<std::int64_t>(spans[0].attributes[0].value), 3);
  EXPECT_EQ(std::get<std::vector<std::string>>(spans[0].attributes[1].value).size(), 2u);
  EXPECT_EQ(spans[0].events.at(0).name, "ev");
  EXPECT_EQ(store.size(), 5u);
  EXPECT_EQ(store.dropped(), 0u);
}

TEST(SpanStore, FullRingDropsTheOldestAndCountsIt) {
  const double before = registry_dropped();
  SpanStore store(3);
  for (int i = 0; i < 7; ++i) store.add(make_span("s" + std::to_string(i)));
  const auto spans = store.snapshot();
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0].name, "s4");
  EXPECT_EQ(spans[1].name, "s5");
  EXPECT_EQ(spans[2].name, "s6");
  EXPECT_EQ(store.dropped(), 4u);
  EXPECT_EQ(registry_dropped() - (before < 0 ? 0.0 : before), 4.0);
}

std::vector<std::string> names(const std::vector<std::shared_ptr<const SpanData>>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r->name);
  return out;
}

TEST(SpanStore, RecordsSinceReadsEachRecordOnce) {
  SpanStore store(4);
  std::uint64_t cursor = 0;
  EXPECT_TRUE(store.records_since(cursor, &cursor).empty());
  EXPECT_EQ(cursor, 0u);
  for (int i = 0; i < 3; ++i) store.add(make_span("s" + std::to_string(i)));
  EXPECT_EQ(names(store.records_since(cursor, &cursor)), (std::vector<std::string>{"s0", "s1", "s2"}));
  EXPECT_EQ(cursor, 3u);
  EXPECT_TRUE(store.records_since(cursor, &cursor).empty());
  // Wrap the ring: s3..s6 are added, s3 is evicted before it is read.
  for (int i = 3; i < 8; ++i) store.add(make_span("s" + std::to_string(i)));
  EXPECT_EQ(names(store.records_since(cursor, &cursor)), (std::vector<std::string>{"s4", "s5", "s6", "s7"}));
  EXPECT_EQ(cursor, 8u);
  EXPECT_EQ(store.added(), 8u);
  // The store stays readable as a whole.
  EXPECT_EQ(store.records().size(), 4u);
  // clear() and drain() keep the numbering: nothing read twice, nothing new lost.
  store.clear();
  store.add(make_span("s8"));
  EXPECT_EQ(names(store.records_since(cursor, &cursor)), (std::vector<std::string>{"s8"}));
  EXPECT_EQ(cursor, 9u);
  // A cursor from the future (another store's) reads nothing.
  EXPECT_TRUE(store.records_since(100, nullptr).empty());
}

TEST(SpanStore, RecordsSinceUnderConcurrentWriters) {
  SpanStore store(1 << 16);
  constexpr int kWriters = 4, kPerWriter = 2000;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&store, w] {
      for (int i = 0; i < kPerWriter; ++i) store.add(make_span("w" + std::to_string(w) + "-" + std::to_string(i)));
    });
  }
  std::set<std::string> seen;
  std::uint64_t cursor = 0;
  std::size_t reads = 0;
  auto read = [&] {
    for (const auto& r : store.records_since(cursor, &cursor)) {
      EXPECT_TRUE(seen.insert(r->name).second) << r->name << " read twice";
      ++reads;
    }
  };
  while (store.added() < static_cast<std::uint64_t>(kWriters * kPerWriter)) read();
  for (auto& t : writers) t.join();
  read();
  EXPECT_EQ(reads, static_cast<std::size_t>(kWriters * kPerWriter));
}

TEST(SpanStore, ClearAndDrain) {
  SpanStore store(2);
  for (int i = 0; i < 3; ++i) store.add(make_span("s" + std::to_string(i)));
  auto drained = store.drain();
  ASSERT_EQ(drained.size(), 2u);
  EXPECT_EQ(drained[0].name, "s1");
  EXPECT_EQ(drained[1].name, "s2");
  EXPECT_EQ(store.size(), 0u);
  store.add(make_span("a"));
  store.add(make_span("b"));
  store.add(make_span("c"));
  EXPECT_EQ(store.snapshot().front().name, "b");
  store.clear();
  EXPECT_TRUE(store.snapshot().empty());
  store.add(make_span("d"));
  EXPECT_EQ(store.snapshot().at(0).name, "d");
}

// 1..4 producers and a reader: every span lands once, or is counted as dropped.
TEST(SpanStore, ConcurrentProducersLoseNothingUncounted) {
  for (int threads = 1; threads <= 4; ++threads) {
    constexpr int kPerThread = 5000;
    for (std::size_t capacity : {std::size_t{64}, std::size_t{100000}}) {
      SpanStore store(capacity);
      std::vector<std::thread> workers;
      for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&store, t] {
          for (int i = 0; i < kPerThread; ++i) {
            SpanData span;
            span.span_id = generate_span_id();
            span.name = std::to_string(t) + ":" + std::to_string(i);
            store.add(std::move(span));
          }
        });
      }
      std::thread reader([&store] {
        for (int i = 0; i < 50; ++i) (void)store.snapshot().size();
      });
      for (auto& w : workers) w.join();
      reader.join();
      const auto spans = store.snapshot();
      const std::size_t total = static_cast<std::size_t>(threads) * kPerThread;
      EXPECT_EQ(spans.size() + store.dropped(), total);
      EXPECT_EQ(spans.size(), std::min(total, capacity));
      // Per producer, surviving spans keep their order.
      std::vector<int> last(static_cast<std::size_t>(threads), -1);
      std::set<std::string> names;
      for (const auto& s : spans) {
        const auto colon = s.name.find(':');
        const int t = std::stoi(s.name.substr(0, colon));
        const int i = std::stoi(s.name.substr(colon + 1));
        EXPECT_GT(i, last[static_cast<std::size_t>(t)]);
        last[static_cast<std::size_t>(t)] = i;
        names.insert(s.name);
      }
      EXPECT_EQ(names.size(), spans.size());
    }
  }
}

TEST(SpanStore, WaitForAddedWakesWhenTheSequenceIsReached) {
  SpanStore store(8);
  EXPECT_FALSE(store.wait_for_added(1, std::chrono::milliseconds(1)));  // nothing added: times out
  std::thread writer([&store] {
    for (int i = 0; i < 3; ++i) store.add(make_span("s" + std::to_string(i)));
  });
  EXPECT_TRUE(store.wait_for_added(3, std::chrono::minutes(5)));  // returns once the third is in
  writer.join();
  EXPECT_EQ(store.added(), 3u);
  EXPECT_TRUE(store.wait_for_added(2, std::chrono::nanoseconds(0)));  // already reached
}

TEST(SpanStore, WakeEndsEveryWaitEarly) {
  SpanStore store(8);
  std::vector<std::thread> waiters;
  std::atomic<int> woken{0};
  for (int i = 0; i < 2; ++i) {
    waiters.emplace_back([&] {
      if (!store.wait_for_added(100, std::chrono::minutes(5))) ++woken;
    });
  }
  // wake() until both have returned (a wake() before a thread waits does not count for it).
  while (woken.load() < 2) {
    store.wake();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto& w : waiters) w.join();
  EXPECT_EQ(woken.load(), 2);
}

TEST(SpanStore, WaitersForDifferentSequencesEachWakeAtTheirOwn) {
  SpanStore store(4);
  std::atomic<int> done{0};
  std::thread low([&] { EXPECT_TRUE(store.wait_for_added(1, std::chrono::minutes(5))); ++done; });
  std::thread high([&] { EXPECT_TRUE(store.wait_for_added(6, std::chrono::minutes(5))); ++done; });
  for (int i = 0; i < 6; ++i) {
    store.add(make_span("s"));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  low.join();
  high.join();
  EXPECT_EQ(done.load(), 2);
}

}  // namespace
}  // namespace veda
