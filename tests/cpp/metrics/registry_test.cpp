// Tests for veda::Family and veda::Registry: label handling, cardinality,
// get-or-create, name validation, clashes, unregister and collect order.
#include "veda/metrics/registry.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "veda/metrics/family.hpp"
#include "veda/metrics/names.hpp"

#include "support/test_support.hpp"

namespace {

using veda::CounterFamily;
using veda::FamilyInfo;
using veda::MetricType;
using veda::Registry;
using Pairs = std::vector<std::pair<std::string, std::string>>;
using Values = std::vector<std::string>;

using veda::test::contains;
using veda::test::message_of;

FamilyInfo info(std::string name, std::vector<std::string> labels, MetricType type = MetricType::counter) {
  FamilyInfo i;
  i.name = std::move(name);
  i.help = "help";
  i.label_names = std::move(labels);
  i.type = type;
  return i;
}

// ================================================================ Family

TEST(Family, LabelsByValuesReturnsTheSameSeries) {
  CounterFamily f(info("requests", {"method", "code"}));
  auto a = f.labels({"GET", "200"});
  a->inc();
  auto b = f.labels(Values{"GET", "200"});
  EXPECT_EQ(a, b);
  EXPECT_EQ(b->get(), 1.0);
  auto c = f.labels({"POST", "200"});
  EXPECT_NE(a, c);
  EXPECT_EQ(f.size(), 2u);
}

TEST(Family, GenerationMovesWhenASeriesStopsBeingExported) {
  CounterFamily f(info("requests", {"method"}));
  const auto g0 = f.generation();
  f.labels({"GET"});
  EXPECT_EQ(f.generation(), g0);  // adding a series leaves cached handles valid
  EXPECT_FALSE(f.remove({"PUT"}));
  EXPECT_EQ(f.generation(), g0);  // nothing removed
  EXPECT_TRUE(f.remove({"GET"}));
  const auto g1 = f.generation();
  EXPECT_NE(g1, g0);
  f.clear();
  EXPECT_NE(f.generation(), g1);
}

TEST(Family, LabelsByNamePairsInAnyOrder) {
  CounterFamily f(info("requests", {"method", "code"}));
  auto a = f.labels({"GET", "200"});
  auto b = f.labels(Pairs{{"code", "200"}, {"method", "GET"}});
  auto c = f.labels(Pairs{{"method", "GET"}, {"code", "200"}});
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  EXPECT_EQ(f.size(), 1u);
}

TEST(Family, LabelValuesAreNotConfusedByTheirBytes) {
  // A naive join ("a,b" + "c" vs "a" + "b,c") would collide.
  CounterFamily f(info("m", {"x", "y"}));
  auto a = f.labels({"a,b", "c"});
  auto b = f.labels({"a", "b,c"});
  auto c = f.labels({"1:a", ""});
  auto d = f.labels({"", "1:a"});
  EXPECT_NE(a, b);
  EXPECT_NE(c, d);
  EXPECT_EQ(f.size(), 4u);
}

TEST(Family, WrongLabelCountThrows) {
  CounterFamily f(info("requests", {"method", "code"}));
  const std::string few = message_of<std::invalid_argument>([&] { f.labels({"GET"}); });
  EXPECT_TRUE(contains(few, "expects 2 label value(s)")) << few;
  EXPECT_TRUE(contains(few, "'method', 'code'")) << few;
  EXPECT_TRUE(contains(few, "got 1")) << few;
  EXPECT_THROW(f.labels({"GET", "200", "x"}), std::invalid_argument);
  EXPECT_THROW(f.labels(Values{}), std::invalid_argument);
  EXPECT_THROW(f.labels(Pairs{{"method", "GET"}}), std::invalid_argument);
  EXPECT_THROW(f.remove({"GET"}), std::invalid_argument);

  CounterFamily plain(info("plain", {}));
  const std::string none = message_of<std::invalid_argument>([&] { plain.labels({"x"}); });
  EXPECT_TRUE(contains(none, "has no label names")) << none;
}

TEST(Family, UnknownOrRepeatedLabelNameThrows) {
  CounterFamily f(info("requests", {"method", "code"}));
  const std::string unknown =
      message_of<std::invalid_argument>([&] { f.labels(Pairs{{"method", "GET"}, {"status", "200"}}); });
  EXPECT_TRUE(contains(unknown, "no label named 'status'")) << unknown;
  EXPECT_TRUE(contains(unknown, "'method', 'code'")) << unknown;
  const std::string twice =
      message_of<std::invalid_argument>([&] { f.labels(Pairs{{"method", "GET"}, {"method", "PUT"}}); });
  EXPECT_TRUE(contains(twice, "given twice")) << twice;
  EXPECT_EQ(f.size(), 0u);
}

TEST(Family, RemoveAndClear) {
  CounterFamily f(info("requests", {"method"}));
  auto get = f.labels({"GET"});
  f.labels({"PUT"});
  f.labels({"POST"});
  get->inc(5);
  EXPECT_TRUE(f.remove({"PUT"}));
  EXPECT_FALSE(f.remove({"PUT"}));
  EXPECT_FALSE(f.remove({"DELETE"}));
  EXPECT_EQ(f.size(), 2u);
  // Remaining series keep their identity and order after a removal in the middle.
  EXPECT_EQ(f.labels({"GET"}), get);
  std::vector<std::string> order;
  f.for_each([&](const Values& v, const veda::Counter&) { order.push_back(v[0]); });
  EXPECT_EQ(order, (Values{"GET", "POST"}));
  // A removed series' handle still works; asking again creates a fresh series.
  EXPECT_TRUE(f.remove({"GET"}));
  get->inc();
  EXPECT_EQ(get->get(), 6.0);
  auto fresh = f.labels({"GET"});
  EXPECT_NE(fresh, get);
  EXPECT_EQ(fresh->get(), 0.0);

  f.clear();
  EXPECT_EQ(f.size(), 0u);
  f.labels({"GET"});
  EXPECT_EQ(f.size(), 1u);

  // An unlabelled family keeps its one series through clear().
  CounterFamily plain(info("plain", {}));
  plain.unlabelled().inc();
  plain.clear();
  EXPECT_EQ(plain.size(), 1u);
  EXPECT_EQ(plain.unlabelled().get(), 1.0);
  // ...and its one series cannot be removed (the metric would vanish silently).
  const std::string msg = message_of<std::invalid_argument>([&] { plain.remove({}); });
  EXPECT_TRUE(contains(msg, "cannot be removed")) << msg;
  EXPECT_EQ(plain.size(), 1u);
}

// remove() leaves a hole rather than shifting the series after it; the holes
// are squeezed out later. Through many removals and re-adds the survivors keep
// their creation order, their identity and their lookups.
TEST(Family, ManyRemovalsKeepOrderAndIdentity) {
  CounterFamily f(info("requests", {"user"}), 1000);
  std::vector<std::shared_ptr<veda::Counter>> handles;
  for (int i = 0; i < 1000; ++i) handles.push_back(f.labels({std::to_string(i)}));
  // Remove every series but the multiples of 7, in an order that crosses the
  // compaction point several times.
  for (int i = 999; i >= 0; --i) {
    if (i % 7 != 0) {
      EXPECT_TRUE(f.remove({std::to_string(i)}));
    }
  }
  EXPECT_EQ(f.size(), 143u);
  std::vector<std::string> order;
  f.for_each([&](const Values& v, const veda::Counter&) { order.push_back(v[0]); });
  ASSERT_EQ(order.size(), 143u);
  for (std::size_t k = 0; k < order.size(); ++k) EXPECT_EQ(order[k], std::to_string(7 * k));
  for (int i = 0; i < 1000; i += 7) EXPECT_EQ(f.labels({std::to_string(i)}), handles[static_cast<std::size_t>(i)]);
  // Freed room counts against the cap again: 857 new series fit, one more does not.
  for (int i = 0; i < 857; ++i) f.labels({"new" + std::to_string(i)});
  EXPECT_EQ(f.size(), 1000u);
  EXPECT_THROW(f.labels({"one-too-many"}), std::length_error);
  order.clear();
  f.for_each([&](const Values& v, const veda::Counter&) { order.push_back(v[0]); });
  EXPECT_EQ(order.front(), "0");
  EXPECT_EQ(order[143], "new0");
  EXPECT_EQ(order.back(), "new856");
}

TEST(Family, CardinalityCap) {
  CounterFamily f(info("requests", {"user"}), 3);
  EXPECT_EQ(f.max_series(), 3u);
  f.labels({"a"});
  f.labels({"b"});
  f.labels({"c"});
  const std::string msg = message_of<std::length_error>([&] { f.labels({"d"}); });
  EXPECT_TRUE(contains(msg, "'requests'")) << msg;
  EXPECT_TRUE(contains(msg, "3 label sets")) << msg;
  EXPECT_EQ(f.size(), 3u);
  // Existing series are still reachable at the cap, and removing one frees a place.
  EXPECT_NO_THROW(f.labels({"a"}));
  EXPECT_TRUE(f.remove({"b"}));
  EXPECT_NO_THROW(f.labels({"d"}));
  EXPECT_THROW(f.labels({"e"}), std::length_error);
  EXPECT_EQ(CounterFamily::kDefaultMaxSeries, 100000u);
}

TEST(Family, Unlabelled) {
  CounterFamily plain(info("plain", {}));
  EXPECT_EQ(plain.size(), 1u);
  plain.unlabelled().inc(2);
  EXPECT_EQ(plain.labels(Values{})->get(), 2.0);

  CounterFamily labelled(info("requests", {"method", "code"}));
  const std::string msg = message_of<std::invalid_argument>([&] { labelled.unlabelled(); });
  EXPECT_TRUE(contains(msg, "'method', 'code'")) << msg;
  EXPECT_TRUE(contains(msg, ".labels(")) << msg;

  veda::HistogramFamily h(info("latency", {"op"}, MetricType::histogram));
  EXPECT_THROW(h.unlabelled(), std::invalid_argument);
}

TEST(Family, HistogramSeriesUseTheFamilyScale) {
  FamilyInfo i = info("latency", {"op"}, MetricType::histogram);
  i.scale = 3;
  veda::HistogramFamily f(i);
  EXPECT_EQ(f.labels({"read"})->scale(), 3);
}

TEST(Family, ConcurrentLabelsCreateOneSeriesPerKey) {
  CounterFamily f(info("requests", {"worker"}));
  constexpr int kThreads = 8;
  constexpr int kKeys = 50;
  constexpr int kRounds = 200;
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&f] {
      for (int r = 0; r < kRounds; ++r) {
        for (int k = 0; k < kKeys; ++k) f.labels({std::to_string(k)})->inc();
      }
    });
  }
  for (std::thread& th : pool) th.join();
  EXPECT_EQ(f.size(), static_cast<std::size_t>(kKeys));
  for (int k = 0; k < kKeys; ++k) EXPECT_EQ(f.labels({std::to_string(k)})->get(), kThreads * kRounds);
}

