#!/usr/bin/env bash
# Optimised build of the compat layer + a throughput benchmark against the C++ fake simulator.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${OUT:-$root/build-native-test}"
mkdir -p "$out"
"${CXX:-g++}" -std=c++17 -pthread -O2 -Wall -Wextra -Werror -Wshadow \
  "$root/native/compat/compat_kernel32.cc" "$root/native/compat/compat_fltlib.cc" "$root/native/sim/session.cc" \
  "$root/native/sim/wire.cc" \
  "$here/compat_bench.cc" -o "$out/compat_bench"
"$out/compat_bench"
