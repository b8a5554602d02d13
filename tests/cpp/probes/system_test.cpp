#include "veda/probes/system.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;

constexpr double kMiB = 1048576.0;

// A throwaway /proc tree: <root>/stat, meminfo, self/stat, self/statm.
class ProcFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "veda_proc_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    fs::create_directories(root_ / "self");
  }

  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  void write(const std::string& relative, const std::string& content) {
    std::ofstream out(root_ / relative, std::ios::binary | std::ios::trunc);
    ASSERT_TRUE(out) << relative;
    out << content;
  }

  // A complete, well-formed tree.
  void write_all() {
    write("stat", "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 100 0 100 700 100 0 0 0 0 0\n"
                  "intr 12345 0 0\nctxt 42\n");
    write("meminfo",
          "MemTotal:       16384000 kB\nMemFree:         1000000 kB\n"
          "MemAvailable:    4096000 kB\nBuffers:           10000 kB\n");
    write("self/statm", "10000 2560 300 10 0 5000 0\n");
    // comm with blanks and parentheses: fields are counted from the last ')'.
    write("self/stat",
          "4242 (we ird) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 "
          "123 456789 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n");
  }

  fs::path root_;
};

double clock_ticks() { return static_cast<double>(::sysconf(_SC_CLK_TCK)); }
double page_size() { return static_cast<double>(::sysconf(_SC_PAGESIZE)); }

TEST_F(ProcFixture, ReadsEveryFieldFromFixtureTree) {
  write_all();
  veda::SystemProbe probe(root_.string());
  EXPECT_EQ(probe.proc_root(), root_.string());
  const auto before = std::chrono::system_clock::now();
  const veda::SystemSample s = probe.sample();
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_TRUE(s.error.empty());
  // First sample: since boot. total 1000, idle+iowait 800 -> 20 %.
  EXPECT_DOUBLE_EQ(s.cpu_percent, 20.0);
  EXPECT_DOUBLE_EQ(s.memory_total_mb, 16384000.0 / 1024.0);
  EXPECT_DOUBLE_EQ(s.memory_used_mb, (16384000.0 - 4096000.0) / 1024.0);
  EXPECT_DOUBLE_EQ(s.process_rss_mb, 2560.0 * page_size() / kMiB);
  EXPECT_DOUBLE_EQ(s.process_cpu_seconds, 300.0 / clock_ticks());
  const auto before_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             before.time_since_epoch())
                             .count();
  EXPECT_GE(s.timestamp_ns, before_ns);
}

TEST_F(ProcFixture, CpuPercentIsExactOverTheWindowBetweenSamples) {
  write_all();
  veda::SystemProbe probe(root_.string());
  ASSERT_DOUBLE_EQ(probe.sample().cpu_percent, 20.0);
  // +150 user, +50 system, +400 idle, +50 iowait, +50 irq; guest (999) and
  // guest_nice (7) are inside user/nice already and must not count.
  write("stat", "cpu  250 0 150 1100 150 50 0 0 999 7\n");
  // total delta 700, idle+iowait delta 450 -> busy 250 -> 250/700.
  const veda::SystemSample s = probe.sample();
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_DOUBLE_EQ(s.cpu_percent, 100.0 * 250.0 / 700.0);

  write("stat", "cpu  850 0 150 1100 150 50 0 0 0 0\n");  // fully busy window
  EXPECT_DOUBLE_EQ(probe.sample().cpu_percent, 100.0);
  write("stat", "cpu  850 0 150 1300 150 50 0 0 0 0\n");  // fully idle window
  EXPECT_DOUBLE_EQ(probe.sample().cpu_percent, 0.0);
}

