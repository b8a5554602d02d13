// veda::detail::DynamicLibrary: dlopen/dlsym/dlclose behind one RAII owner.
#include "probes/detail/dynamic_library.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <utility>

namespace veda::detail {

DynamicLibrary::DynamicLibrary(const std::string& path) {
  ::dlerror();  // clear any stale message
  handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) {
    const char* text = ::dlerror();
    error_ = text != nullptr ? std::string(text) : path + ": unknown dlopen error";
  }
}

DynamicLibrary::~DynamicLibrary() { close(); }

DynamicLibrary::DynamicLibrary(DynamicLibrary&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)), error_(std::move(other.error_)) {}

DynamicLibrary& DynamicLibrary::operator=(DynamicLibrary&& other) noexcept {
  if (this != &other) {
    close();
    handle_ = std::exchange(other.handle_, nullptr);
    error_ = std::move(other.error_);
  }
  return *this;
}

void* DynamicLibrary::symbol(const char* name) const noexcept {
  return handle_ != nullptr ? ::dlsym(handle_, name) : nullptr;
}

void DynamicLibrary::close() noexcept {
  if (handle_ != nullptr) ::dlclose(handle_);
  handle_ = nullptr;
}

std::string DynamicLibrary::path_from_env(const char* env_var, const char* fallback) {
  const char* value = std::getenv(env_var);
  return value != nullptr && *value != '\0' ? std::string(value) : std::string(fallback);
}

}  // namespace veda::detail
