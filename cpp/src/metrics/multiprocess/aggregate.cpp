// The reading side of multi-process mode: every process's file and the
// archive, summed into one set of families (see veda/metrics/multiprocess.hpp).
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "metrics/multiprocess/format.hpp"
#include "metrics/multiprocess/process_file.hpp"
#include "veda/metrics/exemplar.hpp"
#include "veda/metrics/multiprocess.hpp"

namespace veda::multiprocess {
namespace {

using detail::FormatError;
using detail::Reader;
using detail::Writer;

std::string reason(int error) { return std::strerror(error); }

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// ------------------------------------------------------------ warnings

struct WarningQueue {
  std::mutex mutex;
  std::deque<std::string> queue;
};

WarningQueue& warning_queue() {
  static WarningQueue* q = new WarningQueue;
  return *q;
}

// ------------------------------------------------------------ merging

// One series' values, as read from a file or the archive.
struct Point {
  double value = 0.0;
  std::int64_t start_unix_nano = 0;
  std::int64_t changed_unix_nano = 0;  // gauges in a mostrecent mode
  HistogramSnapshot histogram;
  std::vector<std::pair<std::int32_t, Exemplar>> exemplars;  // (slot, exemplar), slots ascending
};

// Per slot, the exemplar recorded last in any process.
void merge_exemplars(std::vector<std::pair<std::int32_t, Exemplar>>& into,
                     const std::vector<std::pair<std::int32_t, Exemplar>>& add) {
  for (const auto& [slot, exemplar] : add) {
    auto it = std::find_if(into.begin(), into.end(), [&](const auto& e) { return e.first == slot; });
    if (it == into.end()) {
      into.emplace_back(slot, exemplar);
    } else if (exemplar.unix_nano > it->second.unix_nano) {
      it->second = exemplar;
    }
  }
  std::sort(into.begin(), into.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
}

struct MergedFamily {
  FamilyInfo info;  // as exposed: an "all" gauge has the pid label
  std::string source;  // the file that defined it first
  std::vector<std::pair<std::vector<std::string>, Point>> series;
  std::unordered_map<std::string, std::size_t> index;
};

// The label that tells processes apart in the "all" gauge modes.
std::string pid_label_name(const FamilyInfo& info) {
  for (const std::string& name : info.label_names) {
    if (name == "pid") return "process_pid";
  }
  return "pid";
}

bool per_process(GaugeMode mode) { return mode == GaugeMode::all || mode == GaugeMode::liveall; }

void merge_point(const FamilyInfo& info, Point& into, const Point& add) {
  if (!add.exemplars.empty()) merge_exemplars(into.exemplars, add.exemplars);
  if (add.start_unix_nano != 0 && (into.start_unix_nano == 0 || add.start_unix_nano < into.start_unix_nano)) {
    into.start_unix_nano = add.start_unix_nano;
  }
  switch (info.type) {
    case MetricType::counter:
      into.value += add.value;
      return;
    case MetricType::histogram:
      into.histogram.merge(add.histogram);
      return;
    case MetricType::gauge:
      break;
  }
  switch (info.multiprocess_mode) {
    case GaugeMode::min:
    case GaugeMode::livemin:
      into.value = std::min(into.value, add.value);
      return;
    case GaugeMode::max:
    case GaugeMode::livemax:
      into.value = std::max(into.value, add.value);
      return;
    case GaugeMode::mostrecent:
    case GaugeMode::livemostrecent:
      if (add.changed_unix_nano >= into.changed_unix_nano) {
        into.value = add.value;
        into.changed_unix_nano = add.changed_unix_nano;
      }
      return;
    default:  // sum, livesum, and the per-process modes (one process's series twice: re-created)
      into.value += add.value;
      return;
  }
}

class Merger {
 public:
  // The family `info` merges into, or null (and a warning) when another
  // process defined a metric of that name differently.
  MergedFamily* family(const FamilyInfo& info, const std::string& source, std::vector<std::string>& warnings) {
    auto it = by_name_.find(info.name);
    if (it == by_name_.end()) {
      by_name_.emplace(info.name, families_.size());
      families_.push_back(MergedFamily{info, source, {}, {}});
      return &families_.back();
    }
    MergedFamily& have = families_[it->second];
    if (!veda::detail::same_definition(have.info, info) || have.info.help != info.help) {
      warnings.push_back("'" + source + "' defines metric '" + info.name + "' as a " + veda::detail::describe(info) +
                         (have.info.help != info.help ? " with help '" + info.help + "'" : std::string()) + ", but '" +
                         have.source + "' defines it as a " + veda::detail::describe(have.info) +
                         (have.info.help != info.help ? " with help '" + have.info.help + "'" : std::string()) +
                         "; that file's series of it are left out (two services in one directory?)");
      return nullptr;
    }
    return &have;
  }

  static void add(MergedFamily& family, std::vector<std::string> labels, const Point& point) {
    std::string key = veda::detail::label_key(labels);
    auto it = family.index.find(key);
    if (it == family.index.end()) {
      family.index.emplace(std::move(key), family.series.size());
      family.series.emplace_back(std::move(labels), point);
    } else {
      merge_point(family.info, family.series[it->second].second, point);
    }
  }

  std::vector<MergedFamily>& families() noexcept { return families_; }
  const std::vector<MergedFamily>& families() const noexcept { return families_; }

 private:
  std::vector<MergedFamily> families_;
  std::unordered_map<std::string, std::size_t> by_name_;
};

// ------------------------------------------------------------ process files

// What one process's file holds, read completely before any of it is merged
// (a damaged file is left out whole, never in part).
struct ProcessRead {
  std::string name;
  std::int64_t pid = 0;
  std::string service;
  struct Series {
    std::size_t family;  // index into families
    std::vector<std::string> labels;
    Point point;
  };
  std::vector<FamilyInfo> families;
  std::vector<Series> series;
};

class Mapping {
 public:
  Mapping(int fd, std::size_t size) : size_(size) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<const char*>(p);
  }
  ~Mapping() {
    if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  const char* data() const noexcept { return data_; }

 private:
  const char* data_ = nullptr;
  std::size_t size_;
};

ProcessRead read_process_file(int fd, const std::string& name) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw FormatError("cannot stat it: " + reason(errno));
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size < detail::kHeaderBytes) throw FormatError("it is truncated (" + std::to_string(size) + " bytes, less than its header)");
  Mapping map(fd, size);
  if (map.data() == nullptr) throw FormatError("cannot map it: " + reason(errno));
  const char* base = map.data();
  const auto* header = reinterpret_cast<const detail::FileHeader*>(base);
  if (std::memcmp(header->magic, detail::kFileMagic, sizeof detail::kFileMagic) != 0) {
    throw FormatError("it is not a PyVeda multi-process file (wrong magic bytes)");
  }
  if (header->version != detail::kVersion) {
    throw FormatError("it has format version " + std::to_string(header->version) + "; this PyVeda reads version " +
                      std::to_string(detail::kVersion));
  }
  const std::uint64_t used = header->used.load(std::memory_order_acquire);
  if (header->header_bytes != detail::kHeaderBytes || used < detail::kHeaderBytes || used > size ||
      header->service_bytes > sizeof header->service) {
    throw FormatError("its header is damaged or the file is truncated (" + std::to_string(used) + " bytes used of " +
                      std::to_string(size) + ")");
  }
  ProcessRead out;
  out.name = name;
  out.pid = header->pid;
  out.service.assign(header->service, header->service_bytes);
  std::unordered_map<std::uint64_t, std::size_t> family_at;
  std::uint64_t off = detail::kHeaderBytes;
  while (off < used) {
    const std::string where = " at byte " + std::to_string(off);
    if (used - off < sizeof(detail::RecordHeader)) throw FormatError("a record is cut short" + where);
    const auto* h = reinterpret_cast<const detail::RecordHeader*>(base + off);
    if (h->check != detail::check_of(*h) || h->size % detail::kRecordAlign != 0 || h->size == 0 ||
        h->size > used - off || h->key_bytes > h->size - sizeof(detail::RecordHeader)) {
      throw FormatError("a record header is damaged" + where);
    }
    Reader key(base + off + sizeof(detail::RecordHeader), h->key_bytes);
    if (h->kind == detail::kFamilyRecord) {
      family_at.emplace(off, out.families.size());
      out.families.push_back(detail::decode_info(key));
    } else if (h->kind == detail::kSeriesRecord) {
      const auto family_offset = key.get<std::uint64_t>();
      const auto created = key.get<std::int64_t>();
      std::vector<std::string> labels = key.get_strings();
      auto fam = family_at.find(family_offset);
      if (fam == family_at.end()) throw FormatError("a series names no family record" + where);
      const FamilyInfo& info = out.families[fam->second];
      if (labels.size() != info.label_names.size()) {
        throw FormatError("a series of '" + info.name + "' has the wrong number of label values" + where);
      }
      const std::size_t cells = veda::detail::shared_series_bytes(info);
      if (h->cells < sizeof(detail::RecordHeader) + h->key_bytes || h->cells % detail::kRecordAlign != 0 ||
          h->cells + cells > h->size) {
        throw FormatError("a series of '" + info.name + "' has its cells out of place" + where);
      }
      if (h->removed.load(std::memory_order_acquire) == 0) {
        const char* at = base + off + h->cells;
        ProcessRead::Series s{fam->second, std::move(labels), Point{}};
        s.point.start_unix_nano = created;
        switch (info.type) {
          case MetricType::counter: {
            const auto* c = reinterpret_cast<const veda::detail::CounterCells*>(at);
            s.point.value = c->get();
            const std::int64_t reset = c->reset_unix_nano.load(std::memory_order_relaxed);
            if (reset != 0) s.point.start_unix_nano = reset;
            break;
          }
          case MetricType::gauge: {
            const auto* g = reinterpret_cast<const veda::detail::GaugeCells*>(at);
            s.point.value = g->value.load(std::memory_order_relaxed);
            s.point.changed_unix_nano = g->changed_unix_nano.load(std::memory_order_relaxed);
            break;
          }
          case MetricType::histogram:
            s.point.histogram = Histogram::read(*reinterpret_cast<const veda::detail::HistogramCells*>(at),
                                                info.scale, info.buckets, created);
            break;
        }
        const char* slots = at + veda::detail::shared_exemplar_offset(info);
        for (std::size_t i = 0; i < veda::detail::shared_exemplar_slots(info); ++i) {
          Exemplar e;
          if (veda::detail::read_shared_exemplar(slots + i * veda::detail::kSharedExemplarBytes, e)) {
            s.point.exemplars.emplace_back(static_cast<std::int32_t>(i), std::move(e));
          }
        }
        out.series.push_back(std::move(s));
      }
    } else {
      throw FormatError("a record has an unknown kind" + where);
    }
    off += h->size;
  }
  return out;
}

// Adds a process's series; `live` false leaves out the live* gauges. With
// `pid_label`, every family keeps processes apart as the "all" gauges do.
void merge_process(Merger& into, const ProcessRead& process, bool live, bool pid_label,
                   std::vector<std::string>& warnings) {
  std::vector<MergedFamily*> target(process.families.size(), nullptr);
  std::vector<bool> refused(process.families.size(), false);
  const std::string pid = std::to_string(process.pid);
  for (const ProcessRead::Series& s : process.series) {
    const FamilyInfo& info = process.families[s.family];
    const bool gauge = info.type == MetricType::gauge;
    if (gauge && !live && live_only(info.multiprocess_mode)) continue;
    if (refused[s.family]) continue;
    const bool apart = pid_label || (gauge && per_process(info.multiprocess_mode));
    if (target[s.family] == nullptr) {
      FamilyInfo exposed = info;
      if (apart) exposed.label_names.push_back(pid_label_name(info));
      target[s.family] = into.family(exposed, process.name, warnings);
      if (target[s.family] == nullptr) {
        refused[s.family] = true;
        continue;
      }
    }
    std::vector<std::string> labels = s.labels;
    if (apart) labels.push_back(pid);
    Merger::add(*target[s.family], std::move(labels), s.point);
  }
}

// ------------------------------------------------------------ the archive

struct Archive {
  Merger merged;
  std::set<std::string> folded;  // files already folded (deleted after the archive is written)
};

void encode_point(Writer& w, const FamilyInfo& info, const Point& p) {
  w.put(p.value);
  w.put(p.start_unix_nano);
  w.put(p.changed_unix_nano);
  w.put(static_cast<std::uint32_t>(p.exemplars.size()));
  for (const auto& [slot, e] : p.exemplars) {
    w.put(slot);
    w.put(e.value);
    w.put(e.unix_nano);
    w.put(static_cast<std::uint8_t>(e.has_span));
    for (const std::uint8_t b : e.trace_id) w.put(b);
    for (const std::uint8_t b : e.span_id) w.put(b);
    w.put(static_cast<std::uint32_t>(e.labels.size()));
    for (const auto& [name, value] : e.labels) {
      w.put_string(name);
      w.put_string(value);
    }
  }
  if (info.type != MetricType::histogram) return;
  const HistogramSnapshot& h = p.histogram;
  w.put(h.zero_count);
  w.put(h.offset);
  w.put(static_cast<std::uint32_t>(h.counts.size()));
  for (const std::uint64_t c : h.counts) w.put(c);
  w.put(h.count);
  w.put(h.sum);
  w.put(h.min);
  w.put(h.max);
  w.put(static_cast<std::uint32_t>(h.bound_counts.size()));
  for (const std::uint64_t c : h.bound_counts) w.put(c);
}

Point decode_point(Reader& r, const FamilyInfo& info) {
  Point p;
  p.value = r.get<double>();
  p.start_unix_nano = r.get<std::int64_t>();
  p.changed_unix_nano = r.get<std::int64_t>();
  const auto exemplars = r.get<std::uint32_t>();
  if (exemplars > veda::detail::shared_exemplar_slots(info)) throw FormatError("a series has too many exemplars");
  for (std::uint32_t i = 0; i < exemplars; ++i) {
    Exemplar e;
    const auto slot = r.get<std::int32_t>();
    e.value = r.get<double>();
    e.unix_nano = r.get<std::int64_t>();
    e.has_span = r.get<std::uint8_t>() != 0;
    for (std::uint8_t& b : e.trace_id) b = r.get<std::uint8_t>();
    for (std::uint8_t& b : e.span_id) b = r.get<std::uint8_t>();
    const auto labels = r.get<std::uint32_t>();
    if (labels > 128) throw FormatError("an exemplar has too many labels");
    for (std::uint32_t j = 0; j < labels; ++j) {
      std::string name = r.get_string();
      e.labels.emplace_back(std::move(name), r.get_string());
    }
    p.exemplars.emplace_back(slot, std::move(e));
  }
  if (info.type != MetricType::histogram) return p;
  HistogramSnapshot& h = p.histogram;
  h.scale = info.scale;
  h.zero_threshold = std::numeric_limits<double>::min();
  h.start_unix_nano = p.start_unix_nano;
  h.zero_count = r.get<std::uint64_t>();
  h.offset = r.get<std::int32_t>();
  const auto n = r.get<std::uint32_t>();
  if (n > static_cast<std::uint32_t>(Histogram::kMaxBuckets) * 64) throw FormatError("a histogram has too many buckets");
  h.counts.resize(n);
  for (std::uint64_t& c : h.counts) c = r.get<std::uint64_t>();
  h.count = r.get<std::uint64_t>();
  h.sum = r.get<double>();
  h.min = r.get<double>();
  h.max = r.get<double>();
  const auto b = r.get<std::uint32_t>();
  if (b != (info.buckets.empty() ? 0 : info.buckets.size() + 1)) throw FormatError("a histogram's classic buckets do not match its family");
  h.bound_counts.resize(b);
  for (std::uint64_t& c : h.bound_counts) c = r.get<std::uint64_t>();
  h.bounds = info.buckets;
  return p;
}

std::string encode_archive(const Archive& a) {
  Writer w;
  w.bytes().append(detail::kArchiveMagic, sizeof detail::kArchiveMagic);
  w.put(detail::kVersion);
  w.put(static_cast<std::uint32_t>(a.folded.size()));
  for (const std::string& name : a.folded) w.put_string(name);
  w.put(static_cast<std::uint32_t>(a.merged.families().size()));
  for (const MergedFamily& f : a.merged.families()) {
    detail::encode_info(w, f.info);
    w.put_string(f.source);
    w.put(static_cast<std::uint32_t>(f.series.size()));
    for (const auto& [labels, point] : f.series) {
      w.put_strings(labels);
      encode_point(w, f.info, point);
    }
  }
  return std::move(w.bytes());
}

Archive decode_archive(const std::string& bytes) {
  if (bytes.size() < sizeof detail::kArchiveMagic ||
      std::memcmp(bytes.data(), detail::kArchiveMagic, sizeof detail::kArchiveMagic) != 0) {
    throw FormatError("it is not a PyVeda archive (wrong magic bytes)");
  }
  Reader r(bytes.data() + sizeof detail::kArchiveMagic, bytes.size() - sizeof detail::kArchiveMagic);
  const auto version = r.get<std::uint32_t>();
  if (version != detail::kVersion) throw FormatError("it has format version " + std::to_string(version));
  Archive a;
  const auto folded = r.get<std::uint32_t>();
  for (std::uint32_t i = 0; i < folded; ++i) a.folded.insert(r.get_string());
  const auto families = r.get<std::uint32_t>();
  std::vector<std::string> ignored;
  for (std::uint32_t i = 0; i < families; ++i) {
    FamilyInfo info = detail::decode_info(r);
    const std::string source = r.get_string();
    MergedFamily* f = a.merged.family(info, source, ignored);
    if (f == nullptr) throw FormatError("it defines metric '" + info.name + "' twice");
    const auto series = r.get<std::uint32_t>();
    for (std::uint32_t j = 0; j < series; ++j) {
      std::vector<std::string> labels = r.get_strings();
      if (labels.size() != info.label_names.size()) throw FormatError("a series of '" + info.name + "' has the wrong number of label values");
      Merger::add(*f, std::move(labels), decode_point(r, info));
    }
  }
  if (!r.done()) throw FormatError("it has bytes after its last family");
  return a;
}

bool read_whole(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    throw std::runtime_error("cannot read the multi-process archive '" + path + "': " + reason(errno));
  }
  out.clear();
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      throw std::runtime_error("cannot read the multi-process archive '" + path + "': " + reason(error));
    }
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