TEST_F(ProcFixture, CpuPercentBetweenAnyTwoSamples) {
  write_all();
  veda::SystemProbe probe(root_.string());
  const veda::SystemSample a = probe.sample();
  write("stat", "cpu  250 0 150 1100 150 50 0 0 999 7\n");
  const veda::SystemSample b = probe.sample();
  write("stat", "cpu  850 0 150 1100 150 50 0 0 0 0\n");
  const veda::SystemSample c = probe.sample();
  EXPECT_EQ(b.cpu_total_ticks - a.cpu_total_ticks, 700u);
  EXPECT_EQ(b.cpu_idle_ticks - a.cpu_idle_ticks, 450u);
  EXPECT_DOUBLE_EQ(veda::cpu_percent_between(a, b), 100.0 * 250.0 / 700.0);
  // A longer window than the probe's own: 850 busy of 1300 ticks.
  EXPECT_DOUBLE_EQ(veda::cpu_percent_between(a, c), 100.0 * 850.0 / 1300.0);
  // No tick elapsed, or the order reversed: the fallback.
  EXPECT_DOUBLE_EQ(veda::cpu_percent_between(b, b, -1.0), -1.0);
  EXPECT_DOUBLE_EQ(veda::cpu_percent_between(c, a, 7.0), 7.0);
}

TEST_F(ProcFixture, WindowWithoutTicksRepeatsPreviousValue) {
  write_all();
  veda::SystemProbe probe(root_.string());
  probe.sample();
  write("stat", "cpu  400 0 100 1000 100 0 0 0 0 0\n");  // 300 busy of 600
  EXPECT_DOUBLE_EQ(probe.sample().cpu_percent, 50.0);
  const veda::SystemSample same = probe.sample();  // unchanged counters
  ASSERT_TRUE(same.ok) << same.error;
  EXPECT_DOUBLE_EQ(same.cpu_percent, 50.0);
}

TEST_F(ProcFixture, CountersGoingBackwardsRestartFromBoot) {
  write_all();
  veda::SystemProbe probe(root_.string());
  probe.sample();
  write("stat", "cpu  30 0 20 40 10 0 0 0 0 0\n");  // total 100 < 1000
  EXPECT_DOUBLE_EQ(probe.sample().cpu_percent, 50.0);
}

TEST_F(ProcFixture, IdleGrowingFasterThanTotalClampsToZero) {
  write_all();
  veda::SystemProbe probe(root_.string());
  probe.sample();  // total 1000, idle+iowait 800
  // user steps back by 50 while idle grows by 100: total +50, idle +100.
  write("stat", "cpu  50 0 100 800 100 0 0 0 0 0\n");
  const veda::SystemSample s = probe.sample();
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_EQ(s.cpu_percent, 0.0);
}

TEST_F(ProcFixture, OldKernelStatLineWithFourFields) {
  write_all();
  write("stat", "cpu 30 10 10 50\n");
  const veda::SystemSample s = veda::SystemProbe(root_.string()).sample();
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_DOUBLE_EQ(s.cpu_percent, 50.0);
}

TEST_F(ProcFixture, MissingRootReportsEveryPathAndZeroes) {
  veda::SystemProbe probe((root_ / "does-not-exist").string());
  const veda::SystemSample s = probe.sample();
  EXPECT_FALSE(s.ok);
  for (const char* path : {"/stat:", "/meminfo:", "/self/stat:", "/self/statm:"}) {
    EXPECT_NE(s.error.find(path), std::string::npos) << path << " in " << s.error;
  }
  EXPECT_NE(s.error.find("No such file"), std::string::npos) << s.error;
  EXPECT_EQ(s.cpu_percent, 0.0);
  EXPECT_EQ(s.memory_used_mb, 0.0);
  EXPECT_EQ(s.memory_total_mb, 0.0);
  EXPECT_EQ(s.process_rss_mb, 0.0);
  EXPECT_EQ(s.process_cpu_seconds, 0.0);
  EXPECT_GT(s.timestamp_ns, 0);
}

