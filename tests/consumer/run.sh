#!/usr/bin/env bash
# Installs the PyVeda core into a temporary prefix, builds tests/consumer
# against it with find_package(pyveda), runs it and checks its exposition.
# Usage: bash tests/consumer/run.sh   (set KEEP=1 to keep the temporary tree)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/pyveda-consumer.XXXXXX")"
if [[ "${KEEP:-0}" != 1 ]]; then
  trap 'rm -rf "${tmp}"' EXIT
fi

generator=()
if command -v ninja > /dev/null 2>&1; then
  generator=(-G Ninja)
fi
jobs="$(nproc 2> /dev/null || echo 2)"

# run <log name> <command...>: quiet on success, the log's tail on failure.
run() {
  local log="${tmp}/$1.log"
  shift
  if ! "$@" > "${log}" 2>&1; then
    echo "FAIL: $*" >&2
    tail -n 40 "${log}" >&2
    exit 1
  fi
}

echo "== install the core into ${tmp}/prefix"
run core-configure cmake -S "${repo}" -B "${tmp}/build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DVEDA_BUILD_TESTS=OFF -DVEDA_BUILD_BENCH=OFF \
  -DVEDA_BUILD_PYTHON=OFF -DCMAKE_INSTALL_PREFIX="${tmp}/prefix"
run core-build cmake --build "${tmp}/build" --parallel "${jobs}"
run core-install cmake --install "${tmp}/build"
test -f "${tmp}/prefix/include/veda/metrics.hpp"

echo "== build the consumer against the prefix (no access to the source tree)"
run consumer-configure cmake -S "${here}" -B "${tmp}/consumer" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="${tmp}/prefix"
run consumer-build cmake --build "${tmp}/consumer" --parallel "${jobs}"

echo "== run it"
output="$("${tmp}/consumer/pyveda_consumer")"
printf '%s\n' "${output}"

expected=(
  '# TYPE consumer_requests_total counter'
  'consumer_requests_total{method="GET"} 3'
  'consumer_requests_total{method="POST"} 1'
  '# TYPE consumer_queue_length gauge'
  'consumer_queue_length 5'
  '# TYPE consumer_latency_seconds summary'
  'consumer_latency_seconds{quantile="0.5"} 0.25'
  'consumer_latency_seconds{quantile="0.99"} 0.25'
  'consumer_latency_seconds_sum 2.5'
  'consumer_latency_seconds_count 10'
  '# TYPE pyveda_tasks_executed_total counter'
  'pyveda_tasks_executed_total 1000'
  'pyveda_tasks_failed_total 10'
  'pyveda_latency_ms_count 1000'
  'pyveda_tasks_pending 0'
  '# TYPE consumer_requests counter'
  '# EOF'
  'spans 1 batch 32 otlp_bytes_nonzero 1'
)
missing=0
for line in "${expected[@]}"; do
  if ! grep -qxF -- "${line}" <<< "${output}"; then
    echo "missing line: ${line}" >&2
    missing=1
  fi
done
if [[ "${missing}" != 0 ]]; then
  echo "FAIL: consumer output lacks expected metric lines" >&2
  exit 1
fi
echo "OK: find_package(pyveda) consumer works"
