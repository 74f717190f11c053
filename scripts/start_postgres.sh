#!/usr/bin/env bash
# Install PostgreSQL from Debian's packages if it is missing, then start a throwaway
# server on 127.0.0.1 for the tests. Idempotent: a running server is left as it is.
#   EMBEDLOOP_PG_PORT (default 55439), EMBEDLOOP_PG_DIR (default /tmp/embedloop-pg)
# Prints the SQLAlchemy URL of the server's "postgres" database on its last line.
set -euo pipefail
PORT="${EMBEDLOOP_PG_PORT:-55439}"
DIR="${EMBEDLOOP_PG_DIR:-/tmp/embedloop-pg}"

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
BIN="$(find_bin)"
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  echo "installing PostgreSQL from Debian packages..." >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
  BIN="$(find_bin)"
fi

# initdb and postgres refuse to run as root: run them as the 'postgres' user.
RUN=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home "$DIR" postgres
  RUN=(runuser -u postgres --)
fi

if "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  echo "postgresql+psycopg://postgres@127.0.0.1:${PORT}/postgres"
  exit 0
fi
mkdir -p "$DIR"
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
if [ ! -f "$DIR/data/PG_VERSION" ]; then
  "${RUN[@]}" "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
fi
"${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p ${PORT} -k ${DIR} -c fsync=off -c max_connections=200" start >&2
echo "postgresql+psycopg://postgres@127.0.0.1:${PORT}/postgres"
