#!/usr/bin/env bash
# README command 2: provision what is missing, run the static checks (scripts/lint.sh: ruff, mypy,
# import contracts), then run the whole test suite against the real Docker engine, Redis and
# PostgreSQL. Extra arguments go to pytest. Fails if any sandbox container is left.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/provision.sh"
cd "$repo"
bash "$repo/scripts/lint.sh" || { echo "error: the static checks failed (above), so the tests did not run" >&2; exit 1; }
echo "==> running the test suite"
# Every container this run makes carries this owner label, so the leak check below is exact.
export DOCKER_EXECUTOR_OWNER="test-run-$$"

# A throwaway PostgreSQL cluster for the gradebook's tests, like Redis: initdb into a temporary
# folder as the postgres user (PostgreSQL refuses root), pg_ctl start on a free loopback port;
# stopped and removed when the tests end. Tests that kill PostgreSQL start clusters of their own.
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$pg_bin/pg_ctl" ] || { echo "error: PostgreSQL is missing after provisioning" >&2; exit 1; }
pg_root="$(mktemp -d /tmp/exec-test-pg-XXXXXX)"
chown postgres: "$pg_root"
pg_port="$("$repo/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
stop_postgres() {
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_root/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_root"
}
trap stop_postgres EXIT
echo "==> starting a throwaway PostgreSQL cluster on 127.0.0.1:$pg_port"
runuser -u postgres -- "$pg_bin/initdb" -D "$pg_root/data" -U postgres --auth=trust -E UTF8 \
  --no-sync >"$pg_root/initdb.log" 2>&1 || { cat "$pg_root/initdb.log" >&2; exit 1; }
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_root/data" -l "$pg_root/postgres.log" -w -t 60 \
  -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $pg_root -c fsync=off" start >/dev/null \
  || { tail -n 20 "$pg_root/postgres.log" >&2; exit 1; }
export JUPYTER_EXEC_EXT_TEST_POSTGRES="postgresql+psycopg://postgres@127.0.0.1:$pg_port/postgres"

bash "$repo/scripts/lint-js.sh"  # the lab extension's ESLint and Prettier: a finding fails the run
status=0
"$repo/.venv/bin/python" -m pytest -ra "$@" || status=$?
left="$(docker ps -aq --filter "label=jupyter-exec-ext.owner=$DOCKER_EXECUTOR_OWNER" | wc -l)"
if [ "$left" -gt 0 ]; then
  echo "error: $left sandbox container(s) left on the engine after the tests" >&2
  docker ps -a --filter "label=jupyter-exec-ext.owner=$DOCKER_EXECUTOR_OWNER" >&2
  status=1
else
  echo "==> no sandbox containers left on the engine"
fi
exit "$status"
