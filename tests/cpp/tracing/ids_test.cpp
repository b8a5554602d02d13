#include "veda/tracing/ids.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

namespace veda {
namespace {

TEST(TracingIds, NeverZeroAndUniqueInALargeSample) {
  std::set<std::string> traces;
  std::set<std::string> spans;
  constexpr int kSample = 200000;
  for (int i = 0; i < kSample; ++i) {
    const TraceId t = generate_trace_id();
    const SpanId s = generate_span_id();
    ASSERT_TRUE(is_valid(t));
    ASSERT_TRUE(is_valid(s));
    traces.insert(to_hex(t));
    spans.insert(to_hex(s));
  }
  EXPECT_EQ(traces.size(), static_cast<std::size_t>(kSample));
  EXPECT_EQ(spans.size(), static_cast<std::size_t>(kSample));
}

TEST(TracingIds, ThreadsDrawDifferentSequences) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ids, t] {
      for (int i = 0; i < kPerThread; ++i) ids[static_cast<std::size_t>(t)].push_back(to_hex(generate_span_id()));
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (const auto& v : ids) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

TEST(TracingIds, HexIsLowercaseAndRoundTrips) {
  const TraceId t = generate_trace_id();
  const std::string text = to_hex(t);
  ASSERT_EQ(text.size(), 32u);
  for (char c : text) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << text;
  TraceId back{};
  ASSERT_TRUE(trace_id_from_hex(text, back));
  EXPECT_EQ(back, t);

  SpanId s{};
  ASSERT_TRUE(span_id_from_hex("00f067aa0ba902b7", s));
  EXPECT_EQ(to_hex(s), "00f067aa0ba902b7");
  EXPECT_EQ(s[1], 0xf0);
}

TEST(TracingIds, ParseRejectsUppercaseNonHexAndWrongLengths) {
  SpanId s{};
  s[0] = 7;
  EXPECT_FALSE(span_id_from_hex("00F067AA0BA902B7", s));
  EXPECT_FALSE(span_id_from_hex("00f067aa0ba902b", s));
  EXPECT_FALSE(span_id_from_hex("00f067aa0ba902b77", s));
  EXPECT_FALSE(span_id_from_hex("00f067aa0ba902bz", s));
  EXPECT_EQ(s[0], 7) << "a failed parse leaves the output untouched";
  TraceId t{};
  EXPECT_FALSE(trace_id_from_hex("", t));
  ASSERT_TRUE(trace_id_from_hex(std::string(32, '0'), t));
  EXPECT_FALSE(is_valid(t));
}

}  // namespace
}  // namespace veda
