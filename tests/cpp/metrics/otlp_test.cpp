#include "veda/metrics/otlp.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/test_support.hpp"

#include "detail/protobuf.hpp"
#include "veda/telemetry/catalogue.hpp"
#include "veda/telemetry/telemetry.hpp"

namespace veda {
namespace {

using test::bytes;

TEST(ProtobufWriter, Sint32IsZigzagAndZeroIsLeftOut) {
  std::string out;
  detail::pb::put_sint32(out, 1, 0);
  EXPECT_EQ(out, "");
  detail::pb::put_sint32(out, 1, -3);  // zigzag(-3) = 5
  detail::pb::put_sint32(out, 1, 2);   // zigzag(2) = 4
  detail::pb::put_sint32(out, 1, -2147483647 - 1);
  EXPECT_EQ(out, bytes({0x08, 5, 0x08, 4, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}));
}

TEST(OtlpMetrics, AnEmptyFamilyIsLeftOut) {
  FamilySnapshot empty;
  empty.info.name = "x";
  empty.info.type = MetricType::gauge;
  EXPECT_EQ(encode_otlp_metrics({empty}, {}, "", "", 1), encode_otlp_metrics({}, {}, "", "", 1));
}

TEST(OtlpMetrics, GaugeFieldsInFieldOrder) {
  FamilySnapshot g;
  g.info.name = "g";
  g.info.type = MetricType::gauge;
  g.info.label_names = {"k"};
  SeriesSnapshot s;
  s.label_values = {"v"};
  s.value = 0.0;  // in the value oneof: still written
  g.series.push_back(s);
  const std::string out = encode_otlp_metrics({g}, {}, "", "", 7);
  // point{3: time fixed64 7, 4: as_double 0.0, 7: kv{1: "k", 2: any{1: "v"}}}
  std::string point = bytes({0x19, 7, 0, 0, 0, 0, 0, 0, 0, 0x21, 0, 0, 0, 0, 0, 0, 0, 0});
  point += bytes({0x3A, 8, 0x0A, 1, 'k', 0x12, 3, 0x0A, 1, 'v'});
  const std::string gauge = bytes({0x0A, static_cast<int>(point.size())}) + point;
  const std::string metric = bytes({0x0A, 1, 'g', 0x2A, static_cast<int>(gauge.size())}) + gauge;
  const std::string scope_metrics = bytes({0x0A, 0x00, 0x12, static_cast<int>(metric.size())}) + metric;
  const std::string rm = bytes({0x0A, 0x00, 0x12, static_cast<int>(scope_metrics.size())}) + scope_metrics;
  EXPECT_EQ(out, bytes({0x0A, static_cast<int>(rm.size())}) + rm);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(OtlpMetrics, RuntimeCountsAreIntsAndTheGpuIndexAnIntAttribute) {
  FamilySnapshot executed;
  executed.info = family_info(runtime_metrics::tasks_executed);
  SeriesSnapshot s;
  s.value = 200;
  s.start_unix_nano = 5;
  executed.series.push_back(s);
  const std::string out = encode_otlp_metrics({executed}, {}, "", "", 7);
  // point{2: start 5, 3: time 7, 6: as_int 200}: no as_double (field 4, tag 0x21).
  EXPECT_TRUE(contains(out, bytes({0x11, 5, 0, 0, 0, 0, 0, 0, 0, 0x19, 7, 0, 0, 0, 0, 0, 0, 0,
                                   0x31, 200, 0, 0, 0, 0, 0, 0, 0})));
  EXPECT_TRUE(contains(out, "pyveda.tasks.executed"));

  FamilySnapshot util;
  util.info = family_info(runtime_metrics::gpu_utilization);
  util.info.label_names = {"gpu", "name"};
  SeriesSnapshot d;
  d.label_values = {"3", "H200"};
  d.value = 75;
  util.series.push_back(d);
  const std::string gpu = encode_otlp_metrics({util}, {}, "", "", 7);
  // kv{1: "gpu", 2: any{3: int 3}} then kv{1: "name", 2: any{1: "H200"}}.
  EXPECT_TRUE(contains(gpu, bytes({0x3A, 9, 0x0A, 3, 'g', 'p', 'u', 0x12, 2, 0x18, 3})));
  EXPECT_TRUE(contains(gpu, bytes({0x3A, 14, 0x0A, 4, 'n', 'a', 'm', 'e', 0x12, 6, 0x0A, 4, 'H', '2', '0', '0'})));
}

TEST(OtlpMetrics, RuntimeHistogramsAlsoGoOutAsASummaryWithTheTextQuantiles) {
  MetricsSnapshot snap;
  snap.latency_count = 0;
  std::vector<FamilySnapshot> families = to_families(snap);
  std::vector<FamilySnapshot> latency;
  for (auto& f : families) {
    if (f.info.name == runtime_metrics::latency_ms.name) latency.push_back(f);
  }
  ASSERT_EQ(latency.size(), 1u);
  // A snapshot without buckets: the Summary alone.
  const std::string history = encode_otlp_metrics(latency, {}, "", "", 7);
  EXPECT_TRUE(contains(history, "pyveda.task.latency.summary"));
  EXPECT_FALSE(contains(history, bytes({0x52})));  // no exponential_histogram (field 10)

  HistogramSnapshot h;
  h.scale = 0;
  h.offset = 0;
  h.counts = {0, 4};
  h.count = 4;
  h.sum = 10;
  h.min = 2;
  h.max = 3;
  latency.front().series.front().quantiles.clear();
  latency.front().series.front().histogram = h;
  latency.front().series.front().no_buckets = false;
  const std::string both = encode_otlp_metrics(latency, {}, "", "", 7);
  const auto summary_at = both.find("pyveda.task.latency.summary");
  ASSERT_NE(summary_at, std::string::npos);
  EXPECT_NE(both.find("pyveda.task.latency", summary_at + 1), std::string::npos);  // then the histogram
  // Four quantiles (0.5, 0.9, 0.95, 0.99): four ValueAtQuantile messages (field 6, tag 0x32).
  std::size_t quantiles = 0;
  for (auto at = both.find(bytes({0x32, 18, 0x09})); at != std::string::npos; at = both.find(bytes({0x32, 18, 0x09}), at + 1)) {
    ++quantiles;
  }
  EXPECT_EQ(quantiles, 4u);
}

TEST(OtlpMetrics, AHistogramWithClassicBucketsIsAnExplicitBucketHistogram) {
  FamilySnapshot f;
  f.info.name = "h";
  f.info.type = MetricType::histogram;
  f.info.buckets = {1.0, 10.0};
  SeriesSnapshot s;
  s.no_buckets = false;
  s.histogram.count = 3;
  s.histogram.sum = 25.5;
  s.histogram.min = 0.5;
  s.histogram.max = 20.0;
  s.histogram.bounds = {1.0, 10.0};
  s.histogram.bound_counts = {1, 1, 1};
  f.series.push_back(s);
  const std::string out = encode_otlp_metrics({f}, {}, "", "", 7);
  // point{2: start 7, 3: time 7, 4: count 3, 5: sum, 6: packed counts, 7: packed bounds, 11: min, 12: max}
  std::string point = bytes({0x11, 7, 0, 0, 0, 0, 0, 0, 0, 0x19, 7, 0, 0, 0, 0, 0, 0, 0, 0x21, 3, 0, 0, 0, 0, 0, 0, 0});
  detail::pb::put_double(point, 5, 25.5);
  point += bytes({0x32, 24, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0});
  point += bytes({0x3A, 16});
  detail::pb::put_double_bits(point, 1.0);
  detail::pb::put_double_bits(point, 10.0);
  detail::pb::put_double(point, 11, 0.5);
  detail::pb::put_double(point, 12, 20.0);
  std::string histogram = bytes({0x0A, static_cast<int>(point.size())}) + point + bytes({0x10, 2});  // cumulative
  const std::string metric = bytes({0x0A, 1, 'h', 0x4A, static_cast<int>(histogram.size())}) + histogram;
  EXPECT_TRUE(contains(out, metric));
  EXPECT_FALSE(contains(out, bytes({0x52})));  // no exponential_histogram (field 10)
}

TEST(OtlpMetrics, AnUpDownGaugeIsACumulativeSumThatIsNotMonotonic) {
  FamilySnapshot g;
  g.info.name = "u";
  g.info.type = MetricType::gauge;
  g.info.up_down = true;
  SeriesSnapshot s;
  s.value = -2.0;
  s.start_unix_nano = 5;
  g.series.push_back(s);
  const std::string out = encode_otlp_metrics({g}, {}, "", "", 7);
  std::string point = bytes({0x11, 5, 0, 0, 0, 0, 0, 0, 0, 0x19, 7, 0, 0, 0, 0, 0, 0, 0});
  detail::pb::put_double(point, 4, -2.0);
  const std::string sum = bytes({0x0A, static_cast<int>(point.size())}) + point + bytes({0x10, 2});  // no is_monotonic
  EXPECT_TRUE(contains(out, bytes({0x0A, 1, 'u', 0x3A, static_cast<int>(sum.size())}) + sum));
}

}  // namespace
}  // namespace veda
