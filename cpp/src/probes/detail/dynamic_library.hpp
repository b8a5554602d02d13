// veda::detail::DynamicLibrary: one shared library opened with dlopen, its
// symbols looked up with dlsym, and dlclose when the owner lets it go. The
// lifecycle GpuProbe (NVML) and CudaProbe (the CUDA driver) share.
#pragma once

#include <string>
#include <type_traits>

namespace veda::detail {

// Owns one dlopen handle (RTLD_NOW | RTLD_LOCAL). Move-only; the destructor
// calls dlclose unless the handle was given up with keep_loaded().
//
// Thread-safety: distinct objects are independent (dlopen, dlsym and dlclose
// are thread-safe); one object needs external synchronisation when it is
// modified (close(), keep_loaded(), assignment) while used elsewhere.
class DynamicLibrary {
 public:
  // An empty object: loaded() is false and error() is empty.
  DynamicLibrary() noexcept = default;

  // Loads `path` (a file path or a name the dynamic linker searches for).
  // On failure the object is empty and error() holds dlerror's message, or
  // "<path>: unknown dlopen error" when there is none. Throws only
  // std::bad_alloc, while building that message.
  explicit DynamicLibrary(const std::string& path);

  // Unloads the library (dlclose) if this object still holds it.
  ~DynamicLibrary();

  DynamicLibrary(DynamicLibrary&& other) noexcept;
  // Closes the library held so far, then takes over `other`'s.
  DynamicLibrary& operator=(DynamicLibrary&& other) noexcept;
  DynamicLibrary(const DynamicLibrary&) = delete;
  DynamicLibrary& operator=(const DynamicLibrary&) = delete;

  // True while this object holds an open library.
  bool loaded() const noexcept { return handle_ != nullptr; }

  // Why the constructor could not load the library; empty after a success.
  const std::string& error() const noexcept { return error_; }

  // The address of `name` in the library, or nullptr when the library lacks
  // it or none is loaded.
  void* symbol(const char* name) const noexcept;

  // Looks `name` up and stores it in the function pointer `slot` (nullptr
  // when missing). Returns whether it was found.
  template <typename Fn>
  bool resolve(const char* name, Fn& slot) const noexcept {
    static_assert(std::is_pointer_v<Fn> && std::is_function_v<std::remove_pointer_t<Fn>>,
                  "resolve() fills a function pointer");
    slot = reinterpret_cast<Fn>(symbol(name));
    return slot != nullptr;
  }

  // resolve() for an entry point the caller cannot do without: when it is
  // missing and `first_missing` is still null, `first_missing` becomes `name`
  // (a string literal or other storage that outlives the caller's use), so
  // after a series of calls it names the first one that failed.
  template <typename Fn>
  void require(const char* name, Fn& slot, const char*& first_missing) const noexcept {
    if (!resolve(name, slot) && first_missing == nullptr) first_missing = name;
  }

  // Unloads the library now (dlclose); afterwards loaded() is false. Function
  // pointers taken from it must no longer be called. Idempotent.
  void close() noexcept;

  // Gives up the handle without dlclose: the library stays mapped for the
  // rest of the process (for libraries that cannot be unloaded safely once
  // used, or an owner that must not unload at exit). Afterwards loaded() is
  // false.
  void keep_loaded() noexcept { handle_ = nullptr; }

  // The library to load: `$<env_var>` when set and non-empty, else `fallback`.
  static std::string path_from_env(const char* env_var, const char* fallback);

 private:
  void* handle_ = nullptr;
  std::string error_;
};

}  // namespace veda::detail
