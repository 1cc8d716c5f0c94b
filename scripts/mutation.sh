#!/usr/bin/env bash
# Mutation testing of the pure modules with mutmut: each module is changed in small ways (a `<`
# becomes `<=`, a `continue` a `break`, a string another) and its fast tests (no Docker, no Redis,
# no server) must notice. Prints the score of each module and the mutants that survive; fails when
# a module scores below the bar (85 %). Equivalent mutants, which no test can notice, are listed
# with their reasons in docs/mutation.md.
#
#   scripts/mutation.sh                      every module below, one after the other
#   scripts/mutation.sh grading/compare.py   only the modules named (paths under jupyter_exec_ext/)
#
# One module at a time, one test process at a time (MUTATION_JOBS, default 1): it is slow but
# leaves the machine usable. Work goes to .mutation/ (gitignored), started afresh every time (mutmut
# keeps the verdicts of a module whose source did not change, even when its tests did). Needs the
# .venv of scripts/provision.sh; installs the pinned mutmut into it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$repo/.venv/bin/python"
mutmut_version="3.8.1"
bar="${MUTATION_BAR:-85}"
jobs="${MUTATION_JOBS:-1}"
work="$repo/.mutation"
say() { echo "==> $*"; }
die() { echo "error: $*" >&2; exit 1; }

[ -x "$python" ] || die "no $repo/.venv: run scripts/provision.sh first"
if [ "$("$python" -c 'import importlib.metadata as m; print(m.version("mutmut"))' 2>/dev/null)" != "$mutmut_version" ]; then
  say "installing mutmut $mutmut_version into .venv"
  "$python" -m pip install -q "mutmut==$mutmut_version" || die "pip install mutmut==$mutmut_version failed"
fi

# Module (under jupyter_exec_ext/) -> its fast tests. Only tests that need nothing running: the
# marker filter below drops the Docker/Redis/hub/PostgreSQL ones from files that mix both.
declare -A tests=(
  [grading/compare.py]="tests/grading/test_compare.py"
  [grading/exercise.py]="tests/grading/test_exercise.py tests/grading/test_requirements.py"
  [sandbox/limits.py]="tests/sandbox/test_limits.py tests/server/test_payloads.py"
  [sandbox/policy.py]="tests/sandbox/test_policy.py tests/sandbox/test_determinism.py tests/grading/test_requirements.py"
  [sandbox/determinism.py]="tests/sandbox/test_determinism.py"
  [sandbox/protocol.py]="tests/sandbox/test_protocol.py tests/sandbox/test_frames.py tests/sandbox/test_display_frames.py"
  [server/payloads.py]="tests/server/test_payloads.py"
)
order=(grading/compare.py grading/exercise.py sandbox/limits.py sandbox/policy.py sandbox/determinism.py sandbox/protocol.py server/payloads.py)
modules=("$@")
[ "${#modules[@]}" -gt 0 ] || modules=("${order[@]}")

failed=0
summary=()
started=$SECONDS
for module in "${modules[@]}"; do
  [ -n "${tests[$module]:-}" ] || die "no tests are listed for $module (known: ${order[*]})"
  name="${module//\//-}"
  dir="$work/${name%.py}"
  say "$module: mutating, checked by ${tests[$module]}"
  module_started=$SECONDS
  # A copy of its own per module: the package, the tests (their folders' helpers too) and the
  # pytest settings. No conftest: these tests use no fixture of ours, and ours talk to Docker.
  mkdir -p "$dir"
  rm -rf "$dir/jupyter_exec_ext" "$dir/tests" "$dir/mutants"
  cp -a "$repo/jupyter_exec_ext" "$repo/tests" "$dir/"
  rm -rf "$dir/jupyter_exec_ext/labextension" "$dir/tests/lab"
  find "$dir/jupyter_exec_ext" "$dir/tests" \( -name __pycache__ -o -name conftest.py \) -prune -exec rm -rf {} +
  cp "$repo/pyproject.toml" "$dir/pyproject.toml"
  {
    echo "[mutmut]"
    echo "source_paths = jupyter_exec_ext"
    echo "only_mutate = jupyter_exec_ext/$module"
    # One argument per line. The test that reads policy.py's source for ast.parse would read
    # mutmut's rewritten copy: it is about the source, not the behaviour.
    printf 'pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    --noconftest\n    -m\n    %s\n    --deselect\n    %s\n' \
      "not docker and not redis and not hub and not postgres" \
      "tests/sandbox/test_policy.py::test_the_package_parses_python_only_through_the_locked_helper"
    echo "pytest_add_cli_args_test_selection ="
    for t in ${tests[$module]}; do echo "    $t"; done
  } >"$dir/setup.cfg"
  # pyproject.toml has no [tool.mutmut]: mutmut reads setup.cfg. The run's own output is long;
  # it goes to a log, the summary comes from mutmut's statistics.
  (cd "$dir" && "$python" -m mutmut run --max-children "$jobs" >"$dir/run.log" 2>&1) \
    || { tail -n 30 "$dir/run.log" >&2; die "mutmut failed on $module (log: $dir/run.log)"; }
  (cd "$dir" && "$python" -m mutmut export-cicd-stats >/dev/null)
  read -r killed total survived score < <("$python" - "$dir/mutants/mutmut-cicd-stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
# Timeouts and segfaults count as noticed; "no tests" and survivors do not.
noticed = s["killed"] + s.get("timeout", 0) + s.get("segfault", 0)
total = s["total"] - s.get("skipped", 0) - s.get("not_checked", 0)
print(noticed, total, s["survived"] + s.get("no_tests", 0), f"{100 * noticed / max(total, 1):.1f}")
PY
)
  took=$((SECONDS - module_started))
  line="$(printf '%-24s %5s%%  %4s of %4s noticed, %3s left  (%ss)' "$module" "$score" "$killed" "$total" "$survived" "$took")"
  summary+=("$line")
  say "$line"
  (cd "$dir" && "$python" -m mutmut results) | sed 's/^/      /' || true
  if awk -v s="$score" -v b="$bar" 'BEGIN { exit !(s < b) }'; then
    failed=1
  fi
done

echo
say "mutation scores (bar: $bar %; equivalent mutants: docs/mutation.md), $((SECONDS - started)) s in all"
printf '    %s\n' "${summary[@]}"
[ "$failed" = 0 ] || die "a module scores below $bar %"
