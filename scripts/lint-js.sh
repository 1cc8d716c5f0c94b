#!/usr/bin/env bash
# Lints the lab extension's TypeScript: ESLint (recommended rules of ESLint and typescript-eslint)
# and Prettier's layout check over labextension/src, i.e. `npm run lint` there. Exits non-zero on
# any finding. Needs labextension/node_modules (scripts/provision.sh installs it); `npm run
# lint:fix` in labextension/ fixes what can be fixed by itself.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/labextension"
[ -x node_modules/.bin/eslint ] && [ -x node_modules/.bin/prettier ] \
  || { echo "error: ESLint or Prettier missing in labextension/node_modules: run npm install there (scripts/provision.sh does)" >&2; exit 1; }
echo "==> lab extension: ESLint and Prettier over labextension/src"
npm run --silent lint
