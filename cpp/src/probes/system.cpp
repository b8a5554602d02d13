#include "veda/probes/system.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <string_view>
#include <utility>

namespace veda {
namespace {

constexpr double kBytesPerMiB = 1048576.0;
constexpr double kKiBPerMiB = 1024.0;
// Enough for the "cpu" line of /proc/stat, the head of /proc/meminfo (MemTotal
// and MemAvailable are its first and third lines) and all of /proc/self/stat.
constexpr std::size_t kReadBufferSize = 4096;

struct ReadBuffer {
  char data[kReadBufferSize];
  std::size_t size = 0;

  std::string_view view() const noexcept { return {data, size}; }
};

void add_error(std::string& errors, const std::string& path, std::string_view reason) {
  if (!errors.empty()) errors += "; ";
  errors += path;
  errors += ": ";
  errors += reason;
}

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Reads at most kReadBufferSize bytes from the start of `path` through the
// kept descriptor `fd`, opening it first if needed. /proc files may return
// one record per read, so read until the buffer fills or EOF. On a read
// error the descriptor is closed so the next sample reopens it.
bool read_head(const std::string& path, int& fd, ReadBuffer& buffer, std::string& errors) {
  buffer.size = 0;
  if (fd < 0) {
    do {
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      add_error(errors, path, std::strerror(errno));
      return false;
    }
  }
  while (buffer.size < kReadBufferSize) {
    const ssize_t n = ::pread(fd, buffer.data + buffer.size, kReadBufferSize - buffer.size,
                              static_cast<off_t>(buffer.size));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      add_error(errors, path, std::strerror(errno));
      close_fd(fd);
      return false;
    }
    buffer.size += static_cast<std::size_t>(n);
  }
  if (buffer.size == 0) {
    add_error(errors, path, "empty");
    return false;
  }
  return true;
}

bool is_blank(char c) noexcept { return c == ' ' || c == '\t'; }

// Parses one unsigned decimal after optional blanks; advances `text`.
bool next_u64(std::string_view& text, std::uint64_t& value) noexcept {
  std::size_t i = 0;
  while (i < text.size() && is_blank(text[i])) ++i;
  const char* first = text.data() + i;
  const char* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || end == first) return false;
  text.remove_prefix(static_cast<std::size_t>(end - text.data()));
  return true;
}

// Skips one blank-separated token; false when none is left.
bool skip_token(std::string_view& text) noexcept {
  std::size_t i = 0;
  while (i < text.size() && is_blank(text[i])) ++i;
  const std::size_t start = i;
  while (i < text.size() && !is_blank(text[i]) && text[i] != '\n') ++i;
  text.remove_prefix(i);
  return i > start;
}

struct CpuTimes {
  std::uint64_t total = 0;
  std::uint64_t idle = 0;  // idle + iowait
};

// The aggregate "cpu" line: user nice system idle [iowait irq softirq steal
// [guest guest_nice]]. Kernels before 2.6 have only the first four. guest
// and guest_nice are already counted in user and nice, so they are skipped.
bool parse_proc_stat(std::string_view text, CpuTimes& times) noexcept {
  constexpr std::string_view kPrefix = "cpu ";
  if (text.substr(0, kPrefix.size()) != kPrefix) return false;
  text.remove_prefix(kPrefix.size());
  const std::string_view line = text.substr(0, text.find('\n'));
  std::string_view rest = line;
  std::uint64_t fields[8] = {};
  int parsed = 0;
  for (; parsed < 8; ++parsed) {
    if (!next_u64(rest, fields[parsed])) break;
  }
  if (parsed < 4) return false;
  std::uint64_t total = 0;
  for (int i = 0; i < parsed; ++i) {
    if (total + fields[i] < total) return false;  // overflow: not a real counter
    total += fields[i];
  }
  times.total = total;
  times.idle = fields[3] + fields[4];  // fields[4] (iowait) is 0 if absent
  return true;
}

// Finds "<key>:   <value> kB" in /proc/meminfo; value in KiB.
bool find_meminfo_kib(std::string_view text, std::string_view key, std::uint64_t& kib) noexcept {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t eol = text.find('\n', pos);
    const std::string_view line =
        text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      std::string_view rest = line.substr(key.size() + 1);
      return next_u64(rest, kib);
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return false;
}

// /proc/self/stat: "pid (comm) state ppid ... utime stime ...". comm may hold
// blanks and parentheses, so fields are counted from the last ')'. utime and
// stime are fields 14 and 15, i.e. tokens 11 and 12 after the ')'.
bool parse_self_stat(std::string_view text, std::uint64_t& utime, std::uint64_t& stime) noexcept {
  const std::size_t paren = text.rfind(')');
  if (paren == std::string_view::npos) return false;
  std::string_view rest = text.substr(paren + 1);
  for (int i = 0; i < 11; ++i) {
    if (!skip_token(rest)) return false;
  }
  return next_u64(rest, utime) && next_u64(rest, stime);
}

// /proc/self/statm: "size resident shared text lib data dt", in pages.
bool parse_statm_resident(std::string_view text, std::uint64_t& pages) noexcept {
  std::uint64_t size = 0;
  return next_u64(text, size) && next_u64(text, pages);
}

double positive_sysconf(int name, double fallback) noexcept {
  const long value = ::sysconf(name);
  return value > 0 ? static_cast<double>(value) : fallback;
}

}  // namespace

