// Tests for multi-process mode (veda/metrics/multiprocess.hpp): processes
// made by fork() record into files of their own and any of them renders the
// exact aggregate; dead processes are folded into the archive; damaged and
// foreign files are named in warnings.
//
// multiprocess::enable() holds for the rest of a process, so every test runs
// its body in a fork()ed process of its own (in_own_process()); gtest prints
// a failure there and the exit status carries it back.
#include "veda/metrics/multiprocess.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.hpp"
#include "veda/metrics/registry.hpp"
#include "veda/metrics/text_format.hpp"

namespace veda {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;


int wait_for(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(1ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

template <class Body>
void in_own_process(Body&& body) {
#if defined(VEDA_TEST_TSAN)
  GTEST_SKIP() << "ThreadSanitizer does not support fork() with threads";
#endif
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    std::fflush(nullptr);
    ::_exit(::testing::Test::HasFailure() ? 1 : 0);
  }
  ASSERT_EQ(wait_for(pid, 60s), 0) << "the test's own process failed (see above) or hung";
}

// A fresh, empty directory, removed at the end of the test.
struct TempDir {
  TempDir() {
    char pattern[] = "/tmp/pyveda-mp-test-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string path;
};

// Runs `child` in a forked process and waits for it to exit with 0.
template <class Child>
void child_process(Child&& child) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    child();
    ::_exit(0);
  }
  ASSERT_EQ(wait_for(pid, 30s), 0);
}

const FamilySnapshot* find(const std::vector<FamilySnapshot>& families, const std::string& name) {
  for (const FamilySnapshot& f : families) {
    if (f.info.name == name) return &f;
  }
  return nullptr;
}

std::size_t files_in(const std::string& dir, const std::string& suffix) {
  std::size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) ++n;
  }
  return n;
}

bool has_warning(const std::vector<std::string>& warnings, const std::string& part) {
  for (const std::string& w : warnings) {
    if (w.find(part) != std::string::npos) return true;
  }
  return false;
}

TEST(MultiProcess, ForkedChildrenAreSummedExactlyAndFoldedWhenTheyExit) {
  in_own_process([] {
    TempDir dir;
    multiprocess::enable({dir.path, "svc"});
    auto requests = default_registry().counter("mp_requests", "Requests.", {"route"});
    auto latency = default_registry().histogram("mp_latency_seconds", "Latency.", {}, 6, {0.1, 1.0});
    requests->labels({"/a"})->inc(1);
    latency->unlabelled().observe(0.05);
    const std::string parent_file = multiprocess::process_file();
    for (int child = 0; child < 3; ++child) {
      child_process([&] {
        // The child's series start from zero in a file of its own.
        if (multiprocess::process_file() == parent_file) std::_Exit(2);
        if (requests->labels({"/a"})->get() != 0.0) std::_Exit(3);
        for (int i = 0; i < 10; ++i) requests->labels({"/a"})->inc();
        requests->labels({"/b"})->inc(2);
        latency->unlabelled().observe(0.5);
        latency->unlabelled().observe(5.0);
      });
    }
    const multiprocess::Aggregate a = multiprocess::aggregate(dir.path);
    EXPECT_TRUE(a.warnings.empty()) << a.warnings.front();
    EXPECT_EQ(a.folded_processes, 3u);
    EXPECT_EQ(a.live_processes, 1u);
    const FamilySnapshot* r = find(a.families, "mp_requests");
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(r->series.size(), 2u);
    EXPECT_EQ(r->series[0].label_values, std::vector<std::string>{"/a"});
    EXPECT_EQ(r->series[0].value, 31.0);
    EXPECT_EQ(r->series[1].value, 6.0);
    const FamilySnapshot* l = find(a.families, "mp_latency_seconds");
    ASSERT_NE(l, nullptr);
    const HistogramSnapshot& h = l->series.at(0).histogram;
    EXPECT_EQ(h.count, 7u);
    EXPECT_DOUBLE_EQ(h.sum, 0.05 + 3 * 5.5);
    EXPECT_EQ(h.bound_counts, (std::vector<std::uint64_t>{1, 3, 3}));
    EXPECT_DOUBLE_EQ(h.min, 0.05);
    EXPECT_DOUBLE_EQ(h.max, 5.0);
    std::uint64_t in_buckets = 0;
    for (const std::uint64_t c : h.counts) in_buckets += c;
    EXPECT_EQ(in_buckets, 7u);
    // One file for the live process and the archive: the children's are gone.
    EXPECT_EQ(files_in(dir.path, ".mp"), 1u);
    EXPECT_EQ(files_in(dir.path, "archive.bin"), 1u);
    // The default registry renders the aggregate, in every format.
    const std::string text = default_registry().render_prometheus();
    EXPECT_NE(text.find("mp_requests_total{route=\"/a\"} 31\n"), std::string::npos) << text;
    EXPECT_NE(text.find("mp_latency_seconds_count 7\n"), std::string::npos) << text;
    const std::string om = default_registry().render_openmetrics();
    EXPECT_NE(om.find("mp_requests_total{route=\"/b\"} 6"), std::string::npos) << om;
    // A second read after the fold gives the same totals.
    const multiprocess::Aggregate again = multiprocess::aggregate(dir.path);
    EXPECT_EQ(find(again.families, "mp_requests")->series[0].value, 31.0);
    EXPECT_EQ(again.folded_processes, 0u);
  });
}

