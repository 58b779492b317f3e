#!/usr/bin/env bash
# Builds and runs the kernel harness's own C++ tests (native/kernel/test/*_test.cc) under ASan + UBSan.
# Each test file names the harness sources it links in a line "// kh-test-sources: core.cc pool.cc ...".
# Usage: bash native/kernel/test/run.sh [name_test ...]     (CXX, CC and OUT may be overridden)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kernel="$(cd "$here/.." && pwd)"
root="$(cd "$kernel/../.." && pwd)"
out="${OUT:-$root/build-kernel-test}"
cxx="${CXX:-g++}"
cc="${CC:-gcc}"
mkdir -p "$out"

# The flags every harness build uses (scripts/kernel-image.js has the same list for images).
san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1)
cxxflags=(-std=c++17 -fshort-wchar -pthread -Wall -Wextra -Werror -Wshadow -I"$kernel/include" -I"$kernel/src")
cflags=(-std=gnu11 -fshort-wchar -Wall -Wextra -Werror -Wno-multichar -I"$kernel/include" -I"$kernel/src")

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  for f in "$here"/*_test.cc; do tests+=("$(basename "$f" .cc)"); done
fi

for t in "${tests[@]}"; do
  src="$here/$t.cc"
  read -r -a names <<<"$(sed -n 's|^// kh-test-sources: ||p' "$src" | head -1)"
  objs=()
  for n in "${names[@]}"; do
    o="$out/$t-${n%.*}.o"
    case "$n" in
      *.c) "$cc" "${cflags[@]}" "${san[@]}" -c "$kernel/src/$n" -o "$o" ;;
      *) "$cxx" "${cxxflags[@]}" "${san[@]}" -c "$kernel/src/$n" -o "$o" ;;
    esac
    objs+=("$o")
  done
  echo "== build: $t"
  "$cxx" "${cxxflags[@]}" "${san[@]}" "$src" "${objs[@]}" -o "$out/$t"
  echo "== run: $t"
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" "$out/$t"
done
echo "native/kernel/test: all passed"