TEST_F(ProcFixture, OneBadSourceKeepsTheOthers) {
  write_all();
  fs::remove(root_ / "stat");
  const veda::SystemSample s = veda::SystemProbe(root_.string()).sample();
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("/stat:"), std::string::npos) << s.error;
  EXPECT_EQ(s.error.find("meminfo"), std::string::npos) << s.error;
  EXPECT_EQ(s.cpu_percent, 0.0);
  EXPECT_DOUBLE_EQ(s.memory_total_mb, 16000.0);
  EXPECT_GT(s.process_rss_mb, 0.0);
  EXPECT_GT(s.process_cpu_seconds, 0.0);
}

struct MalformedCase {
  const char* file;
  const char* content;
  const char* expected_in_error;
};

void PrintTo(const MalformedCase& c, std::ostream* os) {
  *os << c.file << " containing \"" << c.content << "\"";
}

class MalformedProc : public ProcFixture,
                      public ::testing::WithParamInterface<MalformedCase> {};

TEST_P(MalformedProc, ReportsNotOkWithReason) {
  write_all();
  write(GetParam().file, GetParam().content);
  veda::SystemProbe probe(root_.string());
  for (int i = 0; i < 2; ++i) {  // the failure must not poison later samples
    const veda::SystemSample s = probe.sample();
    EXPECT_FALSE(s.ok);
    EXPECT_NE(s.error.find(GetParam().file), std::string::npos) << s.error;
    EXPECT_NE(s.error.find(GetParam().expected_in_error), std::string::npos) << s.error;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Files, MalformedProc,
    ::testing::Values(MalformedCase{"stat", "", "empty"},
                      MalformedCase{"stat", "intr 1 2 3\n", "malformed"},
                      MalformedCase{"stat", "cpu  1 2 3\n", "malformed"},
                      MalformedCase{"stat", "cpu  x y z w\n", "malformed"},
                      MalformedCase{"stat", "cpu  99999999999999999999999 1 1 1\n", "malformed"},
                      MalformedCase{"stat", "cpu  18446744073709551615 1 1 1\n", "malformed"},
                      MalformedCase{"meminfo", "MemFree: 1 kB\n", "MemTotal"},
                      MalformedCase{"meminfo", "MemTotal: 100 kB\nMemFree: 1 kB\n", "MemAvailable"},
                      MalformedCase{"meminfo", "MemTotal: lots\nMemAvailable: 1 kB\n", "MemTotal"},
                      MalformedCase{"self/statm", "abc\n", "malformed"},
                      MalformedCase{"self/statm", "100\n", "malformed"},
                      MalformedCase{"self/stat", "4242 no-parenthesis S 1 2 3\n", "malformed"},
                      MalformedCase{"self/stat", "4242 (short) S 1 2 3\n", "malformed"},
                      MalformedCase{"self/stat", "", "empty"}),
    [](const ::testing::TestParamInfo<MalformedCase>& param_info) {
      std::string name = param_info.param.file;
      for (char& c : name) {
        if (c == '/') c = '_';
      }
      return name + "_" + std::to_string(param_info.index);
    });

TEST_F(ProcFixture, DirectoryInPlaceOfFileIsAnError) {
  write_all();
  fs::remove(root_ / "meminfo");
  fs::create_directories(root_ / "meminfo");
  const veda::SystemSample s = veda::SystemProbe(root_.string()).sample();
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("meminfo"), std::string::npos) << s.error;
}

TEST_F(ProcFixture, RecoversWhenAMissingFileAppears) {
  write_all();
  fs::remove(root_ / "meminfo");
  veda::SystemProbe probe(root_.string());
  EXPECT_FALSE(probe.sample().ok);
  write("meminfo", "MemTotal: 2048 kB\nMemAvailable: 1024 kB\n");
  const veda::SystemSample s = probe.sample();
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_DOUBLE_EQ(s.memory_total_mb, 2.0);
  EXPECT_DOUBLE_EQ(s.memory_used_mb, 1.0);
}

TEST_F(ProcFixture, SeesFilesRewrittenInPlace) {
  write_all();
  veda::SystemProbe probe(root_.string());
  ASSERT_DOUBLE_EQ(probe.sample().process_rss_mb, 2560.0 * page_size() / kMiB);
  write("self/statm", "10000 512 300 10 0 5000 0\n");  // shorter than before
  EXPECT_DOUBLE_EQ(probe.sample().process_rss_mb, 512.0 * page_size() / kMiB);
}