TEST(MultiProcess, GaugeModesCombineLiveAndDeadProcesses) {
  in_own_process([] {
    TempDir dir;
    multiprocess::enable({dir.path, ""});
    auto& r = default_registry();
    auto live_sum = r.gauge("mp_inflight", "In flight.", {}, "", GaugeMode::livesum);
    auto sum = r.gauge("mp_total_set", "Sum.", {}, "", GaugeMode::sum);
    auto max = r.gauge("mp_max", "Max.", {}, "", GaugeMode::max);
    auto min = r.gauge("mp_min", "Min.", {}, "", GaugeMode::livemin);
    auto all = r.gauge("mp_each", "Each.", {}, "", GaugeMode::all);
    auto recent = r.gauge("mp_recent", "Most recent.", {}, "", GaugeMode::mostrecent);
    live_sum->unlabelled().set(1);
    sum->unlabelled().set(1);
    max->unlabelled().set(1);
    min->unlabelled().set(1);
    all->unlabelled().set(1);
    recent->unlabelled().set(1);
    // A child that stays alive until told to go, and one that exits.
    int go[2];
    ASSERT_EQ(::pipe(go), 0);
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t lingering = ::fork();
    if (lingering == 0) {
      live_sum->unlabelled().set(10);
      sum->unlabelled().set(10);
      max->unlabelled().set(10);
      min->unlabelled().set(0.5);
      all->unlabelled().set(10);
      recent->unlabelled().set(10);
      char c = 1;
      (void)!::write(ready[1], &c, 1);
      (void)!::read(go[0], &c, 1);
      ::_exit(0);
    }
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    child_process([&] {
      live_sum->unlabelled().set(100);
      sum->unlabelled().set(100);
      max->unlabelled().set(100);
      min->unlabelled().set(-5);  // livemin: gone with its process
      all->unlabelled().set(100);
    });
    auto value = [](const multiprocess::Aggregate& a, const std::string& name) {
      const FamilySnapshot* f = find(a.families, name);
      return f == nullptr || f->series.empty() ? -1e9 : f->series[0].value;
    };
    multiprocess::Aggregate a = multiprocess::aggregate(dir.path);
    EXPECT_EQ(value(a, "mp_inflight"), 11.0);  // the dead child's 100 is not counted
    EXPECT_EQ(value(a, "mp_total_set"), 111.0);
    EXPECT_EQ(value(a, "mp_max"), 100.0);
    EXPECT_EQ(value(a, "mp_min"), 0.5);
    EXPECT_EQ(value(a, "mp_recent"), 10.0);
    const FamilySnapshot* each = find(a.families, "mp_each");
    ASSERT_NE(each, nullptr);
    EXPECT_EQ(each->info.label_names, std::vector<std::string>{"pid"});
    EXPECT_EQ(each->series.size(), 3u);  // all: the dead child's series stays
    // The lingering child ends: livesum drops its share, sum keeps it.
    (void)!::write(go[1], &c, 1);
    ASSERT_EQ(wait_for(lingering, 30s), 0);
    a = multiprocess::aggregate(dir.path);
    EXPECT_EQ(value(a, "mp_inflight"), 1.0);
    EXPECT_EQ(value(a, "mp_total_set"), 111.0);
    EXPECT_EQ(value(a, "mp_min"), 1.0);
    recent->unlabelled().set(7);
    a = multiprocess::aggregate(dir.path);
    EXPECT_EQ(value(a, "mp_recent"), 7.0);
  });
}

