// System probe: host CPU and memory plus this process's RSS and CPU time,
// read straight from Linux /proc.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

namespace veda {

/// One reading of the host and of the calling process.
///
/// MB means MiB (1,048,576 bytes). A field whose source could not be read or
/// parsed is 0; `ok` is then false and `error` names every failure
/// ("<path>: <reason>", joined by "; "). Fields from the sources that did
/// parse are still filled.
struct SystemSample {
  /// Wall-clock time of the sample, ns since the Unix epoch.
  std::int64_t timestamp_ns = 0;
  /// Host CPU utilisation, 0..100, over the window since the previous
  /// sample() of the same probe. The first sample of a probe covers the time
  /// since boot. busy = total - idle - iowait over the window, where total is
  /// user + nice + system + idle + iowait + irq + softirq + steal from the
  /// "cpu" line of /proc/stat (guest time is already part of user and nice).
  /// When no clock tick elapsed since the previous sample the previous value
  /// is repeated.
  double cpu_percent = 0.0;
  /// MemTotal - MemAvailable from /proc/meminfo, MiB.
  double memory_used_mb = 0.0;
  /// MemTotal from /proc/meminfo, MiB.
  double memory_total_mb = 0.0;
  /// Resident set size of this process (/proc/self/statm resident pages x
  /// page size), MiB.
  double process_rss_mb = 0.0;
  /// User + system CPU time of this process since it started (utime + stime
  /// from /proc/self/stat, in clock ticks / sysconf(_SC_CLK_TCK)), seconds.
  /// See process_cpu_percent().
  double process_cpu_seconds = 0.0;
  /// Cumulative host CPU time since boot from /proc/stat, in clock ticks:
  /// `cpu_total_ticks` as above, `cpu_idle_ticks` = idle + iowait. With two
  /// samples a caller computes utilisation over a window of its own choosing
  /// (cpu_percent_between) without disturbing the probe's window.
  std::uint64_t cpu_total_ticks = 0;
  std::uint64_t cpu_idle_ticks = 0;
  /// True when every source was read and parsed.
  bool ok = false;
  /// Empty when ok; otherwise what failed.
  std::string error;
};

/// Process CPU utilisation between two samples: 100 x (CPU seconds used) /
/// (wall seconds elapsed). Like psutil's Process.cpu_percent, a process with
/// several busy threads can exceed 100. Returns 0 when either sample is not
/// ok or `after` is not later than `before`.
double process_cpu_percent(const SystemSample& before, const SystemSample& after) noexcept;

/// Host CPU utilisation (0..100) between two samples, from their cumulative
/// tick counts. Returns `fallback` when no tick elapsed or either sample has
/// no CPU reading.
double cpu_percent_between(const SystemSample& before, const SystemSample& after,
                           double fallback = 0.0) noexcept;

/// Reads /proc/stat, /proc/meminfo, /proc/self/statm and /proc/self/stat.
///
/// The /proc root is a constructor argument so tests can point the probe at
/// a fixture tree (<root>/stat, <root>/meminfo, <root>/self/stat,
/// <root>/self/statm). Without /proc (not Linux) every sample is not ok,
/// with the missing paths in `error`.
///
/// Each file is opened on first use and kept open; later samples re-read it
/// from offset 0 with pread (the kernel regenerates /proc contents on every
/// read), which roughly halves the cost of a sample. A file that fails to
/// read is closed and reopened by the next sample, and the /proc/self files
/// are reopened when getpid() changes, so a forked child reports itself.
/// Because descriptors are kept, a fixture file must be rewritten in place
/// rather than replaced by a new file for an existing probe to see it.
///
/// Thread-safety: sample() may be called from any thread; one mutex
/// serialises samples (the descriptors and the previous CPU counters that
/// define the utilisation window), so concurrent callers share (and
/// shorten) one another's windows.
class SystemProbe {
 public:
  explicit SystemProbe(std::string proc_root = "/proc");
  /// Closes the kept descriptors.
  ~SystemProbe();

  SystemProbe(const SystemProbe&) = delete;
  SystemProbe& operator=(const SystemProbe&) = delete;
  SystemProbe(SystemProbe&&) = delete;
  SystemProbe& operator=(SystemProbe&&) = delete;

  /// Reads every source once (four pread calls). Never throws.
  SystemSample sample() noexcept;

  const std::string& proc_root() const noexcept { return proc_root_; }

 private:
  struct File {
    std::string path;
    int fd = -1;
  };

  std::string proc_root_;
  double page_size_bytes_ = 0.0;
  double clock_ticks_per_second_ = 0.0;

  std::mutex mutex_;  // guards the fields below
  File stat_;
  File meminfo_;
  File self_stat_;
  File self_statm_;
  long self_pid_ = 0;  // getpid() when the /proc/self files were opened
  bool have_previous_ = false;
  std::uint64_t previous_total_ = 0;
  std::uint64_t previous_idle_ = 0;  // idle + iowait
  double previous_percent_ = 0.0;
};

}  // namespace veda
