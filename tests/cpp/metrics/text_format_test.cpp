// Tests for the text expositions: Prometheus text format 0.0.4 and OpenMetrics 1.0.
#include "veda/metrics/text_format.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <random>
#include <string>

#include "veda/metrics/registry.hpp"

#include "support/test_support.hpp"

namespace {

using veda::Registry;

using veda::test::kInf;
using veda::test::kNaN;

std::string text_of(double v) {
  std::string out;
  veda::append_double(out, v);
  return out;
}

// The registry both golden texts render.
void fill_golden(Registry& r) {
  auto requests = r.counter("http_requests_total", "Requests \"served\".\nSecond line with \\ backslash.",
                            {"method", "path"});
  requests->labels({"GET", "/a\\b\"c\nd"})->inc(3);
  requests->labels({"POST", ""})->inc(0.5);

  auto temperature = r.gauge("temperature", "Temp.", {"sensor"});
  temperature->labels({"a"})->set(21.5);
  temperature->labels({"nan"})->set(kNaN);
  temperature->labels({"hot"})->set(kInf);
  temperature->labels({"cold"})->set(-kInf);

  r.gauge("up", "")->unlabelled().set(1);

  // 90 x 1.0 and 10 x 3.0: every quantile estimate is clamped onto min or max,
  // so the golden text does not depend on bucket midpoints.
  auto latency = r.histogram("latency_seconds", "Latency.", {"op"});
  auto read = latency->labels({"read"});
  for (int i = 0; i < 90; ++i) read->observe(1.0);
  for (int i = 0; i < 10; ++i) read->observe(3.0);
  latency->labels({"idle"});

  r.counter("jobs", "Jobs.");
}

TEST(TextFormat, GoldenExposition) {
  Registry r;
  fill_golden(r);

  const std::string expected = R"(# HELP http_requests_total Requests "served".\nSecond line with \\ backslash.
# TYPE http_requests_total counter
http_requests_total{method="GET",path="/a\\b\"c\nd"} 3
http_requests_total{method="POST",path=""} 0.5
# HELP temperature Temp.
# TYPE temperature gauge
temperature{sensor="a"} 21.5
temperature{sensor="nan"} NaN
temperature{sensor="hot"} +Inf
temperature{sensor="cold"} -Inf
# HELP up 
# TYPE up gauge
up 1
# HELP latency_seconds Latency.
# TYPE latency_seconds summary
latency_seconds{op="read",quantile="0.5"} 1
latency_seconds{op="read",quantile="0.9"} 1
latency_seconds{op="read",quantile="0.95"} 3
latency_seconds{op="read",quantile="0.99"} 3
latency_seconds_sum{op="read"} 120
latency_seconds_count{op="read"} 100
latency_seconds{op="idle",quantile="0.5"} NaN
latency_seconds{op="idle",quantile="0.9"} NaN
latency_seconds{op="idle",quantile="0.95"} NaN
latency_seconds{op="idle",quantile="0.99"} NaN
latency_seconds_sum{op="idle"} 0
latency_seconds_count{op="idle"} 0
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total 0
)";
  EXPECT_EQ(r.render_prometheus(), expected);

  // The free function renders the same snapshot and appends to what is there.
  std::string out = "prefix\n";
  veda::render_prometheus(r.collect(), out);
  EXPECT_EQ(out, "prefix\n" + expected);
}

TEST(OpenMetrics, GoldenExposition) {
  Registry r;
  fill_golden(r);
  const std::string expected = R"(# TYPE http_requests counter
# HELP http_requests Requests \"served\".\nSecond line with \\ backslash.
http_requests_total{method="GET",path="/a\\b\"c\nd"} 3
http_requests_total{method="POST",path=""} 0.5
# TYPE temperature gauge
# HELP temperature Temp.
temperature{sensor="a"} 21.5
temperature{sensor="nan"} NaN
temperature{sensor="hot"} +Inf
temperature{sensor="cold"} -Inf
# TYPE up gauge
up 1
# TYPE latency_seconds summary
# HELP latency_seconds Latency.
latency_seconds{op="read",quantile="0.5"} 1
latency_seconds{op="read",quantile="0.9"} 1
latency_seconds{op="read",quantile="0.95"} 3
latency_seconds{op="read",quantile="0.99"} 3
latency_seconds_sum{op="read"} 120
latency_seconds_count{op="read"} 100
latency_seconds{op="idle",quantile="0.5"} NaN
latency_seconds{op="idle",quantile="0.9"} NaN
latency_seconds{op="idle",quantile="0.95"} NaN
latency_seconds{op="idle",quantile="0.99"} NaN
latency_seconds_sum{op="idle"} 0
latency_seconds_count{op="idle"} 0
# TYPE jobs counter
# HELP jobs Jobs.
jobs_total 0
# EOF
)";
  EXPECT_EQ(r.render_openmetrics(false), expected);
  std::string out = "prefix\n";
  veda::render_openmetrics(r.collect(), out, false);
  EXPECT_EQ(out, "prefix\n" + expected);
}