TEST(MultiProcess, KilledProcessKeepsItsCountsAndRemovedSeriesLeave) {
  in_own_process([] {
    TempDir dir;
    multiprocess::enable({dir.path, ""});
    auto c = default_registry().counter("mp_jobs", "Jobs.", {"kind"});
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t worker = ::fork();
    if (worker == 0) {
      c->labels({"x"})->inc(5);
      char b = 1;
      (void)!::write(ready[1], &b, 1);
      for (;;) ::pause();
    }
    char b = 0;
    ASSERT_EQ(::read(ready[0], &b, 1), 1);
    ::kill(worker, SIGKILL);
    ::waitpid(worker, nullptr, 0);
    c->labels({"y"})->inc(1);
    c->labels({"z"})->inc(1);
    c->remove({"z"});
    multiprocess::Aggregate a = multiprocess::aggregate(dir.path);
    const FamilySnapshot* f = find(a.families, "mp_jobs");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(f->series.size(), 2u);
    EXPECT_EQ(f->series[0].value, 5.0);  // SIGKILL lost nothing
    EXPECT_EQ(f->series[1].label_values, std::vector<std::string>{"y"});
    EXPECT_EQ(a.folded_processes, 1u);
    // mark_process_dead() of a live process (a reused pid) leaves it alone.
    EXPECT_EQ(multiprocess::mark_process_dead(dir.path, ::getpid()), 0u);
    EXPECT_EQ(find(multiprocess::aggregate(dir.path).families, "mp_jobs")->series[1].value, 1.0);
  });
}

TEST(MultiProcess, DamagedForeignAndOtherServicesFilesAreNamedAndLeftOut) {
  in_own_process([] {
    TempDir dir;
    multiprocess::enable({dir.path, "shop", std::size_t{1} << 20});
    auto c = default_registry().counter("mp_orders", "Orders.");
    c->unlabelled().inc(3);
    const std::string own = multiprocess::process_file();
    // A file with our name pattern but garbage inside.
    { std::ofstream(dir.path + "/pyveda-99999-deadbeef.mp") << "not a pyveda file at all"; }
    // A copy of a real file cut short inside its records.
    const std::string cut = dir.path + "/pyveda-99998-cafe.mp";
    fs::copy_file(own, cut);
    {
      const int fd = ::open(cut.c_str(), O_RDWR);
      ASSERT_EQ(::ftruncate(fd, 4096 + 100), 0);
      ::close(fd);
    }
    // prometheus_client's file and another service's process.
    { std::ofstream(dir.path + "/counter_123.db") << "x"; }
    child_process([&] {
      // Pretend to be another service by rewriting the name in the child's header.
      const std::string mine = multiprocess::process_file();
      const int fd = ::open(mine.c_str(), O_RDWR);
      const char other[] = "billing";
      const std::uint32_t n = sizeof other - 1;
      (void)!::pwrite(fd, &n, sizeof n, 8 + 4 + 4 + 8 + 8 + 8 + 8);
      (void)!::pwrite(fd, other, n, 8 + 4 + 4 + 8 + 8 + 8 + 8 + 4);
      ::close(fd);
      c->unlabelled().inc(1000);
    });
    const multiprocess::Aggregate a = multiprocess::aggregate(dir.path);
    EXPECT_EQ(find(a.families, "mp_orders")->series.at(0).value, 3.0);
    EXPECT_TRUE(has_warning(a.warnings, "pyveda-99999-deadbeef.mp' is left out of the multi-process aggregate: it is "
                                        "truncated"))
        << ::testing::PrintToString(a.warnings);
    EXPECT_TRUE(has_warning(a.warnings, "pyveda-99998-cafe.mp' is left out of the multi-process aggregate: its header is damaged or the "
                                        "file is truncated"))
        << ::testing::PrintToString(a.warnings);
    EXPECT_TRUE(has_warning(a.warnings, "counter_123.db' in the multi-process directory: not a PyVeda file "
                                        "(prometheus_client's?"))
        << ::testing::PrintToString(a.warnings);
    EXPECT_TRUE(has_warning(a.warnings, "belongs to service 'billing', not 'shop'")) << ::testing::PrintToString(a.warnings);
    EXPECT_FALSE(multiprocess::take_warnings().empty());
  });
}

TEST(MultiProcess, ConflictingDefinitionsAreNamed) {
  in_own_process([] {
    TempDir dir;
    multiprocess::enable({dir.path, ""});
    default_registry().counter("mp_same", "Help.", {"a"})->labels({"1"})->inc();
    child_process([&] {
      // The child's registry forgets the parent's definition and makes another.
      default_registry().unregister("mp_same");
      default_registry().gauge("mp_same", "Other help.")->unlabelled().set(4);
    });
    // The dead child's file is folded (read) first: its gauge stands, the counter is named and left out.
    const multiprocess::Aggregate a = multiprocess::aggregate(dir.path);
    EXPECT_TRUE(has_warning(a.warnings, "defines metric 'mp_same' as a counter with label names ('a') with help 'Help.', but '"))
        << ::testing::PrintToString(a.warnings);
    EXPECT_TRUE(has_warning(a.warnings, "' defines it as a gauge with label names ('pid') with help 'Other help.'"))
        << ::testing::PrintToString(a.warnings);
    const FamilySnapshot* f = find(a.families, "mp_same");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->info.type, MetricType::gauge);
    EXPECT_EQ(f->series.at(0).value, 4.0);
  });
}