// ================================================================ Registry

TEST(Registry, GetOrCreateReturnsTheSameFamily) {
  Registry r;
  auto a = r.counter("requests", "Requests served.", {"method"});
  auto b = r.counter("requests", "Requests served.", {"method"});
  EXPECT_EQ(a, b);
  a->labels({"GET"})->inc();
  EXPECT_EQ(b->labels({"GET"})->get(), 1.0);
  auto g1 = r.gauge("queue", "Queue length.");
  auto g2 = r.gauge("queue", "Queue length.");
  EXPECT_EQ(g1, g2);
  auto h1 = r.histogram("latency", "Latency.", {}, 5);
  auto h2 = r.histogram("latency", "Latency.", {}, 5);
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(h1->unlabelled().scale(), 5);
  EXPECT_EQ(r.size(), 3u);
}

TEST(Registry, ConcurrentGetOrCreate) {
  Registry r;
  std::vector<std::shared_ptr<CounterFamily>> got(8);
  std::vector<std::thread> pool;
  for (int t = 0; t < 8; ++t) {
    pool.emplace_back([&, t] {
      got[static_cast<std::size_t>(t)] = r.counter("shared", "h");
      got[static_cast<std::size_t>(t)]->unlabelled().inc();
    });
  }
  for (std::thread& th : pool) th.join();
  for (const auto& f : got) EXPECT_EQ(f, got[0]);
  EXPECT_EQ(got[0]->unlabelled().get(), 8.0);
  EXPECT_EQ(r.size(), 1u);
}

