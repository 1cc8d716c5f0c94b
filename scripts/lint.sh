#!/usr/bin/env bash
# The static checks, configured in pyproject.toml: ruff's lint rules, ruff's formatting, mypy over
# the sandbox and the grader, and the import contracts between the layers (import-linter).
# scripts/test.sh runs this before the tests. Every check runs, then each failed one is named.
#   bash scripts/lint.sh          check (exits 1 if any check fails)
#   bash scripts/lint.sh --fix    format the code and apply ruff's safe fixes, then check
# Uses the tools pinned in the test extras, from .venv (scripts/provision.sh installs them).
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$repo/.venv/bin"
cd "$repo"

for tool in ruff mypy lint-imports; do
  [ -x "$bin/$tool" ] || { echo "error: $bin/$tool is missing: run scripts/provision.sh (it installs the test extras)" >&2; exit 1; }
done

if [ "${1:-}" = --fix ]; then
  echo "==> ruff format . (rewrites files)"
  "$bin/ruff" format . || true  # a file it cannot parse is named, and reported again below
  echo "==> ruff check --fix . (safe fixes only)"
  "$bin/ruff" check --fix --silent . || true  # what is left is reported below
elif [ $# -gt 0 ]; then
  echo "error: unknown argument $1 (the only option is --fix)" >&2
  exit 2
fi

failed=()
step() {
  local name="$1" hint="$2"
  shift 2
  echo "==> $name: $*"
  if "$@"; then
    return 0
  fi
  echo "error: $name failed; $hint" >&2
  failed+=("$name")
}

# What ruff covers (jupyter_exec_ext/, tests/, benchmarks/, executor_image/, scripts/) and what it
# never touches (the exercise notebooks, deploy/) is set in [tool.ruff] of pyproject.toml.
step "lint (ruff check)" "fix the findings above (bash scripts/lint.sh --fix applies the safe ones)" \
  "$bin/ruff" check --no-fix --output-format concise .
step "formatting (ruff format --check)" "bash scripts/lint.sh --fix formats the files listed" \
  "$bin/ruff" format --check --output-format concise .
step "types (mypy)" "annotate or narrow the values named above ([tool.mypy] lists the checked folders)" \
  "$bin/mypy"
step "import contracts (lint-imports)" "an import crosses a layer the other way; see [tool.importlinter]" \
  "$bin/lint-imports" --no-cache --no-logo

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'error: static checks failed: %s\n' "$(IFS=,; echo "${failed[*]}" | sed 's/,/, /g')" >&2
  exit 1
fi
echo "==> static checks passed (ruff, ruff format, mypy, import contracts)"