TEST(MultiProcess, BadDirectoriesAndAFullFileSayWhatIsWrong) {
  in_own_process([] {
    try {
      multiprocess::enable({"/nonexistent/pyveda-mp", ""});
      ADD_FAILURE() << "no error";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("the multi-process directory '/nonexistent/pyveda-mp' does not exist"),
                std::string::npos)
          << e.what();
    }
    TempDir dir;
    const std::string file = dir.path + "/plain";
    { std::ofstream(file) << "x"; }
    try {
      multiprocess::enable({file, ""});
      ADD_FAILURE() << "no error";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("is not a directory"), std::string::npos) << e.what();
    }
    try {
      multiprocess::enable({dir.path, "", 4096 * 3});
      auto f = default_registry().counter("mp_many", "Many.", {"i"});
      for (int i = 0; i < 100; ++i) f->labels({std::to_string(i)});
      ADD_FAILURE() << "no error";
    } catch (const std::length_error& e) {
      EXPECT_NE(std::string(e.what()).find("' is full ("), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("PYVEDA_MULTIPROC_FILE_MB"), std::string::npos) << e.what();
    }
    try {
      multiprocess::enable({"/tmp", ""});
      ADD_FAILURE() << "no error";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("already records into the multi-process directory"), std::string::npos)
          << e.what();
    }
    // Gauges with a function cannot be shared.
    try {
      default_registry().gauge("mp_fn", "Fn.")->unlabelled().set_function([] { return 1.0; });
      ADD_FAILURE() << "no error";
    } catch (const std::logic_error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot take a function"), std::string::npos) << e.what();
    }
  });
}

TEST(MultiProcess, ADamagedArchiveIsKeptAsideAndNamed) {
  in_own_process([] {
    TempDir dir;
    multiprocess::enable({dir.path, ""});
    auto c = default_registry().counter("mp_folded", "Folded.");
    child_process([&] { c->unlabelled().inc(2); });
    EXPECT_EQ(find(multiprocess::aggregate(dir.path).families, "mp_folded")->series.at(0).value, 2.0);
    { std::ofstream(dir.path + "/pyveda-archive.bin", std::ios::trunc) << "PYVEDAARgarbage"; }
    const multiprocess::Aggregate a = multiprocess::aggregate(dir.path);
    EXPECT_TRUE(has_warning(a.warnings, "pyveda-archive.bin' is damaged")) << ::testing::PrintToString(a.warnings);
    EXPECT_EQ(files_in(dir.path, "archive.bin"), 0u);
    EXPECT_EQ(find(a.families, "mp_folded")->series.at(0).value, 0.0);
  });
}

TEST(MultiProcess, ExemplarsOfEveryProcessReachTheAggregateAndSurviveTheFold) {
  in_own_process([] {
    TempDir dir;
    multiprocess::enable({dir.path, ""});
    auto c = default_registry().counter("mp_ex", "With exemplars.");
    auto h = default_registry().histogram("mp_ex_seconds", "With exemplars.", {}, 6, {0.1, 1.0});
    Exemplar mine;
    mine.labels = {{"user", "parent"}};
    mine.unix_nano = 1000;
    c->unlabelled().inc(1, mine);
    child_process([&] {
      Exemplar e;
      e.labels = {{"user", "child"}, {"region", "\u00e9u"}};
      e.unix_nano = 2000;  // later than the parent's: it wins the counter's slot
      e.has_span = true;
      e.trace_id[0] = 0xab;
      e.span_id[7] = 0xcd;
      c->unlabelled().inc(2, e);
      e.unix_nano = 3000;
      h->unlabelled().observe(0.5, e);  // the (0.1, 1] bucket's slot
    });
    multiprocess::Aggregate a = multiprocess::aggregate(dir.path);  // folds the child
    EXPECT_EQ(a.folded_processes, 1u);
    const auto& counter = find(a.families, "mp_ex")->series.at(0);
    ASSERT_EQ(counter.exemplars.size(), 1u);
    const Exemplar& got = counter.exemplars[0].second;
    EXPECT_EQ(got.labels, (std::vector<std::pair<std::string, std::string>>{{"user", "child"}, {"region", "\u00e9u"}}));
    EXPECT_EQ(got.value, 2.0);
    EXPECT_TRUE(got.has_span);
    EXPECT_EQ(got.trace_id[0], 0xab);
    EXPECT_EQ(got.span_id[7], 0xcd);
    const auto& histogram = find(a.families, "mp_ex_seconds")->series.at(0);
    ASSERT_EQ(histogram.exemplars.size(), 1u);
    EXPECT_EQ(histogram.exemplars[0].first, 1);
    EXPECT_EQ(histogram.exemplars[0].second.value, 0.5);
    // OpenMetrics carries them.
    const std::string om = default_registry().render_openmetrics();
    EXPECT_NE(om.find("mp_ex_total 3 # {trace_id=\"ab"), std::string::npos) << om;
    // A newer exemplar in this process replaces the archived one.
    mine.unix_nano = 5000;
    c->unlabelled().inc(1, mine);
    a = multiprocess::aggregate(dir.path);
    EXPECT_EQ(find(a.families, "mp_ex")->series.at(0).exemplars.at(0).second.labels.at(0).second, "parent");
  });
}

