#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on loopback for the label-store tests and print its URL.
# Installs Debian's postgresql package if no server binaries are found. Usage:
#   export PIXCTX_TEST_POSTGRES_URL="$(.ci/postgres.sh)"
set -euo pipefail
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bindir" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
fi
[ -n "$bindir" ] || { echo "no PostgreSQL server found" >&2; exit 1; }
data=${PIXCTX_PG_DATA:-$(mktemp -d /tmp/pixctx-pg.XXXXXX)}  # the caller stops it: pg_ctl -D "$data/db" stop
port=${PIXCTX_PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
as_pg=()
if [ "$(id -u)" = 0 ]; then  # the server refuses to run as root
  chown postgres "$data"
  as_pg=(runuser -u postgres --)
fi
"${as_pg[@]}" "$bindir/initdb" -D "$data/db" -U pixctx --auth=trust >/dev/null
"${as_pg[@]}" "$bindir/pg_ctl" -D "$data/db" -l "$data/log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data -c fsync=on" start >/dev/null
"$bindir/createdb" -h 127.0.0.1 -p "$port" -U pixctx pixctx_test >&2
echo "postgresql+psycopg://pixctx@127.0.0.1:$port/pixctx_test"