// Each counter, histogram and summary series ends with its _created sample:
// the series' start, in seconds since the epoch.
TEST(OpenMetrics, CreatedSamples) {
  using veda::FamilySnapshot;
  using veda::SeriesSnapshot;
  using veda::MetricType;
  FamilySnapshot counter;
  counter.info.name = "jobs";
  counter.info.label_names = {"q"};
  SeriesSnapshot s;
  s.label_values = {"a"};
  s.value = 2;
  s.start_unix_nano = 1700000000250000000;
  counter.series.push_back(s);
  FamilySnapshot gauge = counter;
  gauge.info.name = "level";
  gauge.info.type = MetricType::gauge;
  FamilySnapshot classic = counter;
  classic.info.name = "size";
  classic.info.type = MetricType::histogram;
  classic.info.buckets = {1, 10};
  classic.series[0].histogram.bounds = {1, 10};
  classic.series[0].histogram.bound_counts = {1, 0, 2};
  classic.series[0].histogram.count = 3;
  classic.series[0].histogram.sum = 31;
  std::string out;
  veda::render_openmetrics({counter, gauge, classic}, out);
  EXPECT_EQ(out, R"(# TYPE jobs counter
jobs_total{q="a"} 2
jobs_created{q="a"} 1700000000.25
# TYPE level gauge
level{q="a"} 2
# TYPE size histogram
size_bucket{q="a",le="1.0"} 1
size_bucket{q="a",le="10.0"} 1
size_bucket{q="a",le="+Inf"} 3
size_sum{q="a"} 31
size_count{q="a"} 3
size_created{q="a"} 1700000000.25
# EOF
)");
  // 0.0.4 has no _created samples; a series whose start is unknown has none either.
  std::string text;
  veda::render_prometheus({classic}, text);
  EXPECT_EQ(text.find("_created"), std::string::npos);
  EXPECT_NE(text.find("# TYPE size histogram\nsize_bucket{q=\"a\",le=\"1.0\"} 1\n"), std::string::npos);
  counter.series[0].start_unix_nano = 0;
  std::string unknown;
  veda::render_openmetrics({counter}, unknown);
  EXPECT_EQ(unknown.find("_created"), std::string::npos);
}

TEST(TextFormat, UnixSecondsAreExact) {
  auto text = [](std::int64_t ns) {
    std::string out;
    veda::append_unix_seconds(out, ns);
    return out;
  };
  EXPECT_EQ(text(1700000000000000000), "1700000000");
  EXPECT_EQ(text(1700000000250000000), "1700000000.25");
  EXPECT_EQ(text(1700000000000000001), "1700000000.000000001");
  EXPECT_EQ(text(1700000000999999999), "1700000000.999999999");
  EXPECT_EQ(text(5), "0.000000005");
  EXPECT_EQ(text(0), "0");
}

TEST(TextFormat, ClassicBucketsFromARegistry) {
  Registry r;
  veda::Histogram& h = *r.histogram("request_seconds", "Requests.", {}, veda::Histogram::kDefaultScale, {0.1, 0.5, 1, 5})
                      ->labels(std::vector<std::string>{});
  for (const double v : {0.05, 0.1, 0.3, 0.5, 0.7, 2.0, 9.0, 0.0}) h.observe(v);
  EXPECT_EQ(r.render_prometheus(), R"(# HELP request_seconds Requests.
# TYPE request_seconds histogram
request_seconds_bucket{le="0.1"} 3
request_seconds_bucket{le="0.5"} 5
request_seconds_bucket{le="1.0"} 6
request_seconds_bucket{le="5.0"} 7
request_seconds_bucket{le="+Inf"} 8
request_seconds_sum 12.65
request_seconds_count 8
)");
}

TEST(OpenMetrics, EmptyRegistryIsJustEof) {
  Registry r;
  EXPECT_EQ(r.render_openmetrics(), "# EOF\n");
}

TEST(OpenMetrics, CustomQuantilesAreCanonicalAndNaNWithoutObservations) {
  veda::FamilySnapshot family;
  family.info.name = "lat";
  family.info.help = "";
  family.info.type = veda::MetricType::histogram;
  veda::SeriesSnapshot seen;
  seen.quantiles = {{0.5, 2.0}, {1.0, 7.0}};
  seen.histogram.count = 3;
  seen.histogram.sum = 9;
  veda::SeriesSnapshot empty;
  empty.quantiles = {{0.5, 0.0}};
  family.series = {seen, empty};
  std::string out;
  veda::render_openmetrics({family}, out);
  EXPECT_EQ(out, R"(# TYPE lat summary
lat{quantile="0.5"} 2
lat{quantile="1.0"} 7
lat_sum 9
lat_count 3
lat{quantile="0.5"} NaN
lat_sum 0
lat_count 0
# EOF
)");
}

std::string canonical(double v) {
  std::string out;
  veda::append_canonical_number(out, v);
  return out;
}

