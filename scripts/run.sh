#!/usr/bin/env bash
# README command 1: provision what is missing, then run the main job.
# Until the Jupyter server extension lands, the main job is a sandbox demo: sample programs that
# show each kind of result (ok, runtime error, timeout, memory limit, no network, not root).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/provision.sh"
echo "==> engine and executor image"
"$repo/.venv/bin/jupyter-exec-ext" reap >/dev/null
"$repo/.venv/bin/jupyter-exec-ext" status
echo "==> sandbox demo"
exec "$repo/.venv/bin/jupyter-exec-ext" demo