void write_archive(const std::string& directory, const Archive& a) {
  const std::string bytes = encode_archive(a);
  const std::string path = directory + "/" + std::string(detail::kArchiveName);
  const std::string temporary =
      directory + "/" + std::string(detail::kArchiveTemporaryPrefix) + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write the multi-process archive '" + temporary + "': " + reason(errno));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(temporary.c_str());
      throw std::runtime_error("cannot write the multi-process archive '" + temporary + "': " + reason(error));
    }
    done += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw std::runtime_error("cannot replace the multi-process archive '" + path + "': " + reason(error));
  }
}

// ------------------------------------------------------------ the directory

// The directory's lock, held while files are folded and read.
class DirectoryLock {
 public:
  explicit DirectoryLock(const std::string& directory) {
    const std::string path = directory + "/" + std::string(detail::kLockName);
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      throw std::runtime_error("cannot open the lock file '" + path + "' of the multi-process directory: " +
                               reason(errno));
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto pause = std::chrono::microseconds(200);
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        const int error = errno;
        ::close(fd_);
        throw std::runtime_error("cannot lock '" + path + "': " + reason(error));
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ::close(fd_);
        throw std::runtime_error("another process has held the lock '" + path +
                                 "' for more than 10 s (a stopped process?); the aggregate cannot be read safely");
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(20000));
    }
  }
  ~DirectoryLock() { ::close(fd_); }
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

