#!/usr/bin/env bash
# Provisions what jupyter-exec-ext needs on a Debian machine, idempotently, saying what it does:
# the Docker engine (started if not running), debootstrap, Redis (started on 127.0.0.1), PostgreSQL
# (the gradebook's production database; the tests start throwaway clusters of their own), Node.js
# and npm (the lab extension's build), chromium (the browser tests), haproxy (the reference load
# balancer of several executor replicas; the scale-out test starts one), docker-compose (validates
# docker-compose.yml), the Python environment in .venv with the package and its lab extension
# installed, the lab extension's node packages, configurable-http-proxy (npm; the JupyterHub tests
# start a real hub), and the executor image (with numpy, pandas and matplotlib unless
# JUPYTER_EXEC_EXT_FLAVOUR=stdlib). With JUPYTER_EXEC_EXT_RUNTIME=runsc, and always under
# CI=true, also gVisor's runsc, registered with the engine.
# Meant to be sourced or run by scripts/run.sh and scripts/test.sh; run as root.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
log_dir="${JUPYTER_EXEC_EXT_LOG_DIR:-/var/log/jupyter-exec-ext}"
say() { echo "==> $*"; }
die() { echo "error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages and starts dockerd)"
mkdir -p "$log_dir"

# 1. Debian packages -------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v redis-server >/dev/null || missing+=(redis-server)
# The tests run initdb and pg_ctl from Debian's PostgreSQL as the postgres user, on loopback ports.
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v python3 >/dev/null || missing+=(python3)
command -v docker-compose >/dev/null || missing+=(docker-compose)  # validates docker-compose.yml in the tests
# The reference load balancer of several executor replicas (deploy/haproxy/), started by the tests.
command -v haproxy >/dev/null || missing+=(haproxy)
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
# The wheel's build hook compiles the lab extension with npm; the e2e test drives Debian's chromium
# (Playwright cannot download a browser here).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >"$log_dir/apt.log" 2>&1 || { tail -n 20 "$log_dir/apt.log"; die "apt-get update failed"; }
  apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log_dir/apt.log" 2>&1 \
    || { tail -n 20 "$log_dir/apt.log"; die "apt-get install failed (log: $log_dir/apt.log)"; }
else
  say "Debian packages present (docker.io, debootstrap, redis-server, postgresql, python3-venv, nodejs, npm, chromium, docker-compose, haproxy)"
fi

# 2. Docker engine ---------------------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
  say "Docker engine is running"
else
  if [ -d /run/systemd/system ] && systemctl start docker >/dev/null 2>&1; then
    say "started the Docker engine with systemd"
  else
    say "starting dockerd in the background (log: $log_dir/dockerd.log)"
    nohup dockerd >"$log_dir/dockerd.log" 2>&1 &
  fi
  for _ in $(seq 60); do
    [ -S /var/run/docker.sock ] && docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { tail -n 20 "$log_dir/dockerd.log" 2>/dev/null; die "the Docker engine did not come up within 60 s"; }
  say "Docker engine is up ($(docker version --format '{{.Server.Version}}'))"
fi

# 2b. gVisor (runsc) as an engine runtime: opt-in with JUPYTER_EXEC_EXT_RUNTIME=runsc, always under
# CI=true (the tests run the hostile cases under runc and runsc). Registered in
# /etc/docker/daemon.json, merged with what is there; a running engine rereads it on SIGHUP, so it
# is never restarted (its containers keep running).
if [ "${JUPYTER_EXEC_EXT_RUNTIME:-}" = runsc ] || [ "${CI:-}" = true ]; then
  if ! command -v runsc >/dev/null; then
    say "installing Debian's runsc (gVisor) (log: $log_dir/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends runsc >>"$log_dir/apt.log" 2>&1 \
      || { apt-get update -q >>"$log_dir/apt.log" 2>&1 && apt-get install -y -q --no-install-recommends runsc >>"$log_dir/apt.log" 2>&1; } \
      || { tail -n 20 "$log_dir/apt.log"; die "apt-get install runsc failed (log: $log_dir/apt.log)"; }
  fi
  # The file first (so a later start of the engine has it too), then the running engine.
  if python3 -c 'import json, sys; sys.exit(0 if "runsc" in json.load(open("/etc/docker/daemon.json")).get("runtimes", {}) else 1)' 2>/dev/null; then
    say "/etc/docker/daemon.json registers runsc"
  else
    say "registering runsc in /etc/docker/daemon.json (merged with what is there)"
    mkdir -p /etc/docker
    python3 - "$(command -v runsc)" <<'PY'
import json, os, sys
path = "/etc/docker/daemon.json"
config = {}
if os.path.exists(path) and os.path.getsize(path):
    with open(path) as f:
        config = json.load(f)
config.setdefault("runtimes", {})["runsc"] = {"path": sys.argv[1], "runtimeArgs": ["--network=none"]}
with open(path + ".tmp", "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
os.replace(path + ".tmp", path)
PY
  fi
  if docker info --format '{{json .Runtimes}}' | grep -q '"runsc"'; then
    say "the Docker engine offers the runsc runtime ($(command -v runsc))"
  else
    say "asking the running dockerd to reread /etc/docker/daemon.json (SIGHUP; no restart)"
    kill -HUP $(pidof dockerd)
    for _ in $(seq 20); do
      docker info --format '{{json .Runtimes}}' | grep -q '"runsc"' && break
      sleep 0.5
    done
    docker info --format '{{json .Runtimes}}' | grep -q '"runsc"' \
      || die "the Docker engine does not offer runsc after the reload (check /etc/docker/daemon.json and its log)"
    say "the Docker engine offers the runsc runtime"
  fi
fi

# 3. Redis (the result cache's production backend; the tests use a real one) ---------------------
if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "Redis is answering on 127.0.0.1:6379"
else
  say "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --logfile "$log_dir/redis.log"
  for _ in $(seq 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || die "redis-server did not start (log: $log_dir/redis.log)"
fi

# 4. Python environment ----------------------------------------------------------------------------
stamp="$venv/.jupyter-exec-ext-installed"
# The install also builds the lab extension, so a change to its sources reinstalls too.
want="$(cd "$repo" && find pyproject.toml labextension/package.json labextension/package-lock.json \
  labextension/tsconfig.json labextension/src labextension/schema labextension/style -type f \
  | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  say "creating the Python environment $venv"
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing jupyter-exec-ext (building its lab extension with npm) and its test tools into $venv (log: $log_dir/pip.log)"
  "$venv/bin/python" -m pip install -q --upgrade pip >"$log_dir/pip.log" 2>&1 || true
  "$venv/bin/python" -m pip install -e "$repo[test]" >>"$log_dir/pip.log" 2>&1 \
    || { tail -n 30 "$log_dir/pip.log"; die "pip install failed (log: $log_dir/pip.log)"; }
  echo "$want" >"$stamp"
else
  say "Python environment is up to date ($venv)"
fi

# The editable install copies the built extension into $venv/share/jupyter/labextensions (hatch
# shared-data), so JupyterLab finds it with no `jupyter labextension develop` step.
labextensions="$("$venv/bin/jupyter" labextension list 2>&1 || true)"
grep -q "jupyter-exec-ext.*enabled.*OK" <<<"$labextensions" \
  || die "JupyterLab does not list the jupyter-exec-ext lab extension after the install (log: $log_dir/pip.log)"
say "lab extension jupyter-exec-ext is installed and enabled"

# 5. Node packages of the browser tests (playwright-core; the build installed them already unless
# the Python environment was up to date, so this is normally a no-op) -----------------------------
(cd "$repo/labextension" && npm install --no-audit --no-fund >"$log_dir/npm.log" 2>&1) \
  || { tail -n 20 "$log_dir/npm.log"; die "npm install in labextension/ failed (log: $log_dir/npm.log)"; }
say "node packages of labextension/ are installed"

# 6. JupyterHub's proxy (the hub tests run a real hub; jupyterhub itself comes with the test extra)
if command -v configurable-http-proxy >/dev/null; then
  say "configurable-http-proxy is installed ($(command -v configurable-http-proxy))"
else
  say "installing configurable-http-proxy from npm (log: $log_dir/npm.log)"
  npm install -g configurable-http-proxy >"$log_dir/npm.log" 2>&1 \
    || { tail -n 20 "$log_dir/npm.log"; die "npm install -g configurable-http-proxy failed"; }
fi

# 7. Executor image --------------------------------------------------------------------------------
# No registry is needed: the base is made with debootstrap unless BASE_IMAGE names one to use.
# JUPYTER_EXEC_EXT_FLAVOUR=stdlib builds the standard-library-only image; the default, science,
# adds Debian's numpy, pandas and matplotlib to the offline base (about a minute more, once).
flavour="${JUPYTER_EXEC_EXT_FLAVOUR:-science}"
if [ -n "${BASE_IMAGE:-}" ]; then
  say "building the executor image ($flavour) from $BASE_IMAGE (skipped if up to date)"
  "$venv/bin/jupyter-exec-ext" build-image --base-image "$BASE_IMAGE" --flavour "$flavour"
else
  say "building the executor image ($flavour) from an offline Debian base, made with debootstrap if missing (skipped if up to date)"
  "$venv/bin/jupyter-exec-ext" build-image --offline-base --flavour "$flavour"
fi
say "provisioning done"
