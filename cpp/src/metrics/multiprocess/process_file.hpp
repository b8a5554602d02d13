// veda::multiprocess::detail::ProcessFile: this process's multi-process
// file, the SeriesStore every family records into while the mode is on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "veda/detail/fork.hpp"
#include "veda/metrics/detail/series_store.hpp"
#include "veda/metrics/multiprocess.hpp"

namespace veda::multiprocess::detail {

// Options::pid_label of this process's enable() (false before it).
bool pid_label_default() noexcept;

// Thread-safety: allocate(), retire() and path() may be called from any
// thread; allocate() takes a fork-safe lock (so a child never inherits it
// held). The mapping is never unmapped: series record until the process ends.
class ProcessFile final : public veda::detail::SeriesStore {
 public:
  // Creates "<directory>/pyveda-<pid>-<random>.mp"; throws std::runtime_error
  // naming the path and the reason when it cannot.
  explicit ProcessFile(const Options& options);

  Cells allocate(const FamilyInfo& family, const std::vector<std::string>& label_values, std::size_t bytes) override;
  void retire(std::uint64_t record) noexcept override;

  std::string path() const;

  // In a child just after fork(): continues in a new file of the child's own,
  // mapped where the parent's was, with the same records and zeroed cells, so
  // every inherited series records into it from zero. If that fails, the
  // child records into private memory and says so on stderr.
  void after_fork_in_child() noexcept;

 private:
  std::string next_path() const;
  // Writes a record at the end and publishes it; returns its offset.
  std::uint64_t append(std::uint32_t kind, const std::string& key, std::size_t cell_bytes);

  const std::string directory_;
  const std::string service_;
  std::size_t capacity_;
  mutable veda::detail::ForkSafeMutex mutex_;
  std::string path_;
  int fd_ = -1;
  char* base_ = nullptr;
  std::uint64_t used_ = 0;  // FileHeader::used, kept here too (the child's copy is the fork's moment)
  std::unordered_map<std::string, std::uint64_t> families_;  // encoded FamilyInfo -> its record
};

}  // namespace veda::multiprocess::detail