// "pyveda-<pid>-<hex>.mp": the pid, or nothing for another name.
std::optional<std::int64_t> process_file_pid(std::string_view name) {
  if (!starts_with(name, detail::kFilePrefix) || !ends_with(name, detail::kFileSuffix)) return std::nullopt;
  std::string_view middle = name.substr(detail::kFilePrefix.size(),
                                        name.size() - detail::kFilePrefix.size() - detail::kFileSuffix.size());
  const auto dash = middle.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash > 18) return std::nullopt;
  std::int64_t pid = 0;
  for (const char c : middle.substr(0, dash)) {
    if (c < '0' || c > '9') return std::nullopt;
    pid = pid * 10 + (c - '0');
  }
  return pid;
}

std::vector<std::string> list_directory(const std::string& directory) {
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) {
    throw std::runtime_error("cannot read the multi-process directory '" + directory + "': " + reason(errno));
  }
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

// Folds dead processes' files (all, or only `only_pid`'s) into the archive
// and, with `want`, also gives the aggregate's families.
Aggregate scan(const std::string& directory, std::optional<std::int64_t> only_pid, bool want, bool pid_label) {
  DirectoryLock lock(directory);
  Aggregate out;
  std::vector<std::string>& warnings = out.warnings;
  const std::string archive_path = directory + "/" + std::string(detail::kArchiveName);
  Archive archive;
  std::string bytes;
  if (read_whole(archive_path, bytes)) {
    try {
      archive = decode_archive(bytes);
    } catch (const FormatError& e) {
      // Keep it for a person to look at; never fold into (and overwrite) it.
      const std::string kept = archive_path + ".damaged-" + std::to_string(::time(nullptr));
      ::rename(archive_path.c_str(), kept.c_str());
      warnings.push_back("the multi-process archive '" + archive_path + "' is damaged (" + e.what() +
                         "); moved to '" + kept + "': the totals of processes that ended before now are missing");
      archive = Archive{};
    }
  }
  const std::vector<std::string> names = list_directory(directory);
  std::string service;  // the directory's: of the first file that names one
  std::vector<std::pair<ProcessRead, bool>> unfolded;  // (file, its process lives)
  std::vector<std::string> to_delete;
  for (const std::string& name : names) {
    const std::string path = directory + "/" + name;
    if (name == detail::kLockName || name == detail::kArchiveName ||
        starts_with(name, std::string(detail::kArchiveName) + ".damaged-")) {
      continue;
    }
    if (starts_with(name, detail::kArchiveTemporaryPrefix)) {
      ::unlink(path.c_str());  // a fold that crashed before its rename (the lock is ours)
      continue;
    }
    if (ends_with(name, ".mp.new")) continue;  // a file being created (no O_TMPFILE here)
    const std::optional<std::int64_t> pid = process_file_pid(name);
    if (!pid) {
      warnings.push_back("ignoring '" + path + "' in the multi-process directory: not a PyVeda file" +
                         (ends_with(name, ".db") ? " (prometheus_client's? give each library a directory of its own)"
                                                 : std::string()));
      continue;
    }
    if (archive.folded.count(name) != 0) {
      to_delete.push_back(name);  // folded by a fold that stopped before deleting it
      continue;
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) warnings.push_back("cannot open '" + path + "': " + reason(errno) + "; left out");
      continue;
    }
    const bool dead = ::flock(fd, LOCK_EX | LOCK_NB) == 0;  // a live process holds a shared lock
    ProcessRead process;
    try {
      process = read_process_file(fd, name);
    } catch (const FormatError& e) {
      ::close(fd);
      warnings.push_back("'" + path + "' is left out of the multi-process aggregate: " + e.what());
      continue;
    }
    ::close(fd);
    if (!process.service.empty()) {
      if (service.empty()) service = process.service;
      if (process.service != service) {
        warnings.push_back("'" + path + "' belongs to service '" + process.service + "', not '" + service +
                           "' as the directory's other files; left out (two services share one directory?)");
        continue;
      }
    }
    if (dead && (!only_pid || *only_pid == process.pid)) {
      merge_process(archive.merged, process, false, pid_label, warnings);
      archive.folded.insert(name);
      to_delete.push_back(name);
      ++out.folded_processes;
    } else if (want) {
      unfolded.emplace_back(std::move(process), !dead);
    }
  }
  if (out.folded_processes != 0) {
    // Remember only folded files that still exist; the new ones are deleted next.
    std::set<std::string> still;
    for (const std::string& name : archive.folded) {
      if (std::binary_search(names.begin(), names.end(), name)) still.insert(name);
    }
    archive.folded = std::move(still);
    write_archive(directory, archive);
  }
  for (const std::string& name : to_delete) ::unlink((directory + "/" + name).c_str());
  if (!want) return out;
  Merger result = std::move(archive.merged);
  for (const auto& [process, lives] : unfolded) {
    merge_process(result, process, lives, pid_label, warnings);
    if (lives) ++out.live_processes;
  }
  out.families.reserve(result.families().size());
  for (MergedFamily& f : result.families()) {
    FamilySnapshot family;
    family.info = std::move(f.info);
    family.series.reserve(f.series.size());
    for (auto& [labels, point] : f.series) {
      SeriesSnapshot s;
      s.label_values = std::move(labels);
      s.value = point.value;
      s.start_unix_nano = point.start_unix_nano;
      s.histogram = std::move(point.histogram);
      s.exemplars = std::move(point.exemplars);
      family.series.push_back(std::move(s));
    }
    out.families.push_back(std::move(family));
  }
  return out;
}

void queue_warnings(const std::vector<std::string>& warnings) {
  if (warnings.empty()) return;
  WarningQueue& q = warning_queue();
  std::lock_guard<std::mutex> lock(q.mutex);
  for (const std::string& w : warnings) {
    if (q.queue.size() >= 100) q.queue.pop_front();
    q.queue.push_back(w);
  }
}

}  // namespace

Aggregate aggregate(const std::string& directory) { return aggregate(directory, detail::pid_label_default()); }

Aggregate aggregate(const std::string& directory, bool pid_label) {
  Aggregate a = scan(directory, std::nullopt, true, pid_label);
  queue_warnings(a.warnings);
  return a;
}

std::size_t mark_process_dead(const std::string& directory, std::int64_t pid) {
  const Aggregate a = scan(directory, pid, false, detail::pid_label_default());
  queue_warnings(a.warnings);
  return a.folded_processes;
}

std::vector<std::string> take_warnings() {
  WarningQueue& q = warning_queue();
  std::lock_guard<std::mutex> lock(q.mutex);
  std::vector<std::string> out(q.queue.begin(), q.queue.end());
  q.queue.clear();
  return out;
}

}  // namespace veda::multiprocess