TEST(OpenMetrics, CanonicalNumbersFollowGoG) {
  EXPECT_EQ(canonical(0.5), "0.5");
  EXPECT_EQ(canonical(1.0), "1.0");
  EXPECT_EQ(canonical(0.95), "0.95");
  EXPECT_EQ(canonical(100000.0), "100000.0");
  EXPECT_EQ(canonical(123456.7), "123456.7");
  EXPECT_EQ(canonical(1e6), "1e+06");
  EXPECT_EQ(canonical(1234567.0), "1.234567e+06");
  EXPECT_EQ(canonical(0.0001), "0.0001");
  EXPECT_EQ(canonical(0.00001), "1e-05");
  EXPECT_EQ(canonical(0.000123), "0.000123");
  EXPECT_EQ(canonical(-2.5), "-2.5");
  EXPECT_EQ(canonical(-0.0), "-0.0");
  EXPECT_EQ(canonical(0.0), "0.0");
  EXPECT_EQ(canonical(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(canonical(1e-300), "1e-300");
  EXPECT_EQ(canonical(1.5e300), "1.5e+300");
  EXPECT_EQ(canonical(kInf), "+Inf");
  EXPECT_EQ(canonical(-kInf), "-Inf");
  EXPECT_EQ(canonical(kNaN), "NaN");
}

TEST(TextFormat, UnlabelledHistogram) {
  Registry r;
  auto h = r.histogram("size_bytes", "Sizes.");
  h->unlabelled().observe(5.0);
  EXPECT_EQ(r.render_prometheus(),
            "# HELP size_bytes Sizes.\n"
            "# TYPE size_bytes summary\n"
            "size_bytes{quantile=\"0.5\"} 5\n"
            "size_bytes{quantile=\"0.9\"} 5\n"
            "size_bytes{quantile=\"0.95\"} 5\n"
            "size_bytes{quantile=\"0.99\"} 5\n"
            "size_bytes_sum 5\n"
            "size_bytes_count 1\n");
}

TEST(TextFormat, EmptyRegistryRendersNothing) {
  Registry r;
  EXPECT_EQ(r.render_prometheus(), "");
  r.counter("requests", "h", {"code"});  // a labelled family without series
  EXPECT_EQ(r.render_prometheus(), "# HELP requests_total h\n# TYPE requests_total counter\n");
}

TEST(TextFormat, SpecialValues) {
  EXPECT_EQ(text_of(kNaN), "NaN");
  EXPECT_EQ(text_of(-kNaN), "NaN");
  EXPECT_EQ(text_of(kInf), "+Inf");
  EXPECT_EQ(text_of(-kInf), "-Inf");
}

TEST(TextFormat, ShortestRoundTripDoubles) {
  EXPECT_EQ(text_of(0.1), "0.1");
  EXPECT_EQ(text_of(0.0), "0");
  EXPECT_EQ(text_of(1.0), "1");
  EXPECT_EQ(text_of(-2.5), "-2.5");
  EXPECT_EQ(text_of(21.5), "21.5");
  EXPECT_EQ(text_of(0.1 + 0.2), "0.30000000000000004");
  // Whole numbers below 2^53 (counts) print as plain digits, not "1e+05".
  EXPECT_EQ(text_of(100000.0), "100000");
  EXPECT_EQ(text_of(1e6), "1000000");
  EXPECT_EQ(text_of(-42.0), "-42");
  EXPECT_EQ(text_of(9007199254740991.0), "9007199254740991");
  EXPECT_EQ(std::strtod(text_of(-0.0).c_str(), nullptr), 0.0);
  EXPECT_EQ(std::strtod(text_of(1e20).c_str(), nullptr), 1e20);
  for (double v : {1e20, 1e-300, 5e-324, 1.7976931348623157e308, 123456789.125, 1.0 / 3.0}) {
    const std::string t = text_of(v);
    EXPECT_EQ(std::strtod(t.c_str(), nullptr), v) << t;
    EXPECT_LE(t.size(), 24u) << t;
  }
  // Random bit patterns: every finite double parses back to itself.
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t bits = rng();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (!std::isfinite(v)) continue;
    const std::string t = text_of(v);
    ASSERT_EQ(std::strtod(t.c_str(), nullptr), v) << t;
  }
}

TEST(TextFormat, Escaping) {
  std::string label;
  veda::append_label_value(label, "a\\b\"c\nd");
  EXPECT_EQ(label, R"(a\\b\"c\nd)");
  std::string help;
  veda::append_help(help, "a\\b\"c\nd");
  EXPECT_EQ(help, R"(a\\b"c\nd)");
  std::string plain;
  veda::append_label_value(plain, "UTF-8 \xc3\xa9 ok\t");
  EXPECT_EQ(plain, "UTF-8 \xc3\xa9 ok\t");
}

TEST(TextFormat, Constants) {
  EXPECT_EQ(veda::kPrometheusContentType, "text/plain; version=0.0.4; charset=utf-8");
  ASSERT_EQ(std::size(veda::kSummaryQuantiles), 4u);
  EXPECT_EQ(veda::kSummaryQuantiles[0], 0.5);
  EXPECT_EQ(veda::kSummaryQuantiles[1], 0.9);
  EXPECT_EQ(veda::kSummaryQuantiles[2], 0.95);
  EXPECT_EQ(veda::kSummaryQuantiles[3], 0.99);
}

}  // namespace
