#!/usr/bin/env bash
# Builds the native benchmark client from the addon's own core sources (no Node-API) + the compat layer.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/bench
g++ -std=c++17 -O2 -Wall -Wextra -Werror -pthread -Inative/src \
  bench/native/client.cc native/src/receive_loop.cc native/src/hresult.cc native/src/fltapi.cc \
  native/compat/compat_kernel32.cc native/compat/compat_fltlib.cc native/sim/session.cc native/sim/wire.cc \
  -o build/bench/fltmgr-bench-client
echo build/bench/fltmgr-bench-client
