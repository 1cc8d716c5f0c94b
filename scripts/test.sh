#!/usr/bin/env bash
# README command 2: provision what is missing, then run the whole test suite against the real
# Docker engine and Redis. Extra arguments go to pytest. Fails if any sandbox container is left.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/provision.sh"
cd "$repo"
echo "==> running the test suite"
# Every container this run makes carries this owner label, so the leak check below is exact.
export DOCKER_EXECUTOR_OWNER="test-run-$$"
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
