// Tests for reading Prometheus text format 0.0.4 back into sample families
// and rendering it as OpenMetrics (veda/metrics/text_parser.hpp).
#include "veda/metrics/text_parser.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "veda/metrics/registry.hpp"

namespace veda {
namespace {

std::string converted(std::string_view text) {
  std::string out;
  render_openmetrics_from_text(text, out);
  return out;
}

std::string error_of(std::string_view text) {
  try {
    (void)parse_prometheus_text(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

TEST(TextParser, ReadsFamiliesTypesHelpAndLabels) {
  const auto families = parse_prometheus_text(
      "# HELP jobs_total Jobs \"done\" \\\\ here\\nnext\n"
      "# TYPE jobs_total counter\n"
      "jobs_total{path=\"C:\\\\tmp\",note=\"say \\\"hi\\\"\"} 3\n"
      "# TYPE temp untyped\n"
      "temp 21.5 1520879607789\n"
      "# an ordinary comment\n"
      "\n"
      "lone{ a = \"1\" , } -Inf\n");
  ASSERT_EQ(families.size(), 3u);
  EXPECT_EQ(families[0].name, "jobs");
  EXPECT_EQ(families[0].type, SampleType::counter);
  EXPECT_EQ(families[0].help, "Jobs \"done\" \\ here\nnext");
  ASSERT_EQ(families[0].samples.size(), 1u);
  EXPECT_EQ(families[0].samples[0].name, "jobs_total");
  EXPECT_EQ(families[0].samples[0].labels, (LabelList{{"path", "C:\\tmp"}, {"note", "say \"hi\""}}));
  EXPECT_EQ(families[0].samples[0].value, 3.0);
  EXPECT_EQ(families[1].type, SampleType::unknown);
  ASSERT_TRUE(families[1].samples[0].timestamp.has_value());
  EXPECT_DOUBLE_EQ(*families[1].samples[0].timestamp, 1520879607.789);
  EXPECT_EQ(families[2].name, "lone");
  EXPECT_EQ(families[2].samples[0].labels, (LabelList{{"a", "1"}}));
  EXPECT_TRUE(std::isinf(families[2].samples[0].value) && families[2].samples[0].value < 0);
}

TEST(TextParser, HelpBeforeOrAfterTypeAndSuffixesByType) {
  const auto families = parse_prometheus_text(
      "# TYPE size histogram\n"
      "size_bucket{le=\"1\"} 1\n"
      "size_bucket{le=\"1000000\"} 2\n"
      "size_bucket{le=\"+Inf\"} 2\n"
      "size_sum 7\n"
      "size_count 2\n"
      "# HELP size Sizes.\n"
      "size_total 4\n");  // not a histogram suffix: a family of its own
  ASSERT_EQ(families.size(), 2u);
  EXPECT_EQ(families[0].help, "Sizes.");
  ASSERT_EQ(families[0].samples.size(), 5u);
  EXPECT_EQ(families[0].samples[0].labels[0].second, "1.0");
  EXPECT_EQ(families[0].samples[1].labels[0].second, "1e+06");
  EXPECT_EQ(families[0].samples[2].labels[0].second, "+Inf");
  EXPECT_EQ(families[1].name, "size_total");
  EXPECT_EQ(families[1].type, SampleType::unknown);
}

TEST(TextParser, OpenMetricsGolden) {
  EXPECT_EQ(converted("# HELP wait_seconds Wait.\n"
                      "# TYPE wait_seconds summary\n"
                      "wait_seconds{quantile=\"0.5\"} 0\n"
                      "wait_seconds{quantile=\"1\"} 0\n"
                      "wait_seconds_sum 0\n"
                      "wait_seconds_count 0\n"
                      "# TYPE jobs counter\n"
                      "jobs 2\n"
                      "# TYPE temp untyped\n"
                      "temp 21.5 1520879607789\n"),
            "# TYPE wait_seconds summary\n"
            "# HELP wait_seconds Wait.\n"
            "wait_seconds{quantile=\"0.5\"} NaN\n"
            "wait_seconds{quantile=\"1.0\"} NaN\n"
            "wait_seconds_sum 0\n"
            "wait_seconds_count 0\n"
            "# TYPE jobs counter\n"
            "jobs_total 2\n"
            "# TYPE temp unknown\n"
            "temp 21.5 1520879607.789\n"
            "# EOF\n");
  EXPECT_EQ(converted(""), "# EOF\n");
}

TEST(TextParser, ConvertingTheRegistrysTextGivesItsOpenMetrics) {
  Registry r;
  auto jobs = r.counter("jobs_total", "Jobs \"done\" \\ here\nnext", {"path"});
  jobs->labels({"C:\\tmp \"x\"\n"})->inc(3);
  jobs->labels({""})->inc(0.25);
  r.gauge("temp", "")->unlabelled().set(std::nan(""));
  r.gauge("big", "Big.")->unlabelled().set(1e21);
  auto wait = r.histogram("wait_seconds", "Wait.", {"op"});
  for (int i = 1; i <= 100; ++i) wait->labels({"read"})->observe(i / 100.0);
  wait->labels({"idle"});
  EXPECT_EQ(converted(r.render_prometheus()), r.render_openmetrics(false));
}

TEST(TextParser, MalformedInputNamesTheLineAndTheRule) {
  EXPECT_NE(error_of("ok 1\n9bad 1\n").find("Prometheus text line 2: a sample line must start with a metric name"),
            std::string::npos);
  EXPECT_NE(error_of("x{a=1} 2").find("label 'a' needs a quoted value"), std::string::npos);
  EXPECT_NE(error_of("x{a=\"1} 2").find("unterminated value of label 'a'"), std::string::npos);
  EXPECT_NE(error_of("x{a=\"\\t\"} 2").find("invalid escape '\\t' in label 'a'"), std::string::npos);
  EXPECT_NE(error_of("x{a=\"1\" b=\"2\"} 2").find("expected ',' or '}'"), std::string::npos);
  EXPECT_NE(error_of("x one").find("the value 'one' is not a number"), std::string::npos);
  EXPECT_NE(error_of("x").find("expected a blank and a value"), std::string::npos);
  EXPECT_NE(error_of("x 1 1.5").find("the timestamp '1.5' is not whole milliseconds"), std::string::npos);
  EXPECT_NE(error_of("x 1 15 extra").find("unexpected text after the timestamp"), std::string::npos);
  EXPECT_NE(error_of("# TYPE x timer\n").find("unknown metric type 'timer' (allowed: counter, gauge"),
            std::string::npos);
  EXPECT_NE(error_of("# TYPE x gauge\n# TYPE x gauge\n").find("line 2: a second TYPE line for 'x'"),
            std::string::npos);
}

}  // namespace
}  // namespace veda
