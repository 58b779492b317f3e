#!/usr/bin/env bash
# Prepares the Wine lane's machine and a FRESH Wine prefix set to Windows 10, headless.
#   scripts/wine/setup-prefix.sh [--prereqs-only | --skip-prereqs] [PREFIX]
#   (PREFIX default: $FLTMGR_WINEPREFIX or .cache/wine/prefix)
# 1. Prerequisites (Debian): wine, wine64, g++-mingw-w64-x86-64-posix, mingw-w64-x86-64-dev, and cmake +
#    ninja-build for scripts/build-win.js (cmake-js). apt-get update + install run only when one of them is
#    missing (and only as root); elsewhere a missing tool is an error.
# 2. Deletes PREFIX (only if it looks like a Wine prefix or is empty) and creates it: wineboot -i with no
#    display, Mono/Gecko installers disabled, WINEDEBUG=-all; then `winecfg /v win10`, checked.
# 3. Stops the prefix's wineserver (wineserver -k), also when a step fails.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DO_PREREQS=1
DO_PREFIX=1
case "${1:-}" in
  --prereqs-only) DO_PREFIX=0; shift ;;
  --skip-prereqs) DO_PREREQS=0; shift ;;
esac
PREFIX="${1:-${FLTMGR_WINEPREFIX:-$ROOT/.cache/wine/prefix}}"
case "$PREFIX" in /*) ;; *) PREFIX="$PWD/$PREFIX" ;; esac

log() { printf 'setup-prefix: %s\n' "$*" >&2; }

# ---- 1. prerequisites -------------------------------------------------------------------------------------
PACKAGES=(wine wine64 g++-mingw-w64-x86-64-posix mingw-w64-x86-64-dev cmake ninja-build)
missing=()
if [ "$DO_PREREQS" = 1 ] && command -v dpkg-query >/dev/null 2>&1; then
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      log "missing packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})"
      exit 1
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
for tool in wine wineboot wineserver x86_64-w64-mingw32-g++-posix x86_64-w64-mingw32-dlltool cmake; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool not found on PATH"; exit 1; }
done
[ "$DO_PREFIX" = 1 ] || exit 0

# ---- 2. a fresh prefix ------------------------------------------------------------------------------------
if [ -e "$PREFIX" ]; then
  if [ -f "$PREFIX/system.reg" ] || [ -z "$(ls -A "$PREFIX")" ]; then
    WINEPREFIX="$PREFIX" wineserver -k >/dev/null 2>&1 || true
    rm -rf "$PREFIX"
  else
    log "$PREFIX exists and is not a Wine prefix; refusing to delete it"
    exit 1
  fi
fi
mkdir -p "$(dirname "$PREFIX")"

export WINEPREFIX="$PREFIX" WINEDEBUG=-all WINEARCH=win64
# No Mono/Gecko download prompts; no display (wineboot and winecfg /v run headless).
export WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY
trap 'wineserver -k >/dev/null 2>&1 || true' EXIT

LOG="$(mktemp)"
start=$(date +%s)
if ! wineboot -i >"$LOG" 2>&1; then
  cat "$LOG" >&2; rm -f "$LOG"
  log "wineboot -i failed"
  exit 1
fi
wine winecfg /v win10 >"$LOG" 2>&1 || { cat "$LOG" >&2; rm -f "$LOG"; log "winecfg /v win10 failed"; exit 1; }
version="$(wine winecfg /v 2>"$LOG" | tr -d '\r\n' || true)"
rm -f "$LOG"
if [ "$version" != "win10" ]; then
  log "the prefix reports Windows version '$version', expected win10"
  exit 1
fi
[ -d "$PREFIX/drive_c/windows/system32" ] || { log "$PREFIX/drive_c/windows/system32 missing"; exit 1; }

# ---- 3. stop the prefix's wineserver (also done by the EXIT trap on failure) ----------------------------------
wineserver -k >/dev/null 2>&1 || true
trap - EXIT
log "prefix $PREFIX ready (win10, $(( $(date +%s) - start ))s)"
