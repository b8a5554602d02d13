#include "veda/tracing/ids.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
#include <unistd.h>
#endif

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

#if defined(__unix__) || defined(__APPLE__)
// A forked child's copy of this thread's generator must not repeat the
// parent's next ids (two pre-fork workers would emit the same trace ids).
TEST(TracingIds, AForkedChildDoesNotRepeatTheParentsIds) {
  generate_trace_id();  // the generator exists before the fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    std::string ids;
    for (int i = 0; i < 100; ++i) {
      const TraceId trace = generate_trace_id();  // drawn in the same order as the parent below
      const SpanId span = generate_span_id();
      ids += to_hex(trace) + to_hex(span);
    }
    const bool ok = write(fds[1], ids.data(), ids.size()) == static_cast<ssize_t>(ids.size());
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  std::string child;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) > 0;) child.append(buffer, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(child.size(), 100u * 48u);
  std::set<std::string> seen;
  for (std::size_t at = 0; at < child.size(); at += 48) seen.insert(child.substr(at, 32));
  // The parent makes the same calls: without the reseed it would draw the child's very ids.
  for (int i = 0; i < 100; ++i) {
    seen.insert(to_hex(generate_trace_id()));
    generate_span_id();
  }
  EXPECT_EQ(seen.size(), 200u);
}
#endif

}  // namespace
}  // namespace veda
