// Tests for the Prometheus protobuf exposition (veda/metrics/protobuf_format.hpp),
// read back field by field with the wire-format reader of the tests.
#include "veda/metrics/protobuf_format.hpp"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

#include "support/proto_reader.hpp"
#include "support/test_support.hpp"
#include "veda/metrics/registry.hpp"

namespace veda {
namespace {

using test::parse_proto;
using test::ProtoMessage;
using test::split_delimited;

using test::kNoLabels;

std::vector<ProtoMessage> families_of(const Registry& registry) {
  std::vector<ProtoMessage> out;
  for (const std::string& message : split_delimited(registry.encode_protobuf())) out.push_back(parse_proto(message));
  return out;
}

TEST(ProtobufExposition, CounterGaugeAndLabels) {
  Registry registry;
  registry.counter("jobs", "Jobs done.", {"queue"})->labels({"fast"})->inc(3);
  registry.gauge("temperature", "", {})->labels(kNoLabels)->set(-1.5);
  const auto families = families_of(registry);
  ASSERT_EQ(families.size(), 2u);

  const ProtoMessage& jobs = families[0];
  EXPECT_EQ(jobs.at(1)[0].bytes, "jobs_total");  // the sample name, as in the text formats
  EXPECT_EQ(jobs.at(2)[0].bytes, "Jobs done.");
  EXPECT_EQ(jobs.at(3)[0].number, 0u);  // COUNTER
  ASSERT_EQ(jobs.at(4).size(), 1u);
  const ProtoMessage metric = parse_proto(jobs.at(4)[0].bytes);
  const ProtoMessage label = parse_proto(metric.at(1)[0].bytes);
  EXPECT_EQ(label.at(1)[0].bytes, "queue");
  EXPECT_EQ(label.at(2)[0].bytes, "fast");
  const ProtoMessage counter = parse_proto(metric.at(3)[0].bytes);
  EXPECT_EQ(counter.at(1)[0].as_double(), 3.0);
  const ProtoMessage created = parse_proto(counter.at(3)[0].bytes);  // google.protobuf.Timestamp
  EXPECT_GT(created.at(1)[0].number, 1600000000u);

  const ProtoMessage& temperature = families[1];
  EXPECT_EQ(temperature.at(1)[0].bytes, "temperature");
  EXPECT_EQ(temperature.count(2), 0u);  // no help: left out
  EXPECT_EQ(temperature.at(3)[0].number, 1u);  // GAUGE
  const ProtoMessage gauge = parse_proto(parse_proto(temperature.at(4)[0].bytes).at(2)[0].bytes);
  EXPECT_EQ(gauge.at(1)[0].as_double(), -1.5);
}

// Reads (offset, length) of every positive span and the deltas of a Histogram message.
struct Native {
  std::vector<std::pair<std::int64_t, std::uint64_t>> spans;
  std::vector<std::int64_t> deltas;
};
Native native_of(const ProtoMessage& hist) {
  Native n;
  if (hist.count(12)) {
    for (const auto& f : hist.at(12)) {
      const ProtoMessage span = parse_proto(f.bytes);
      n.spans.emplace_back(span.at(1)[0].as_sint(), span.at(2)[0].number);
    }
  }
  if (hist.count(13)) {
    for (const auto& f : hist.at(13)) n.deltas.push_back(f.as_sint());
  }
  return n;
}

TEST(ProtobufExposition, NativeHistogramSpansAndDeltas) {
  Registry registry;
  Histogram& h = *registry.histogram("size", "Sizes.", {}, 0)->labels(kNoLabels);
  // Scale 0: Prometheus bucket i is (2^(i-1), 2^i]: 1 -> 0, 2 -> 1, 16 -> 4, 64 -> 6,
  // 1024 -> 10; 0 -> the zero bucket.
  for (const double v : {1.0, 2.0, 2.0, 16.0, 64.0, 1024.0, 0.0}) h.observe(v);
  const auto families = families_of(registry);
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].at(3)[0].number, 4u);  // HISTOGRAM
  const ProtoMessage hist = parse_proto(parse_proto(families[0].at(4)[0].bytes).at(7)[0].bytes);
  EXPECT_EQ(hist.at(1)[0].number, 7u);           // sample_count
  EXPECT_EQ(hist.at(2)[0].as_double(), 1109.0);  // sample_sum
  EXPECT_EQ(hist.at(5)[0].as_sint(), 0);         // schema, written although 0
  EXPECT_EQ(hist.at(6)[0].as_double(), DBL_MIN); // zero_threshold
  EXPECT_EQ(hist.at(7)[0].number, 1u);           // zero_count
  // Gaps of up to two empty buckets stay inside a span (0..6); three (7..9) start a new one.
  const Native n = native_of(hist);
  EXPECT_EQ(n.spans, (std::vector<std::pair<std::int64_t, std::uint64_t>>{{0, 7}, {3, 1}}));
  // counts 1, 2, 0, 0, 1, 0, 1 | 1
  EXPECT_EQ(n.deltas, (std::vector<std::int64_t>{1, 1, -2, 0, 1, -1, 1, 0}));
  EXPECT_EQ(hist.count(15), 1u);  // created_timestamp
}

