# shellcheck shell=bash
# Starts a throwaway PostgreSQL server for the service-backed test suites and
# exports PHASM_TEST_POSTGRES_DSN. scripts/test.sh sources this file (with
# `set -euo pipefail`); it can also be sourced by hand:
#
#   bash -c 'set -euo pipefail; source scripts/services.d/postgres.sh; psql "$PHASM_TEST_POSTGRES_DSN" -c "select 1"'
#
# - If PHASM_TEST_POSTGRES_DSN is already set, that server is used as is.
# - Otherwise the server binaries are looked up in /usr/lib/postgresql/*/bin
#   (then on PATH) and installed with apt-get when missing.
# - A fresh cluster is created with initdb in a new temporary directory
#   (owned by the `postgres` OS user when running as root: the server
#   refuses to run as root), started on a free 127.0.0.1 port with trust
#   authentication, and a database is created.
# - An EXIT trap stops the server and removes the directory; an EXIT trap
#   that was already set still runs afterwards.
# Any failure is reported on stderr and makes the sourcing shell fail.

_phasm_pg_die() {
  echo "services.d/postgres.sh: $*" >&2
  if [ -n "${_PHASM_PG_DIR:-}" ] && [ -f "$_PHASM_PG_DIR/server.log" ]; then
    echo "--- server log ---" >&2
    tail -n 30 "$_PHASM_PG_DIR/server.log" >&2 || true
  fi
  return 1
}

# _phasm_pg_bindir prints the directory holding initdb and pg_ctl.
_phasm_pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

_phasm_pg_install() {
  echo "services.d/postgres.sh: no PostgreSQL server found; installing it with apt-get" >&2
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || _phasm_pg_die "not root and no sudo: cannot install postgresql" || return 1
    sudo="sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || _phasm_pg_die "apt-get not found: install PostgreSQL (initdb, pg_ctl) by hand" || return 1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || _phasm_pg_die "apt-get update failed" || return 1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 || _phasm_pg_die "apt-get install postgresql failed" || return 1
}

# _phasm_pg_as runs a command as the server's OS user.
_phasm_pg_as() {
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

_phasm_pg_port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

_phasm_pg_cleanup() {
  if [ -n "${_PHASM_PG_DIR:-}" ] && [ -d "$_PHASM_PG_DIR" ]; then
    if [ -f "$_PHASM_PG_DIR/data/postmaster.pid" ]; then
      _phasm_pg_as "$_PHASM_PG_BIN/pg_ctl" -D "$_PHASM_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$_PHASM_PG_DIR"
  fi
}

_phasm_pg_start() {
  if [ -n "${PHASM_TEST_POSTGRES_DSN:-}" ]; then
    echo "services.d/postgres.sh: using PHASM_TEST_POSTGRES_DSN from the environment" >&2
    return 0
  fi
  _PHASM_PG_BIN=$(_phasm_pg_bindir) || { _phasm_pg_install || return 1; _PHASM_PG_BIN=$(_phasm_pg_bindir) || _phasm_pg_die "PostgreSQL installed but initdb/pg_ctl not found" || return 1; }
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || _phasm_pg_die "running as root but there is no 'postgres' OS user to run the server" || return 1
  fi

  # Register the cleanup before creating anything, keeping an existing trap.
  local prev
  prev=$(trap -p EXIT)
  _PHASM_PG_PREV_TRAP=""
  if [ -n "$prev" ]; then
    eval "set -- $prev"
    _PHASM_PG_PREV_TRAP=$3
  fi
  # shellcheck disable=SC2016
  trap '_phasm_pg_cleanup; eval "$_PHASM_PG_PREV_TRAP"' EXIT

  _PHASM_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/phasm-pg.XXXXXX") || _phasm_pg_die "mktemp failed" || return 1
  chmod 755 "$_PHASM_PG_DIR"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$_PHASM_PG_DIR" || _phasm_pg_die "chown postgres $_PHASM_PG_DIR failed" || return 1
  fi
  _phasm_pg_as "$_PHASM_PG_BIN/initdb" -D "$_PHASM_PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-locale >"$_PHASM_PG_DIR/initdb.log" 2>&1 ||
    { cat "$_PHASM_PG_DIR/initdb.log" >&2; _phasm_pg_die "initdb failed"; return 1; }

  local port="" try
  for try in $(seq 1 50); do
    try=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if _phasm_pg_port_free "$try"; then
      port=$try
      break
    fi
  done
  [ -n "$port" ] || _phasm_pg_die "no free port found on 127.0.0.1" || return 1

  # -w waits until the server accepts connections (bounded by -t seconds).
  _phasm_pg_as "$_PHASM_PG_BIN/pg_ctl" -D "$_PHASM_PG_DIR/data" -l "$_PHASM_PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $_PHASM_PG_DIR -c max_connections=200" start >/dev/null ||
    _phasm_pg_die "pg_ctl start failed" || return 1
  _phasm_pg_as "$_PHASM_PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres phasm_test ||
    _phasm_pg_die "createdb failed" || return 1

  export PHASM_TEST_POSTGRES_DSN="postgres://postgres@127.0.0.1:$port/phasm_test?sslmode=disable"
  echo "services.d/postgres.sh: PostgreSQL ($("$_PHASM_PG_BIN/pg_ctl" --version)) on 127.0.0.1:$port, data in $_PHASM_PG_DIR" >&2
}

_phasm_pg_start || return 1
