#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it.
#
# - go vet and a gofmt check;
# - the pure core (machine, its simulator) and the actor runtime under -race;
# - everything else without -race;
# - service-backed suites (PostgreSQL) run against services this script
#   starts; PHASM_REQUIRE_SERVICES=1 makes a missing service a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

export PHASM_REQUIRE_SERVICES=1
GO=${GO:-go}

unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
$GO vet ./...

for svc in scripts/services.d/*.sh; do
  [ -e "$svc" ] || continue
  # shellcheck disable=SC1090
  source "$svc"
done

race_pkgs=$($GO list ./machine/... ./actor/... 2>/dev/null || true)
other_pkgs=$($GO list ./... | grep -v -E '/(machine|actor)(/|$)' || true)

if [ -n "$race_pkgs" ]; then
  $GO test -race -count=1 $race_pkgs
fi
if [ -n "$other_pkgs" ]; then
  $GO test -count=1 $other_pkgs
fi
# The fault suite last: three nodes in Docker under a seeded nemesis
# (about 5 minutes). It fails, never skips, without docker.
$GO vet -tags faults ./cmd/phasm/internal/faults/
make --no-print-directory faults-short GO="$GO"
echo "make test: all passed"