TEST(Registry, MismatchThrows) {
  Registry r;
  r.counter("requests", "Requests.", {"method"});
  const std::string type = message_of<std::invalid_argument>([&] { r.gauge("requests", "Requests.", {"method"}); });
  EXPECT_TRUE(contains(type, "already registered as a counter")) << type;
  EXPECT_TRUE(contains(type, "as a gauge")) << type;
  const std::string labels = message_of<std::invalid_argument>([&] { r.counter("requests", "Requests.", {"code"}); });
  EXPECT_TRUE(contains(labels, "'method'")) << labels;
  EXPECT_TRUE(contains(labels, "'code'")) << labels;
  EXPECT_THROW(r.counter("requests", "Requests.", {}), std::invalid_argument);
  EXPECT_THROW(r.counter("requests", "Requests.", {"method", "code"}), std::invalid_argument);
  const std::string help = message_of<std::invalid_argument>([&] { r.counter("requests", "Other.", {"method"}); });
  EXPECT_TRUE(contains(help, "help 'Requests.'")) << help;
  EXPECT_TRUE(contains(help, "help 'Other.'")) << help;

  r.histogram("latency", "Latency.", {}, 6);
  const std::string scale = message_of<std::invalid_argument>([&] { r.histogram("latency", "Latency.", {}, 4); });
  EXPECT_TRUE(contains(scale, "scale 6")) << scale;
  EXPECT_THROW(r.histogram("bad_scale", "h", {}, 9), std::invalid_argument);
  EXPECT_THROW(r.histogram("bad_scale", "h", {}, -1), std::invalid_argument);
  EXPECT_EQ(r.size(), 2u);
}