TEST(MultiProcess, APidLabelKeepsEveryProcessApart) {
  in_own_process([] {
    TempDir dir;
    multiprocess::Options options{dir.path, ""};
    options.pid_label = true;
    multiprocess::enable(options);
    auto c = default_registry().counter("mp_apart", "Apart.", {"kind"});
    c->labels({"a"})->inc(1);
    const pid_t child = ::fork();
    if (child == 0) {
      c->labels({"a"})->inc(5);
      ::_exit(0);
    }
    ASSERT_EQ(wait_for(child, 30s), 0);
    const multiprocess::Aggregate a = multiprocess::aggregate(dir.path);
    const FamilySnapshot* f = find(a.families, "mp_apart");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->info.label_names, (std::vector<std::string>{"kind", "pid"}));
    ASSERT_EQ(f->series.size(), 2u);  // the dead child's, from the archive, and ours
    EXPECT_EQ(f->series[0].label_values, (std::vector<std::string>{"a", std::to_string(child)}));
    EXPECT_EQ(f->series[0].value, 5.0);
    EXPECT_EQ(f->series[1].label_values, (std::vector<std::string>{"a", std::to_string(::getpid())}));
    EXPECT_EQ(f->series[1].value, 1.0);
    // Read without the label, the archive's per-pid family and this process's disagree: named, not mixed.
    const multiprocess::Aggregate mixed = multiprocess::aggregate(dir.path, false);
    EXPECT_TRUE(has_warning(mixed.warnings, "defines metric 'mp_apart' as a counter with label names ('kind')"))
        << ::testing::PrintToString(mixed.warnings);
    EXPECT_EQ(find(mixed.families, "mp_apart")->series.size(), 1u);
  });
}

TEST(HistogramSnapshotMerge, AddsBucketForBucketAtAnyOffsets) {
  Histogram a;
  Histogram b;
  for (double v : {0.0, 1.0, 2.0, 3.0}) a.observe(v);
  for (double v : {2.0, 1e6, 1e-6}) b.observe(v);
  HistogramSnapshot merged = a.snapshot();
  merged.merge(b.snapshot());
  Histogram both;
  for (double v : {1.0, 0.0, 2.0, 3.0, 1e6, 2.0, 1e-6}) both.observe(v);
  const HistogramSnapshot expect = both.snapshot();
  EXPECT_EQ(merged.count, expect.count);
  EXPECT_EQ(merged.zero_count, expect.zero_count);
  EXPECT_DOUBLE_EQ(merged.sum, expect.sum);
  EXPECT_EQ(merged.min, expect.min);
  EXPECT_EQ(merged.max, expect.max);
  // The same buckets, wherever each window was placed.
  std::vector<std::pair<std::int32_t, std::uint64_t>> got;
  std::vector<std::pair<std::int32_t, std::uint64_t>> want;
  for (std::size_t i = 0; i < merged.counts.size(); ++i) {
    if (merged.counts[i] != 0) got.emplace_back(merged.offset + static_cast<std::int32_t>(i), merged.counts[i]);
  }
  for (std::size_t i = 0; i < expect.counts.size(); ++i) {
    if (expect.counts[i] != 0) want.emplace_back(expect.offset + static_cast<std::int32_t>(i), expect.counts[i]);
  }
  EXPECT_EQ(got, want);
  HistogramSnapshot other_scale = Histogram(3).snapshot();
  EXPECT_THROW(merged.merge(other_scale), std::invalid_argument);
}

}  // namespace
}  // namespace veda