double cpu_percent_between(const SystemSample& before, const SystemSample& after, double fallback) noexcept {
  if (before.cpu_total_ticks == 0 || after.cpu_total_ticks <= before.cpu_total_ticks) return fallback;
  const auto total = static_cast<double>(after.cpu_total_ticks - before.cpu_total_ticks);
  double busy = total - (static_cast<double>(after.cpu_idle_ticks) - static_cast<double>(before.cpu_idle_ticks));
  if (busy < 0.0) busy = 0.0;
  if (busy > total) busy = total;
  return 100.0 * busy / total;
}

double process_cpu_percent(const SystemSample& before, const SystemSample& after) noexcept {
  if (!before.ok || !after.ok || after.timestamp_ns <= before.timestamp_ns) return 0.0;
  const double wall_seconds = static_cast<double>(after.timestamp_ns - before.timestamp_ns) / 1e9;
  const double cpu_seconds = after.process_cpu_seconds - before.process_cpu_seconds;
  if (cpu_seconds <= 0.0) return 0.0;
  return 100.0 * cpu_seconds / wall_seconds;
}

SystemProbe::SystemProbe(std::string proc_root)
    : proc_root_(std::move(proc_root)),
      page_size_bytes_(positive_sysconf(_SC_PAGESIZE, 4096.0)),
      clock_ticks_per_second_(positive_sysconf(_SC_CLK_TCK, 100.0)) {
  stat_.path = proc_root_ + "/stat";
  meminfo_.path = proc_root_ + "/meminfo";
  self_stat_.path = proc_root_ + "/self/stat";
  self_statm_.path = proc_root_ + "/self/statm";
}

SystemProbe::~SystemProbe() {
  close_fd(stat_.fd);
  close_fd(meminfo_.fd);
  close_fd(self_stat_.fd);
  close_fd(self_statm_.fd);
}

SystemSample SystemProbe::sample() noexcept {
  SystemSample out;
  try {
    out.timestamp_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    ReadBuffer buffer;
    std::lock_guard<std::mutex> lock(mutex_);

    // /proc/self opened before a fork() still names the parent.
    const long pid = static_cast<long>(::getpid());
    if (pid != self_pid_) {
      close_fd(self_stat_.fd);
      close_fd(self_statm_.fd);
      self_pid_ = pid;
    }

    if (read_head(stat_.path, stat_.fd, buffer, out.error)) {
      CpuTimes now;
      if (!parse_proc_stat(buffer.view(), now)) {
        add_error(out.error, stat_.path, "malformed \"cpu\" line");
      } else {
        double percent = 0.0;
        if (!have_previous_ || now.total < previous_total_) {
          // First sample (or counters went backwards): since boot.
          percent = now.total == 0 ? 0.0
                                   : 100.0 * static_cast<double>(now.total - now.idle) /
                                         static_cast<double>(now.total);
        } else if (now.total == previous_total_) {
          percent = previous_percent_;
        } else {
          const auto total_delta = static_cast<double>(now.total - previous_total_);
          // iowait may step backwards on some kernels; keep busy in range.
          const double idle_delta =
              static_cast<double>(now.idle) - static_cast<double>(previous_idle_);
          double busy_delta = total_delta - idle_delta;
          if (busy_delta < 0.0) busy_delta = 0.0;
          if (busy_delta > total_delta) busy_delta = total_delta;
          percent = 100.0 * busy_delta / total_delta;
        }
        out.cpu_total_ticks = now.total;
        out.cpu_idle_ticks = now.idle;
        have_previous_ = true;
        previous_total_ = now.total;
        previous_idle_ = now.idle;
        previous_percent_ = percent;
        out.cpu_percent = percent;
      }
    }

    if (read_head(meminfo_.path, meminfo_.fd, buffer, out.error)) {
      std::uint64_t total_kib = 0;
      std::uint64_t available_kib = 0;
      if (!find_meminfo_kib(buffer.view(), "MemTotal", total_kib)) {
        add_error(out.error, meminfo_.path, "no MemTotal");
      } else if (!find_meminfo_kib(buffer.view(), "MemAvailable", available_kib)) {
        out.memory_total_mb = static_cast<double>(total_kib) / kKiBPerMiB;
        add_error(out.error, meminfo_.path, "no MemAvailable");
      } else {
        out.memory_total_mb = static_cast<double>(total_kib) / kKiBPerMiB;
        const std::uint64_t used_kib = available_kib < total_kib ? total_kib - available_kib : 0;
        out.memory_used_mb = static_cast<double>(used_kib) / kKiBPerMiB;
      }
    }

    if (read_head(self_statm_.path, self_statm_.fd, buffer, out.error)) {
      std::uint64_t pages = 0;
      if (parse_statm_resident(buffer.view(), pages)) {
        out.process_rss_mb = static_cast<double>(pages) * page_size_bytes_ / kBytesPerMiB;
      } else {
        add_error(out.error, self_statm_.path, "malformed");
      }
    }

    if (read_head(self_stat_.path, self_stat_.fd, buffer, out.error)) {
      std::uint64_t utime = 0;
      std::uint64_t stime = 0;
      if (parse_self_stat(buffer.view(), utime, stime)) {
        out.process_cpu_seconds =
            (static_cast<double>(utime) + static_cast<double>(stime)) / clock_ticks_per_second_;
      } else {
        add_error(out.error, self_stat_.path, "malformed (no utime/stime)");
      }
    }

    out.ok = out.error.empty();
  } catch (const std::exception& e) {  // std::bad_alloc from an error string
    out.ok = false;
    try {
      out.error = e.what();
    } catch (...) {  // out of memory twice: leave the message empty
    }
  }
  return out;
}

}  // namespace veda