TEST(ProtobufExposition, ClassicBucketsBesideTheNativeOnes) {
  Registry registry;
  Histogram& h = *registry.histogram("rtt", "Round trips.", {}, 3, {1, 5, 10})->labels(kNoLabels);
  for (const double v : {0.5, 1.0, 7.0, 20.0}) h.observe(v);
  const auto families = families_of(registry);
  const ProtoMessage hist = parse_proto(parse_proto(families[0].at(4)[0].bytes).at(7)[0].bytes);
  ASSERT_EQ(hist.at(3).size(), 3u);  // one Bucket per bound; +Inf is sample_count
  const double bounds[] = {1, 5, 10};
  const std::uint64_t cumulative[] = {2, 2, 3};
  for (std::size_t i = 0; i < 3; ++i) {
    const ProtoMessage bucket = parse_proto(hist.at(3)[i].bytes);
    EXPECT_EQ(bucket.at(1)[0].number, cumulative[i]);
    EXPECT_EQ(bucket.at(2)[0].as_double(), bounds[i]);
  }
  EXPECT_EQ(hist.at(1)[0].number, 4u);
  EXPECT_EQ(hist.at(5)[0].as_sint(), 3);  // and still the native form
  EXPECT_EQ(native_of(hist).deltas.size() >= 4, true);
}

TEST(ProtobufExposition, NegativeFirstIndexAndDefaultScale) {
  Registry registry;
  Histogram& h = *registry.histogram("wait", "Wait.", {})->labels(kNoLabels);
  h.observe(0.001);
  const auto families = families_of(registry);
  const ProtoMessage hist = parse_proto(parse_proto(families[0].at(4)[0].bytes).at(7)[0].bytes);
  EXPECT_EQ(hist.at(5)[0].as_sint(), Histogram::kDefaultScale);
  const std::int64_t index = parse_proto(hist.at(12)[0].bytes).at(1)[0].as_sint();
  // The bucket (base^(index-1), base^index] holds 0.001.
  const double base = std::exp2(std::exp2(-Histogram::kDefaultScale));
  EXPECT_LT(std::pow(base, static_cast<double>(index - 1)), 0.001);
  EXPECT_GE(std::pow(base, static_cast<double>(index)) * (1 + 1e-12), 0.001);
  EXPECT_EQ(hist.at(13)[0].as_sint(), 1);
}

TEST(ProtobufExposition, EmptyHistogramAndEmptyFamilies) {
  Registry registry;
  registry.histogram("idle", "No series yet.", {"op"});  // no series at all: left out
  registry.histogram("quiet", "", {"op"})->labels({"read"});
  const auto families = families_of(registry);
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].at(1)[0].bytes, "quiet");
  const ProtoMessage hist = parse_proto(parse_proto(families[0].at(4)[0].bytes).at(7)[0].bytes);
  EXPECT_EQ(hist.at(1)[0].number, 0u);
  EXPECT_EQ(hist.count(12), 0u);
  EXPECT_GT(hist.at(6)[0].as_double(), 0.0);  // a zero threshold marks it as a native histogram
}

TEST(ProtobufExposition, QuantileOnlySeriesGoOutAsASummary) {
  FamilySnapshot family;
  family.info.name = "latency";
  family.info.type = MetricType::histogram;
  SeriesSnapshot series;
  series.quantiles = {{0.5, 1.5}, {0.99, 9.0}};
  series.histogram.count = 10;
  series.histogram.sum = 30;
  series.no_buckets = true;
  family.series.push_back(series);
  std::string out;
  encode_prometheus_protobuf({family}, out);
  const auto messages = split_delimited(out);
  ASSERT_EQ(messages.size(), 1u);
  const ProtoMessage f = parse_proto(messages[0]);
  EXPECT_EQ(f.at(3)[0].number, 2u);  // SUMMARY
  const ProtoMessage summary = parse_proto(parse_proto(f.at(4)[0].bytes).at(4)[0].bytes);
  EXPECT_EQ(summary.at(1)[0].number, 10u);
  EXPECT_EQ(summary.at(2)[0].as_double(), 30.0);
  ASSERT_EQ(summary.at(3).size(), 2u);
  const ProtoMessage q = parse_proto(summary.at(3)[1].bytes);
  EXPECT_EQ(q.at(1)[0].as_double(), 0.99);
  EXPECT_EQ(q.at(2)[0].as_double(), 9.0);
  EXPECT_EQ(summary.count(4), 0u);  // no start time known: no created_timestamp
}

}  // namespace
}  // namespace veda