TEST_F(ProcFixture, ConcurrentSamplersStayInRange) {
  write_all();
  veda::SystemProbe probe(root_.string());
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        const veda::SystemSample s = probe.sample();
        if (!s.ok || s.cpu_percent < 0.0 || s.cpu_percent > 100.0) bad.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(ProcessCpuPercent, FromTwoSamples) {
  veda::SystemSample a;
  a.ok = true;
  a.timestamp_ns = 1'000'000'000;
  a.process_cpu_seconds = 2.0;
  veda::SystemSample b = a;
  b.timestamp_ns = 3'000'000'000;  // 2 s later
  b.process_cpu_seconds = 5.0;     // 3 s of CPU: 1.5 cores
  EXPECT_DOUBLE_EQ(veda::process_cpu_percent(a, b), 150.0);
  EXPECT_EQ(veda::process_cpu_percent(b, a), 0.0);  // not later
  b.ok = false;
  EXPECT_EQ(veda::process_cpu_percent(a, b), 0.0);
}

#if defined(__linux__)
TEST(SystemProbeRealProc, SaneValues) {
  veda::SystemProbe probe;
  EXPECT_EQ(probe.proc_root(), "/proc");
  const veda::SystemSample first = probe.sample();
  ASSERT_TRUE(first.ok) << first.error;
  EXPECT_GE(first.cpu_percent, 0.0);
  EXPECT_LE(first.cpu_percent, 100.0);
  EXPECT_GT(first.memory_total_mb, 0.0);
  EXPECT_GT(first.memory_used_mb, 0.0);
  EXPECT_LE(first.memory_used_mb, first.memory_total_mb);
  EXPECT_GT(first.process_rss_mb, 0.0);
  EXPECT_LT(first.process_rss_mb, first.memory_total_mb);
  EXPECT_GE(first.process_cpu_seconds, 0.0);

  // Burn CPU until the kernel has charged at least one more tick to us.
  veda::SystemSample later = probe.sample();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  volatile std::uint64_t sink = 0;
  while (later.process_cpu_seconds <= first.process_cpu_seconds &&
         std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 1'000'000; ++i) sink = sink + static_cast<std::uint64_t>(i);
    later = probe.sample();
  }
  ASSERT_TRUE(later.ok) << later.error;
  EXPECT_GT(later.process_cpu_seconds, first.process_cpu_seconds);
  EXPECT_GT(later.timestamp_ns, first.timestamp_ns);
  EXPECT_GE(later.cpu_percent, 0.0);
  EXPECT_LE(later.cpu_percent, 100.0);
  EXPECT_GT(veda::process_cpu_percent(first, later), 0.0);
}
TEST(SystemProbeRealProc, ForkedChildReportsItself) {
  veda::SystemProbe probe;
  const veda::SystemSample parent = probe.sample();  // opens /proc/self/*
  ASSERT_TRUE(parent.ok) << parent.error;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Touch 128 MiB so the child's RSS clearly exceeds the parent's; a probe
    // still reading the parent's /proc/self/statm would not see it.
    constexpr std::size_t kBytes = std::size_t{128} << 20U;
    auto* block = static_cast<char*>(std::malloc(kBytes));
    if (block == nullptr) ::_exit(2);
    volatile char* touch = block;
    for (std::size_t i = 0; i < kBytes; i += 4096) touch[i] = 1;
    const veda::SystemSample s = probe.sample();
    const bool good = s.ok && s.process_rss_mb > parent.process_rss_mb + 96.0;
    std::free(block);
    ::_exit(good ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}
#else
TEST(SystemProbeRealProc, NotLinuxIsNotOk) {
  const veda::SystemSample s = veda::SystemProbe().sample();
  EXPECT_FALSE(s.ok);
  EXPECT_FALSE(s.error.empty());
}
#endif

}  // namespace
