#!/usr/bin/env bash
# Regenerates the README's screenshots in docs/ from the browser tests, against a real JupyterLab
# and the real sandbox: docs/results-panel.png and docs/results-panel-dark.png (JupyterLab),
# docs/notebook7-results.png and docs/notebook7-results-dark.png (Notebook 7), all from
# tests/lab/test_e2e.py; docs/authoring-panel.png and docs/student-view.png
# (tests/lab/test_authoring_e2e.py); docs/live-streaming.png, docs/live-stopped.png,
# docs/live-input.png and (on an executor image with matplotlib) docs/live-figure.png
# (tests/lab/test_live_e2e.py); docs/results-history.png and docs/gradebook-panel.png
# (tests/lab/test_gradebook_e2e.py). Needs what command 2 provisions.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
E2E_DOCS_DIR="$repo/docs" .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/lab/test_e2e.py::test_run_and_submit_in_chromium tests/lab/test_authoring_e2e.py \
  tests/lab/test_live_e2e.py \
  tests/lab/test_gradebook_e2e.py
ls -l docs/*.png
