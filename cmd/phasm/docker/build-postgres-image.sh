#!/usr/bin/env bash
# Builds a local PostgreSQL image (default tag phasm-postgres:15) for
# docker-compose.yml without pulling anything: a minimal Debian root file
# system with the postgresql package is made with debootstrap (from
# Debian's packages, through the host's apt configuration) and imported
# with `docker import`. Needs root (debootstrap) and a few minutes.
set -euo pipefail
tag=${1:-phasm-postgres:15}
suite=${PHASM_PG_SUITE:-bookworm}
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
fi
root=$(mktemp -d "${TMPDIR:-/tmp}/phasm-pgroot.XXXXXX")
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=postgresql "$suite" "$root"
# The entry point: initialise the cluster on first start (trust auth inside
# the compose network), then run the server in the foreground.
cat > "$root/usr/local/bin/phasm-postgres" <<'SH'
#!/bin/sh
set -e
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
export PGDATA=${PGDATA:-/var/lib/phasm-postgres/data}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  "$bin/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
  printf 'host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n' >> "$PGDATA/pg_hba.conf"
  "$bin/pg_ctl" -D "$PGDATA" -w -o "-c listen_addresses=127.0.0.1" start >/dev/null
  "$bin/createdb" -U postgres "${POSTGRES_DB:-phasm}"
  "$bin/pg_ctl" -D "$PGDATA" -w stop >/dev/null
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c max_connections=200
SH
chmod 755 "$root/usr/local/bin/phasm-postgres"
mkdir -p "$root/var/lib/phasm-postgres"
chroot "$root" chown -R postgres:postgres /var/lib/phasm-postgres
tar -C "$root" -c . | docker import \
  -c 'USER postgres' -c 'ENV PGDATA=/var/lib/phasm-postgres/data' -c 'EXPOSE 5432' \
  -c 'ENTRYPOINT ["/usr/local/bin/phasm-postgres"]' - "$tag"
echo "built image $tag"
