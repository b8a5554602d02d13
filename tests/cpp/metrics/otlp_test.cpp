#include "veda/metrics/otlp.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/test_support.hpp"

#include "detail/protobuf.hpp"

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

}  // namespace
}  // namespace veda
