// The writing side of multi-process mode: this process's file, the series
// store every family records into, and the fork() handler that gives a
// child a file of its own (see veda/metrics/multiprocess.hpp).
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "metrics/clock.hpp"
#include "metrics/multiprocess/format.hpp"
#include "metrics/multiprocess/process_file.hpp"
#include "veda/detail/fork.hpp"
#include "veda/metrics/multiprocess.hpp"
#include "veda/tracing/ids.hpp"  // 8 random bytes, reseeded in a forked child

namespace veda::multiprocess {
namespace detail {
namespace {

std::string reason(int error) { return std::strerror(error); }

// A new file, flock()ed and sized, that appears under `path` only once it
// is locked and its header written (so a reader never takes it for a dead
// process's). Returns the descriptor and maps it at `at` (MAP_FIXED) or anywhere.
struct NewFile {
  int fd = -1;
  char* base = nullptr;
};

NewFile create_file(const std::string& directory, const std::string& path, std::size_t capacity,
                    const std::string& service, void* at, const char* copy_from, std::uint64_t copy_used) {
  NewFile f;
  bool anonymous = true;
  f.fd = ::open(directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
  std::string staging;
  if (f.fd < 0) {
    // No O_TMPFILE on this filesystem: write it under a name readers skip, then rename it.
    anonymous = false;
    staging = path + ".new";
    f.fd = ::open(staging.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  }
  if (f.fd < 0) {
    throw std::runtime_error("cannot create a multi-process file in '" + directory + "': " + reason(errno));
  }
  auto fail = [&](const char* what) {
    const int error = errno;
    if (f.base != nullptr && f.base != at) ::munmap(f.base, capacity);
    ::close(f.fd);
    if (!staging.empty()) ::unlink(staging.c_str());
    throw std::runtime_error(std::string("cannot ") + what + " the multi-process file '" + path + "': " + reason(error));
  };
  if (::flock(f.fd, LOCK_SH) != 0) fail("lock");
  if (::ftruncate(f.fd, static_cast<off_t>(capacity)) != 0) fail("size");
  // Built in a scratch mapping first when it replaces a mapping still being copied from.
  void* map = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, f.fd, 0);
  if (map == MAP_FAILED) fail("map");
  f.base = static_cast<char*>(map);
  if (copy_from != nullptr) {
    // The parent's records without their cells: the same series, from zero.
    std::uint64_t off = kHeaderBytes;
    while (off < copy_used) {
      const auto* h = reinterpret_cast<const RecordHeader*>(copy_from + off);
      std::memcpy(f.base + off, copy_from + off, h->cells != 0 ? h->cells : h->size);
      off += h->size;
    }
  }
  auto* header = new (f.base) FileHeader{};
  std::memcpy(header->magic, kFileMagic, sizeof kFileMagic);
  header->version = kVersion;
  header->header_bytes = static_cast<std::uint32_t>(kHeaderBytes);
  header->capacity = capacity;
  header->pid = ::getpid();
  header->start_unix_nano = veda::detail::unix_now_ns();
  header->service_bytes = static_cast<std::uint32_t>(std::min(service.size(), sizeof header->service));
  std::memcpy(header->service, service.data(), header->service_bytes);
  header->used.store(copy_from != nullptr ? copy_used : kHeaderBytes, std::memory_order_release);
  if (at != nullptr) {
    ::munmap(f.base, capacity);
    f.base = nullptr;
    map = ::mmap(at, capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, f.fd, 0);
    if (map == MAP_FAILED) fail("map");
    f.base = static_cast<char*>(map);
  }
  if (anonymous) {
    const std::string proc = "/proc/self/fd/" + std::to_string(f.fd);
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) != 0) fail("name");
  } else if (::rename(staging.c_str(), path.c_str()) != 0) {
    fail("name");
  }
  return f;
}

}  // namespace

ProcessFile::ProcessFile(const Options& options)
    : directory_(options.directory), service_(options.service), capacity_(options.file_bytes) {
  if (capacity_ < kHeaderBytes * 2) {
    throw std::invalid_argument("a multi-process file needs at least " + std::to_string(kHeaderBytes * 2) +
                                " bytes, got " + std::to_string(capacity_));
  }
  capacity_ = round_up(capacity_, kHeaderBytes);
  path_ = next_path();
  const NewFile f = create_file(directory_, path_, capacity_, service_, nullptr, nullptr, 0);
  fd_ = f.fd;
  base_ = f.base;
  used_ = kHeaderBytes;
}

std::string ProcessFile::next_path() const {
  return directory_ + "/" + std::string(kFilePrefix) + std::to_string(::getpid()) + "-" + to_hex(generate_span_id()) +
         std::string(kFileSuffix);
}

std::string ProcessFile::path() const {
  std::lock_guard<veda::detail::ForkSafeMutex> lock(mutex_);
  return path_;
}

std::uint64_t ProcessFile::append(std::uint32_t kind, const std::string& key, std::size_t cell_bytes) {
  const std::size_t head = sizeof(RecordHeader) + key.size();
  const std::size_t cells = cell_bytes != 0 ? round_up(head, kRecordAlign) : 0;
  const std::size_t size = round_up(cells != 0 ? cells + cell_bytes : head, kRecordAlign);
  if (used_ + size > capacity_) {
    throw std::length_error("the multi-process file '" + path_ + "' is full (" + std::to_string(capacity_ >> 20) +
                            " MiB of series); give each process more room with PYVEDA_MULTIPROC_FILE_MB, or "
                            "make fewer label values");
  }
  char* at = base_ + used_;
  auto* h = new (at) RecordHeader{};
  h->kind = kind;
  h->key_bytes = static_cast<std::uint32_t>(key.size());
  h->size = size;
  h->cells = cells;
  h->check = check_of(*h);
  std::memcpy(at + sizeof(RecordHeader), key.data(), key.size());
  const std::uint64_t offset = used_;
  used_ += size;
  reinterpret_cast<FileHeader*>(base_)->used.store(used_, std::memory_order_release);
  return offset;
}

veda::detail::SeriesStore::Cells ProcessFile::allocate(const FamilyInfo& family,
                                                       const std::vector<std::string>& label_values,
                                                       std::size_t bytes) {
  Writer info;
  encode_info(info, family);
  std::lock_guard<veda::detail::ForkSafeMutex> lock(mutex_);
  auto it = families_.find(info.bytes());
  if (it == families_.end()) {
    const std::uint64_t offset = append(kFamilyRecord, info.bytes(), 0);
    it = families_.emplace(std::move(info.bytes()), offset).first;
  }
  Writer key;
  key.put(it->second);
  key.put(veda::detail::unix_now_ns());
  key.put_strings(label_values);
  const std::uint64_t record = append(kSeriesRecord, key.bytes(), bytes);
  const auto* h = reinterpret_cast<const RecordHeader*>(base_ + record);
  return Cells{base_ + record + h->cells, record};
}

void ProcessFile::retire(std::uint64_t record) noexcept {
  reinterpret_cast<RecordHeader*>(base_ + record)->removed.store(1, std::memory_order_release);
}

void ProcessFile::after_fork_in_child() noexcept {
  // Only this thread runs here, and the mutex was released after the fork
  // (veda/detail/fork.hpp), so used_ describes complete records.
  std::string path;
  try {
    path = next_path();
    const NewFile f = create_file(directory_, path, capacity_, service_, base_, base_, used_);
    ::close(fd_);  // the parent's lock stays the parent's: never LOCK_UN here
    fd_ = f.fd;
    path_ = path;
  } catch (const std::exception& e) {
    // Never write into the parent's cells: continue in private memory.
    std::fprintf(stderr, "pyveda: multi-process mode: %s; the metrics of process %d are left out of the aggregate\n",
                 e.what(), static_cast<int>(::getpid()));
    void* copy = ::mmap(nullptr, used_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (copy != MAP_FAILED) std::memcpy(copy, base_, used_);
    ::mmap(base_, capacity_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (copy != MAP_FAILED) {
      std::memcpy(base_, copy, used_);
      ::munmap(copy, used_);
    }
    ::close(fd_);
    fd_ = -1;
    path_.clear();
  }
}

namespace {

struct Global {
  std::mutex mutex;  // for enable(); readers use `file`
  std::shared_ptr<ProcessFile> owner;
  std::atomic<ProcessFile*> file{nullptr};
  std::string directory;
  std::atomic<bool> pid_label{false};
};

Global& global() {
  static Global* g = new Global;  // never destroyed: series record until the very end
  return *g;
}

void child_after_fork() {
  ProcessFile* file = global().file.load(std::memory_order_acquire);
  new (&global().mutex) std::mutex;  // another thread may have held it at the fork
  if (file != nullptr) file->after_fork_in_child();
}

}  // namespace
}  // namespace detail

void enable(const Options& options) {
  auto& g = detail::global();
  std::lock_guard<std::mutex> lock(g.mutex);
  std::string dir = options.directory;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (g.owner) {
    if (dir == g.directory) return;
    throw std::invalid_argument("this process already records into the multi-process directory '" + g.directory +
                                "'; it cannot switch to '" + dir + "'");
  }
  if (dir.empty()) throw std::invalid_argument("the multi-process directory must not be empty");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      throw std::invalid_argument("the multi-process directory '" + dir +
                                  "' does not exist; create it, empty, before the service's processes start");
    }
    throw std::invalid_argument("the multi-process directory '" + dir + "' cannot be reached: " +
                                detail::reason(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    throw std::invalid_argument("the multi-process directory '" + dir + "' is not a directory");
  }
  Options checked = options;
  checked.directory = dir;
  auto file = std::make_shared<detail::ProcessFile>(checked);
  static std::once_flag registered;
  std::call_once(registered, [] { ::pthread_atfork(nullptr, nullptr, detail::child_after_fork); });
  g.owner = file;
  g.directory = dir;
  g.pid_label.store(options.pid_label, std::memory_order_relaxed);
  g.file.store(file.get(), std::memory_order_release);
  default_registry().set_multiprocess_directory(dir);
}

bool enabled() noexcept { return detail::global().file.load(std::memory_order_acquire) != nullptr; }

namespace detail {
bool pid_label_default() noexcept { return global().pid_label.load(std::memory_order_relaxed); }
}  // namespace detail

std::string directory() {
  auto& g = detail::global();
  std::lock_guard<std::mutex> lock(g.mutex);
  return g.directory;
}

std::string process_file() {
  detail::ProcessFile* file = detail::global().file.load(std::memory_order_acquire);
  return file != nullptr ? file->path() : std::string();
}

namespace {
std::size_t series_bytes(MetricType type, std::size_t classic_bounds) noexcept {
  FamilyInfo info;
  info.type = type;
  info.buckets.assign(classic_bounds, 0.0);
  return veda::detail::shared_series_bytes(info);
}
}  // namespace

std::size_t counter_series_bytes() noexcept { return series_bytes(MetricType::counter, 0); }
std::size_t gauge_series_bytes() noexcept { return series_bytes(MetricType::gauge, 0); }
std::size_t histogram_series_bytes(std::size_t classic_bounds) noexcept {
  return series_bytes(MetricType::histogram, classic_bounds);
}

}  // namespace veda::multiprocess

namespace veda::detail {

std::shared_ptr<SeriesStore> shared_series_store() noexcept {
  auto& g = multiprocess::detail::global();
  if (g.file.load(std::memory_order_acquire) == nullptr) return nullptr;
  std::lock_guard<std::mutex> lock(g.mutex);
  return g.owner;
}

}  // namespace veda::detail