TEST(Registry, CounterTotalSuffixIsStripped) {
  Registry r;
  auto a = r.counter("jobs_total", "Jobs.");
  EXPECT_EQ(a->info().name, "jobs");
  auto b = r.counter("jobs", "Jobs.");
  EXPECT_EQ(a, b);
  EXPECT_EQ(r.names(), (Values{"jobs"}));
  EXPECT_THROW(r.counter("_total", "h"), std::invalid_argument);
  // Gauges keep the suffix as written.
  EXPECT_EQ(r.gauge("temp_total", "h")->info().name, "temp_total");
}

TEST(Registry, ExposedNameClashThrows) {
  Registry r;
  r.counter("x", "h");
  const std::string gauge_total = message_of<std::invalid_argument>([&] { r.gauge("x_total", "h"); });
  EXPECT_TRUE(contains(gauge_total, "'x_total'")) << gauge_total;
  EXPECT_TRUE(contains(gauge_total, "metric 'x'")) << gauge_total;
  EXPECT_THROW(r.gauge("x_created", "h"), std::invalid_argument);

  r.histogram("h", "h");
  const std::string sum = message_of<std::invalid_argument>([&] { r.gauge("h_sum", "h"); });
  EXPECT_TRUE(contains(sum, "'h_sum'")) << sum;
  EXPECT_THROW(r.gauge("h_count", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("h_count", "h"), std::invalid_argument);

  // The other way round: a histogram whose _sum is an existing gauge.
  r.gauge("y_sum", "h");
  EXPECT_THROW(r.histogram("y", "h"), std::invalid_argument);
  // A counter whose _total is an existing gauge.
  r.gauge("z_total", "h");
  EXPECT_THROW(r.counter("z", "h"), std::invalid_argument);
  EXPECT_EQ(r.names(), (Values{"x", "h", "y_sum", "z_total"}));
}

TEST(Registry, InvalidMetricNames) {
  Registry r;
  for (const char* name : {"", "1abc", "a-b", "a b", "é", "a.b"}) {
    EXPECT_THROW(r.counter(name, "h"), std::invalid_argument) << name;
    EXPECT_THROW(r.gauge(name, "h"), std::invalid_argument) << name;
    EXPECT_THROW(r.histogram(name, "h"), std::invalid_argument) << name;
  }
  const std::string msg = message_of<std::invalid_argument>([&] { r.gauge("a-b", "h"); });
  EXPECT_TRUE(contains(msg, "'a-b'")) << msg;
  EXPECT_TRUE(contains(msg, "[a-zA-Z_:][a-zA-Z0-9_:]*")) << msg;
  EXPECT_TRUE(contains(message_of<std::invalid_argument>([&] { r.gauge("", "h"); }), "empty"));
  for (const char* name : {"a", "_a", ":a", "a:b_c9", "A1"}) EXPECT_NO_THROW(r.gauge(name, "h")) << name;
  EXPECT_EQ(r.size(), 5u);

  EXPECT_TRUE(veda::is_valid_metric_name("ns:sub_name1"));
  EXPECT_FALSE(veda::is_valid_metric_name("9"));
}

TEST(Registry, InvalidLabelNames) {
  Registry r;
  for (const char* label : {"", "__x", "1abc", "a-b", "a:b"}) {
    EXPECT_THROW(r.counter("m", "h", {label}), std::invalid_argument) << label;
  }
  const std::string reserved = message_of<std::invalid_argument>([&] { r.gauge("m", "h", {"__x"}); });
  EXPECT_TRUE(contains(reserved, "reserved")) << reserved;
  const std::string bad = message_of<std::invalid_argument>([&] { r.gauge("m", "h", {"a-b"}); });
  EXPECT_TRUE(contains(bad, "[a-zA-Z_][a-zA-Z0-9_]*")) << bad;
  const std::string dup = message_of<std::invalid_argument>([&] { r.gauge("m", "h", {"a", "b", "a"}); });
  EXPECT_TRUE(contains(dup, "twice")) << dup;
  // Histograms are exposed with "quantile" (and, as buckets, "le") labels.
  const std::string quantile = message_of<std::invalid_argument>([&] { r.histogram("m", "h", {"quantile"}); });
  EXPECT_TRUE(contains(quantile, "reserved for histograms")) << quantile;
  EXPECT_THROW(r.histogram("m", "h", {"op", "le"}), std::invalid_argument);
  // ...which are fine on other types.
  EXPECT_NO_THROW(r.gauge("g", "h", {"quantile", "le", "_x", "x9"}));
  EXPECT_EQ(r.size(), 1u);
  EXPECT_TRUE(veda::is_valid_label_name("_x"));
  EXPECT_FALSE(veda::is_valid_label_name("__"));
}

TEST(Registry, Unregister) {
  Registry r;
  auto c = r.counter("x", "h");
  r.gauge("g", "h");
  EXPECT_TRUE(r.unregister("x"));
  EXPECT_FALSE(r.unregister("x"));
  r.counter("y_total", "h");
  EXPECT_TRUE(r.unregister("y_total"));  // a counter's exposed name works too
  EXPECT_FALSE(r.unregister("y"));
  EXPECT_FALSE(r.unregister("missing"));
  EXPECT_EQ(r.names(), (Values{"g"}));
  // The handle keeps working, but is no longer collected.
  c->unlabelled().inc();
  EXPECT_EQ(c->unlabelled().get(), 1.0);
  EXPECT_EQ(r.collect().size(), 1u);
  // The name and its exposed samples are free again, for any type.
  EXPECT_NO_THROW(r.gauge("x_total", "h"));
  EXPECT_NO_THROW(r.gauge("x", "other help"));
  auto again = r.counter("c", "h");
  EXPECT_NE(again, c);

  r.clear();
  EXPECT_EQ(r.size(), 0u);
  EXPECT_TRUE(r.names().empty());
  EXPECT_NO_THROW(r.counter("g", "h"));
}

TEST(Registry, CollectInRegistrationAndCreationOrder) {
  Registry r;
  auto b = r.counter("b_requests", "B.", {"code"});
  auto a = r.gauge("a_temp", "A.");
  auto h = r.histogram("c_latency", "C.", {"op"});
  b->labels({"500"})->inc(2);
  b->labels({"200"})->inc(3);
  a->unlabelled().set(21.5);
  h->labels({"write"})->observe(4.0);
  h->labels({"read"})->observe(1.0);
  h->labels({"read"})->observe(3.0);

  const std::vector<veda::FamilySnapshot> snap = r.collect();
  ASSERT_EQ(snap.size(), 3u);
  EXPECT_EQ(snap[0].info.name, "b_requests");
  EXPECT_EQ(snap[0].info.type, MetricType::counter);
  EXPECT_EQ(snap[0].info.help, "B.");
  EXPECT_EQ(snap[0].info.label_names, (Values{"code"}));
  ASSERT_EQ(snap[0].series.size(), 2u);
  EXPECT_EQ(snap[0].series[0].label_values, (Values{"500"}));
  EXPECT_EQ(snap[0].series[0].value, 2.0);
  EXPECT_EQ(snap[0].series[1].label_values, (Values{"200"}));
  EXPECT_EQ(snap[0].series[1].value, 3.0);
  EXPECT_EQ(snap[0].series[1].start_unix_nano, b->labels({"200"})->created_unix_nano());

  EXPECT_EQ(snap[1].info.name, "a_temp");
  ASSERT_EQ(snap[1].series.size(), 1u);
  EXPECT_TRUE(snap[1].series[0].label_values.empty());
  EXPECT_EQ(snap[1].series[0].value, 21.5);

  EXPECT_EQ(snap[2].info.name, "c_latency");
  EXPECT_EQ(snap[2].info.scale, veda::Histogram::kDefaultScale);
  ASSERT_EQ(snap[2].series.size(), 2u);
  EXPECT_EQ(snap[2].series[0].label_values, (Values{"write"}));
  EXPECT_EQ(snap[2].series[0].histogram.count, 1u);
  EXPECT_EQ(snap[2].series[1].histogram.count, 2u);
  EXPECT_EQ(snap[2].series[1].histogram.sum, 4.0);
  EXPECT_EQ(snap[2].series[1].histogram.max, 3.0);

  EXPECT_EQ(r.names(), (Values{"b_requests", "a_temp", "c_latency"}));
  EXPECT_STREQ(veda::to_string(MetricType::histogram), "histogram");
}

TEST(Registry, CollectWhileRecordingAndRegistering) {
  Registry r;
  auto f = r.counter("busy", "h", {"k"});
  constexpr int kThreads = 3;
  constexpr int kIterations = 2000;
  std::atomic<int> done{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < kIterations; ++i) {
        f->labels({std::to_string(i % 100)})->inc();
        r.gauge("g" + std::to_string(t) + "_" + std::to_string(i % 20), "h");
      }
      done.fetch_add(1);
    });
  }
  int rounds = 0;
  do {
    const auto snap = r.collect();
    ASSERT_FALSE(snap.empty());
    EXPECT_EQ(snap[0].info.name, "busy");
    EXPECT_FALSE(r.render_prometheus().empty());
    ++rounds;
  } while (done.load() < kThreads || rounds < 5);
  for (std::thread& th : pool) th.join();
  EXPECT_EQ(r.size(), 1u + kThreads * 20u);
  double total = 0;
  f->for_each([&](const Values&, const veda::Counter& c) { total += c.get(); });
  EXPECT_EQ(total, static_cast<double>(kThreads) * kIterations);
}

TEST(Registry, DefaultRegistryIsOneObject) {
  veda::Registry& a = veda::default_registry();
  veda::Registry& b = veda::default_registry();
  EXPECT_EQ(&a, &b);
  auto f = a.counter("veda_registry_test_default", "h");
  EXPECT_EQ(b.counter("veda_registry_test_default", "h"), f);
  EXPECT_TRUE(a.unregister("veda_registry_test_default"));
}

}  // namespace
