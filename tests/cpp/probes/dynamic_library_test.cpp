// Tests for veda::detail::DynamicLibrary (probes/detail/dynamic_library.hpp),
// the dlopen/dlsym/dlclose owner behind GpuProbe and CudaProbe: loading a
// system library, missing symbols and libraries, close, keep_loaded, moves.
#include "probes/detail/dynamic_library.hpp"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <utility>

#include "support/test_support.hpp"

#ifndef VEDA_FAKE_CUDA
#error "VEDA_FAKE_CUDA (path of the fake CUDA library) must be defined by the build"
#endif

namespace veda {
namespace {

using detail::DynamicLibrary;
using test::contains;

constexpr const char* kLibm = "libm.so.6";
// A library of this build that nothing else in this test keeps open.
constexpr const char* kFake = VEDA_FAKE_CUDA_NO_ATTRIBUTE;

int sentinel() { return 42; }

bool is_mapped(const char* path) {
  void* handle = ::dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  ::dlclose(handle);
  return true;
}

TEST(DynamicLibraryTest, DefaultConstructedIsEmpty) {
  DynamicLibrary lib;
  EXPECT_FALSE(lib.loaded());
  EXPECT_EQ(lib.error(), "");
  EXPECT_EQ(lib.symbol("cos"), nullptr);
  lib.close();  // harmless
  EXPECT_FALSE(lib.loaded());
}

TEST(DynamicLibraryTest, LoadsASystemLibraryAndResolvesAFunction) {
  DynamicLibrary lib(kLibm);
  ASSERT_TRUE(lib.loaded()) << lib.error();
  EXPECT_EQ(lib.error(), "");
  EXPECT_NE(lib.symbol("cos"), nullptr);
  double (*cosine)(double) = nullptr;
  ASSERT_TRUE(lib.resolve("cos", cosine));
  ASSERT_NE(cosine, nullptr);
  EXPECT_EQ(cosine(0.0), 1.0);
}

TEST(DynamicLibraryTest, MissingSymbolResolvesToNull) {
  DynamicLibrary lib(kLibm);
  ASSERT_TRUE(lib.loaded()) << lib.error();
  EXPECT_EQ(lib.symbol("veda_no_such_symbol"), nullptr);
  int (*fn)() = &sentinel;  // non-null before
  EXPECT_FALSE(lib.resolve("veda_no_such_symbol", fn));
  EXPECT_EQ(fn, nullptr);
  EXPECT_TRUE(lib.loaded());  // a failed lookup leaves the library open
}

TEST(DynamicLibraryTest, RequireNamesTheFirstMissingSymbol) {
  DynamicLibrary lib(kLibm);
  ASSERT_TRUE(lib.loaded()) << lib.error();
  const char* missing = nullptr;
  double (*cosine)(double) = nullptr;
  double (*absent1)(double) = nullptr;
  double (*sine)(double) = nullptr;
  double (*absent2)(double) = nullptr;
  lib.require("cos", cosine, missing);
  EXPECT_EQ(missing, nullptr);
  lib.require("veda_missing_one", absent1, missing);
  lib.require("sin", sine, missing);
  lib.require("veda_missing_two", absent2, missing);
  ASSERT_NE(missing, nullptr);
  EXPECT_STREQ(missing, "veda_missing_one");
  EXPECT_NE(cosine, nullptr);
  EXPECT_NE(sine, nullptr);
  EXPECT_EQ(absent1, nullptr);
  EXPECT_EQ(absent2, nullptr);
}

TEST(DynamicLibraryTest, MissingLibraryGivesTheDlerrorText) {
  const std::string path = "/nonexistent/libveda_missing.so.1";
  DynamicLibrary lib(path);
  EXPECT_FALSE(lib.loaded());
  EXPECT_TRUE(contains(lib.error(), path)) << lib.error();
  EXPECT_TRUE(contains(lib.error(), "No such file or directory")) << lib.error();
  EXPECT_EQ(lib.symbol("cos"), nullptr);
}

TEST(DynamicLibraryTest, ErrorTextDoesNotLeakIntoTheNextLoad) {
  DynamicLibrary bad("libveda_missing_library.so");
  ASSERT_FALSE(bad.loaded());
  DynamicLibrary good(kLibm);
  EXPECT_TRUE(good.loaded());
  EXPECT_EQ(good.error(), "");
}

TEST(DynamicLibraryTest, DestructorAndCloseUnload) {
  if (is_mapped(kFake)) GTEST_SKIP() << kFake << " is already loaded in this process";
  {
    DynamicLibrary lib(kFake);
    ASSERT_TRUE(lib.loaded()) << lib.error();
    EXPECT_TRUE(is_mapped(kFake));
  }
  EXPECT_FALSE(is_mapped(kFake));

  DynamicLibrary lib(kFake);
  ASSERT_TRUE(lib.loaded()) << lib.error();
  lib.close();
  EXPECT_FALSE(lib.loaded());
  EXPECT_FALSE(is_mapped(kFake));
  lib.close();  // idempotent
}

TEST(DynamicLibraryTest, MovesTransferOwnership) {
  if (is_mapped(kFake)) GTEST_SKIP() << kFake << " is already loaded in this process";
  DynamicLibrary a(kFake);
  ASSERT_TRUE(a.loaded()) << a.error();
  DynamicLibrary b(std::move(a));
  EXPECT_FALSE(a.loaded());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_TRUE(b.loaded());
  EXPECT_NE(b.symbol("cuInit"), nullptr);

  DynamicLibrary c(kLibm);
  c = std::move(b);  // c's libm reference is dropped, the fake moves over
  EXPECT_FALSE(b.loaded());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(c.loaded());
  EXPECT_TRUE(is_mapped(kFake));
  c = DynamicLibrary();  // assigning an empty one closes
  EXPECT_FALSE(c.loaded());
  EXPECT_FALSE(is_mapped(kFake));
}

TEST(DynamicLibraryTest, KeepLoadedNeverUnloads) {
  if (is_mapped(kFake)) GTEST_SKIP() << kFake << " is already loaded in this process";
  {
    DynamicLibrary lib(kFake);
    ASSERT_TRUE(lib.loaded()) << lib.error();
    lib.keep_loaded();
    EXPECT_FALSE(lib.loaded());
  }
  EXPECT_TRUE(is_mapped(kFake));  // stays mapped for the rest of the process
}

TEST(DynamicLibraryTest, PathFromEnvironmentFallsBackWhenUnsetOrEmpty) {
  constexpr const char* kVar = "VEDA_DYNAMIC_LIBRARY_TEST_PATH";
  ::unsetenv(kVar);
  EXPECT_EQ(DynamicLibrary::path_from_env(kVar, "libfallback.so"), "libfallback.so");
  ::setenv(kVar, "", 1);
  EXPECT_EQ(DynamicLibrary::path_from_env(kVar, "libfallback.so"), "libfallback.so");
  ::setenv(kVar, "/opt/lib/libother.so", 1);
  EXPECT_EQ(DynamicLibrary::path_from_env(kVar, "libfallback.so"), "/opt/lib/libother.so");
  ::unsetenv(kVar);
}

}  // namespace
}  // namespace veda
