#!/usr/bin/env bash
# README command 1: provision what is missing, then start JupyterLab with the extension.
# Student mode (default): brings the students' workspace (workspace/, or JUPYTER_EXEC_EXT_WORKSPACE)
# up to date with released copies of exercises/ and serves it; the authoritative notebooks stay
# outside the served tree, and the grader reads them. `--instructor` (or
# JUPYTER_EXEC_EXT_MODE=instructor) serves exercises/ itself, with the authoring tools.
# Binds 127.0.0.1 unless JUPYTER_EXEC_EXT_IP says otherwise; port 8888 unless
# JUPYTER_EXEC_EXT_PORT; a fresh token unless JUPYTER_TOKEN is set. Prints the URL with the token.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode="${JUPYTER_EXEC_EXT_MODE:-student}"
for arg in "$@"; do
  case "$arg" in
    --instructor) mode=instructor ;;
    --student) mode=student ;;
    *) echo "error: unknown option $arg (use --instructor or --student)" >&2; exit 2 ;;
  esac
done
case "$mode" in student|instructor) ;; *)
  echo "error: JUPYTER_EXEC_EXT_MODE must be student or instructor, not '$mode'" >&2; exit 2 ;;
esac
exercises="$repo/exercises"
workspace="${JUPYTER_EXEC_EXT_WORKSPACE:-$repo/workspace}"
bash "$repo/scripts/provision.sh"
echo "==> engine and executor image"
"$repo/.venv/bin/jupyter-exec-ext" status

ip="${JUPYTER_EXEC_EXT_IP:-127.0.0.1}"
port="${JUPYTER_EXEC_EXT_PORT:-8888}"
token="${JUPYTER_TOKEN:-$("$repo/.venv/bin/python" -c 'import secrets; print(secrets.token_hex(24))')}"
args=(
  --no-browser
  --ServerApp.ip="$ip"
  --ServerApp.port="$port"
  --ServerApp.port_retries=0            # the URL printed below must be the one that answers
  --IdentityProvider.token="$token"
  --ExecExtApp.exercises_dir="$exercises"
  --ExecExtApp.workspace_dir="$workspace"
)
if [ "$mode" = instructor ]; then
  root="$exercises"
  args+=(--ServerApp.root_dir="$exercises" --ExecExtApp.instructor=True)
else
  root="$workspace"
  echo "==> students' workspace $workspace: released copies of $exercises (a student's edits are kept)"
  mkdir -p "$workspace"
  "$repo/.venv/bin/jupyter-exec-ext" update-workspace "$exercises" "$workspace" | sed 's/^/    /' \
    || echo "    (the notebooks skipped above are not in the workspace; fix them and start again)"
  args+=(--ServerApp.root_dir="$workspace")
fi
# Provisioning runs as root; Jupyter refuses root unless told.
[ "$(id -u)" = 0 ] && args+=(--allow-root)

host="$ip"
case "$ip" in 0.0.0.0|'*'|'') host=127.0.0.1 ;; esac
if [ "$mode" = instructor ]; then
  echo "==> starting JupyterLab in INSTRUCTOR mode on $root: reference solutions and hidden tests are visible"
  echo "    Release writes student copies to $workspace; students get: bash scripts/run.sh"
else
  echo "==> starting JupyterLab in student mode on $root (no solutions, no hidden tests)"
  echo "    instructor mode, to author exercises: bash scripts/run.sh --instructor"
fi
echo "    note: a single-user server; its kernels run as $(id -un) and can reach the Docker socket. For a class, use JupyterHub (docs/hub.md)."
echo "    open:      http://$host:$port/lab?token=$token"
echo "    REST API:  curl -H 'Authorization: token $token' http://$host:$port/api/exec/v1/docker/status"
echo "    stop with Ctrl-C"
exec "$repo/.venv/bin/jupyter" lab "${args[@]}"
