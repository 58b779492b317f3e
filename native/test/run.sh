#!/usr/bin/env bash
# Builds and runs the standalone compat-layer tests twice: ASan+UBSan, then TSan.
# Usage: bash native/test/run.sh [test-name]     (CXX and OUT may be overridden)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${OUT:-$root/build-native-test}"
cxx="${CXX:-g++}"
mkdir -p "$out"

product=(
  "$root/native/compat/compat_kernel32.cc"
  "$root/native/compat/compat_fltlib.cc"
  "$root/native/compat/compat_manage.cc"
  "$root/native/sim/manage.cc"
  "$root/native/sim/session.cc"
  "$root/native/sim/wire.cc"
)
srcs=("${product[@]}" "$here/compat_test.cc" "$here/manage_test.cc")
common=(-std=c++17 -pthread -Wall -Wextra -Werror -Wshadow -g -O1 -fno-omit-frame-pointer)

# The product files must also build warning-free without sanitizers (node-gyp uses -Werror).
for f in "${product[@]}"; do
  "$cxx" -std=c++17 -Wall -Wextra -Werror -Wshadow -O2 -c "$f" -o "$out/$(basename "$f" .cc).o"
done
# native/sim is shared with the MSVC build (/W4 /we4244 /we4267): keep it free of narrowing conversions.
for f in "$root/native/sim/wire.cc" "$root/native/sim/session.cc" "$root/native/sim/manage.cc"; do
  "$cxx" -std=c++17 -Wall -Wextra -Werror -Wshadow -Wconversion -Wsign-conversion -c "$f" \
    -o "$out/$(basename "$f" .cc)-conv.o"
done

echo "== build: address,undefined"
"$cxx" "${common[@]}" -fsanitize=address,undefined -fno-sanitize-recover=undefined "${srcs[@]}" \
  -o "$out/compat_test_asan"
echo "== run: address,undefined"
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" "$out/compat_test_asan" "$@"

# The management record decoders (native/src/manage_records.cc) against malformed records: ASan catches any read
# outside the returned bytes. Shared with the MSVC build too, so also free of narrowing conversions.
"$cxx" -std=c++17 -Wall -Wextra -Werror -Wshadow -Wconversion -Wsign-conversion -c "$root/native/src/manage_records.cc" \
  -o "$out/manage_records-conv.o"
echo "== build+run: manage_records_test (address,undefined)"
"$cxx" "${common[@]}" -fsanitize=address,undefined -fno-sanitize-recover=undefined \
  "$root/native/src/manage_records.cc" "$here/manage_records_test.cc" -o "$out/manage_records_test_asan"
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  "$out/manage_records_test_asan"

echo "== build: thread"
"$cxx" "${common[@]}" -fsanitize=thread "${srcs[@]}" -o "$out/compat_test_tsan"
echo "== run: thread"
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" "$out/compat_test_tsan" "$@"

echo "native/test: all builds passed"
