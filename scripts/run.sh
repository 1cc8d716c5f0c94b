#!/usr/bin/env bash
# README command 1: provision what is missing, then start JupyterLab with the extension on
# exercises/. Binds 127.0.0.1 unless JUPYTER_EXEC_EXT_IP says otherwise; port 8888 unless
# JUPYTER_EXEC_EXT_PORT; a fresh token unless JUPYTER_TOKEN is set. Prints the URL with the token.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
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
  --ServerApp.root_dir="$repo/exercises"
  --ExecExtApp.exercises_dir="$repo/exercises"
)
# Provisioning runs as root; Jupyter refuses root unless told.
[ "$(id -u)" = 0 ] && args+=(--allow-root)

host="$ip"
case "$ip" in 0.0.0.0|'*'|'') host=127.0.0.1 ;; esac
echo "==> starting JupyterLab on exercises/ (the extension reaps leftovers at start-up)"
echo "    open:      http://$host:$port/lab?token=$token"
echo "    REST API:  curl -H 'Authorization: token $token' http://$host:$port/api/exec/v1/docker/status"
echo "    stop with Ctrl-C"
exec "$repo/.venv/bin/jupyter" lab "${args[@]}"
