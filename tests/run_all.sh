#!/usr/bin/env bash
# Installs PyVeda with its test extra and runs every test: the C++ suite under
# ctest (a -Werror build, then ThreadSanitizer and AddressSanitizer builds), the
# out-of-tree find_package consumer, and pytest.
#
#   bash tests/run_all.sh            # everything
#   VEDA_SKIP_SANITIZERS=1 bash tests/run_all.sh   # skip the two sanitizer builds
#
# Needs python3 (>= 3.9), a C++17 compiler, and for full coverage the Debian
# packages prometheus (promtool), libgtest-dev and libbenchmark-dev
# (.ci/run installs them).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="${PYTHON:-python3}"
jobs="$(nproc 2>/dev/null || echo 2)"

step() { printf '\n==> %s (%s)\n' "$*" "$(date +%T)"; }

step "installing build tools and pyveda[test]"
"$python" -m pip install --quiet --upgrade pip
"$python" -m pip install --quiet "cmake>=3.18" ninja nanobind
"$python" -m pip install --quiet ".[test]"

ctest_build() {  # ctest_build <dir> <cmake options...>
  local dir="$1"
  shift
  cmake -S "$repo" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVEDA_BUILD_TESTS=ON "$@" >/dev/null
  cmake --build "$dir" --parallel "$jobs"
  ctest --test-dir "$dir" --output-on-failure --parallel "$jobs"
}

step "C++ tests and the bindings (-Wall -Wextra -Werror, benchmark smoke run)"
bench=OFF
if [ -f /usr/include/benchmark/benchmark.h ] || [ -n "${benchmark_DIR:-}" ]; then bench=ON; fi
ctest_build build/ctest -DVEDA_WERROR=ON -DVEDA_BUILD_BENCH="$bench" \
  -DVEDA_BUILD_PYTHON=ON -DPython_EXECUTABLE="$(command -v "$python")"

if [ -z "${VEDA_SKIP_SANITIZERS:-}" ]; then
  # -O1 with line tables only (the sanitizers' advice) compiles in about half
  # the time of RelWithDebInfo; asserts stay on (no NDEBUG in Debug).
  sanitizer_flags=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" "-DCMAKE_C_FLAGS_DEBUG=-O1 -g1")
  step "C++ tests under ThreadSanitizer"
  ctest_build build/ctest-tsan -DVEDA_TSAN=ON "${sanitizer_flags[@]}"
  step "C++ tests under AddressSanitizer + UBSan"
  ctest_build build/ctest-asan -DVEDA_ASAN=ON "${sanitizer_flags[@]}"
fi

step "native consumer: find_package(pyveda) against an installed prefix"
bash tests/consumer/run.sh

step "pytest"
"$python" -m pytest -ra tests/python
