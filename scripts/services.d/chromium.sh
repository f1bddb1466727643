# shellcheck shell=bash
# Finds Debian's `chromium` for the dashboard test (cmd/phasm,
# TestDashboardInHeadlessChromium) and exports its path as
# PHASM_TEST_CHROMIUM. scripts/test.sh sources this file (with
# `set -euo pipefail`); it can also be sourced by hand:
#
#   source scripts/services.d/chromium.sh && echo "$PHASM_TEST_CHROMIUM"
#
# - If PHASM_TEST_CHROMIUM is already set, it must name an executable.
# - Otherwise `chromium` is looked up on PATH and installed with apt-get
#   (Debian's package: nothing is downloaded from elsewhere) when missing.
# - When no browser can be had: with PHASM_REQUIRE_SERVICES=1 (as `make
#   test` sets) the sourcing shell fails; without it a warning is printed
#   and the test skips.

_phasm_chromium_fail() {
  echo "services.d/chromium.sh: $*" >&2
  if [ "${PHASM_REQUIRE_SERVICES:-}" = 1 ]; then
    return 1
  fi
  echo "services.d/chromium.sh: PHASM_REQUIRE_SERVICES is not 1: the dashboard test will skip" >&2
  return 0
}

_phasm_chromium_install() {
  echo "services.d/chromium.sh: no chromium found; installing Debian's chromium with apt-get" >&2
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "services.d/chromium.sh: not root and no sudo: cannot install chromium" >&2; return 1; }
    sudo="sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || { echo "services.d/chromium.sh: apt-get not found: install chromium by hand" >&2; return 1; }
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || { echo "services.d/chromium.sh: apt-get update failed" >&2; return 1; }
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 || { echo "services.d/chromium.sh: apt-get install chromium failed" >&2; return 1; }
}

_phasm_chromium_start() {
  if [ -n "${PHASM_TEST_CHROMIUM:-}" ]; then
    if [ -x "$PHASM_TEST_CHROMIUM" ]; then
      echo "services.d/chromium.sh: using PHASM_TEST_CHROMIUM=$PHASM_TEST_CHROMIUM from the environment" >&2
      return 0
    fi
    _phasm_chromium_fail "PHASM_TEST_CHROMIUM=$PHASM_TEST_CHROMIUM is not an executable"
    return
  fi
  local path
  path=$(command -v chromium 2>/dev/null || true)
  if [ -z "$path" ]; then
    _phasm_chromium_install || { _phasm_chromium_fail "chromium could not be installed"; return; }
    path=$(command -v chromium 2>/dev/null || true)
    [ -n "$path" ] || { _phasm_chromium_fail "chromium installed but not on PATH"; return; }
  fi
  export PHASM_TEST_CHROMIUM=$path
  echo "services.d/chromium.sh: $("$path" --version 2>/dev/null || echo chromium) at $path" >&2
}

_phasm_chromium_start || return 1
