#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) and runs each for N seconds,
# starting from the committed seed corpus. Needs clang-14 and libclang-rt-14-dev (Debian).
#
#   bash native/test/fuzz/run.sh [SECONDS]        run every target SECONDS seconds (default 30)
#   bash native/test/fuzz/run.sh SECONDS TARGET   one target (fuzz_wire or fuzz_client)
#   bash native/test/fuzz/run.sh seeds            regenerate the committed seed corpus
#
# CXX (default clang++-14) and OUT (default build-fuzz) may be overridden. New inputs go to
# $OUT/corpus/<target>, crash/timeout inputs to $OUT/artifacts/; the committed corpus is only read.
# To replay one input: $OUT/<target> FILE
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${OUT:-$root/build-fuzz}"
cxx="${CXX:-clang++-14}"
mkdir -p "$out/artifacts"

compat="$root/native/compat"
sim="$root/native/sim"
flags=(-std=c++17 -pthread -g -O1 -fno-omit-frame-pointer -Wall -Wextra
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)

if [[ "${1:-}" == "seeds" ]]; then
  "$cxx" -std=c++17 -Wall -Wextra -Werror -O1 "$here/gen_seeds.cc" "$sim/wire.cc" -o "$out/gen_seeds"
  rm -rf "$here/corpus"
  "$out/gen_seeds" "$here/corpus"
  exit 0
fi

seconds="${1:-30}"
only="${2:-}"
targets=(fuzz_wire fuzz_client)
[[ -n "$only" ]] && targets=("$only")

build() {
  local t="$1"
  case "$t" in
    fuzz_wire)
      "$cxx" "${flags[@]}" -Werror "$here/fuzz_wire.cc" "$sim/manage.cc" "$sim/session.cc" "$sim/wire.cc" -o "$out/$t"
      ;;
    fuzz_client)
      # The product files are built without -Werror here: gcc's -Werror build in native/test/run.sh and
      # node-gyp are the warning gates for them.
      "$cxx" "${flags[@]}" -Werror -c "$here/fuzz_client.cc" -o "$out/fuzz_client.o"
      "$cxx" "${flags[@]}" "$out/fuzz_client.o" "$compat/compat_fltlib.cc" "$compat/compat_kernel32.cc" \
        "$sim/session.cc" "$sim/wire.cc" -o "$out/$t"
      ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
}

summary=()
status=0
for t in "${targets[@]}"; do
  echo "== build: $t"
  build "$t"
  mkdir -p "$out/corpus/$t"
  log="$out/$t.log"
  echo "== run: $t for ${seconds}s (log: $log)"
  set +e
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "$out/$t" "$out/corpus/$t" "$here/corpus/$t" \
      -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
      -artifact_prefix="$out/artifacts/$t-" >"$log" 2>&1
  rc=$?
  set -e
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  corpus="$(ls "$out/corpus/$t" | wc -l)"
  if [[ $rc -ne 0 ]]; then
    status=1
    echo "!! $t FAILED (exit $rc); the end of its log:"
    tail -n 60 "$log"
    ls -1 "$out/artifacts" | sed "s|^|   artifact: $out/artifacts/|"
    summary+=("$t: FAILED after ${execs:-?} executions")
  else
    summary+=("$t: ${execs:-?} executions in ${seconds}s, no failure (working corpus: $corpus new inputs)")
  fi
done

echo
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit $status
