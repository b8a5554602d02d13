// veda::multiprocess: one service's metrics across its worker processes
// (gunicorn, uvicorn, Celery prefork, multiprocessing), recorded in shared
// memory and rendered as one aggregate by any of them.
//
// Each process records into a file of its own in the directory,
// "pyveda-<pid>-<instance>.mp", mapped into memory: a series' cells
// (veda/metrics/detail/cells.hpp) live there, so recording costs what it
// costs in process memory and no lock is taken. A child made by fork()
// continues in a new file of its own whose series start from zero (its
// parent's totals stay the parent's). A process holds a shared flock() on
// its file for as long as it lives, so a reader tells a dead process (even
// one killed with SIGKILL, even when its pid is in use again) from a live
// one. aggregate() folds the files of dead processes into one archive
// ("pyveda-archive.bin") and deletes them, so the directory holds one file
// per live process plus the archive however many workers came and went.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veda/metrics/registry.hpp"

namespace veda::multiprocess {

struct Options {
  std::string directory;
  // Written in each process's file. Files of another service in the same
  // directory are left out of the aggregate with a warning; empty: unknown
  // (never compared).
  std::string service;
  // Room in each process's file (address space and a sparse file; only the
  // pages the series use take memory or disk). A full file makes the next
  // new series throw std::length_error.
  std::size_t file_bytes = std::size_t{256} << 20;
  // Per-process series: the aggregate this process renders keeps every
  // process's series apart under a "pid" label (as the "all" gauge modes
  // do) instead of summing them; dead processes' stay, per pid, in the
  // archive. Give every process of the service the same setting.
  bool pid_label = false;
};

// Bytes a process's file takes per series (without its label values and
// the family's description, a few hundred bytes more): a counter records
// into one cache line per thread slot, a histogram also into its buckets;
// both have their exemplar slots (detail::kSharedExemplarBytes each).
std::size_t counter_series_bytes() noexcept;
std::size_t gauge_series_bytes() noexcept;
std::size_t histogram_series_bytes(std::size_t classic_bounds) noexcept;

// Makes every family created from now on in this process (and in the
// children it forks) record into this process's file in
// options.directory, and the default registry render the aggregate
// (Registry::set_multiprocess_directory()). Families made earlier stay in
// this process only. Throws std::invalid_argument, naming the directory,
// when it does not exist, is not a directory, or when this process
// already records into another directory; std::runtime_error, naming the
// file and the reason, when the file cannot be created (a directory that
// is not writable, a full disk). Calling it again with the same directory
// does nothing.
void enable(const Options& options);

// Whether enable() has run in this process (or in the parent it forked from).
bool enabled() noexcept;
// The directory enable() was given; empty when not enabled.
std::string directory();
// This process's own file; empty when not enabled.
std::string process_file();

struct Aggregate {
  // The families of every process, in the order first seen (archive, then
  // files in name order), their series summed: counters and histograms
  // exactly (buckets merged), gauges by FamilyInfo::multiprocess_mode (the
  // "all" modes add a "pid" label); per exemplar slot, the exemplar any
  // process recorded last.
  std::vector<FamilySnapshot> families;
  // Files left out, named with the reason: not a PyVeda file, damaged or
  // truncated, another service's, a metric defined differently from
  // another process's. Also queued for take_warnings().
  std::vector<std::string> warnings;
  std::size_t live_processes = 0;
  std::size_t folded_processes = 0;  // dead processes folded into the archive by this call
};

// The aggregate of every process that has recorded into `directory`. Takes
// the directory's lock ("pyveda.lock") to fold dead processes' files into
// the archive first. Throws std::runtime_error naming the path when the
// directory cannot be read, the lock is held by another process for more
// than 10 s, or the archive cannot be written.
// With `pid_label` (default: Options::pid_label of this process, else
// false), every series keeps a "pid" label instead of being summed.
Aggregate aggregate(const std::string& directory);
Aggregate aggregate(const std::string& directory, bool pid_label);

// Folds the files of process `pid` into the archive now, if it has exited
// (gunicorn's child_exit hook); aggregate() does it anyway for every dead
// process it notices. A live process's file is left alone, so a pid
// reused by a new process is harmless. Returns the number of files folded.
std::size_t mark_process_dead(const std::string& directory, std::int64_t pid);

// Warnings aggregate() gave since the last call (at most 100 kept), for a
// caller that reports them (the Python facade turns them into warnings).
std::vector<std::string> take_warnings();

}  // namespace veda::multiprocess
