#!/usr/bin/env bash
# Builds every image of docker-compose.yml without a container registry and without network
# access inside the builds (also: `jupyter exec-ext build-stack`).
#
#   1. the stack's base image (Debian bookworm with python3, python3-venv, nodejs and redis-server),
#      made with debootstrap from a Debian mirror and `docker import`;
#   2. a wheelhouse (deploy/offline/wheels): this package's wheel, built here, and the wheels of
#      its dependencies and of its `hub` extra for the base image's Python, from PyPI;
#   3. configurable-http-proxy with its dependencies (deploy/offline/npm), from npm;
#   4. the executor image (`jupyter exec-ext build-image --offline-base`);
#   5. the images of the stacks (hub, service, redis, lab) from deploy/Dockerfile with
#      `--network none`: the Dockerfile installs from deploy/offline when it is there.
#
# Every step is skipped when its result is up to date, so a second run takes seconds. Only the
# host needs the package registries (PyPI, npm) and a Debian mirror; nothing in the images
# depends on this machine. With a registry, `docker-compose build` builds the same Dockerfile on
# python:3.12-slim and installs from the internet as before.
#
# Environment: STACK_BASE_IMAGE (default jupyter-exec-ext-stack-base:bookworm), STACK_TAG (0.1.0),
# DEBIAN_MIRROR, DOCKER_EXECUTOR_IMAGE (the executor image's tag), PYTHON (a Python with pip).
# Options: --force rebuilds the wheelhouse and the images; --no-executor leaves the executor
# image alone.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${STACK_BASE_IMAGE:-jupyter-exec-ext-stack-base:bookworm}"
tag="${STACK_TAG:-0.1.0}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
offline="$repo/deploy/offline"
chp_version="${CHP_VERSION:-4.6.3}"
force=0
executor=1
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --no-executor) executor=0 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-offline.sh: unknown option $arg (--force, --no-executor)" >&2; exit 2 ;;
  esac
done

say() { echo "==> $*"; }
die() { echo "build-offline.sh: $*" >&2; exit 1; }
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer"

# -- 1. the base image ---------------------------------------------------------------------------
if docker image inspect "$base" >/dev/null 2>&1; then
  say "base image $base present"
else
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install -y debootstrap)"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root to make $base"
  root="$(mktemp -d /var/tmp/jupyter-exec-ext-stack-base.XXXXXX)"
  trap 'rm -rf "$root" "$root.log"' EXIT
  say "making base image $base: debootstrap bookworm (python3, python3-venv, nodejs, redis-server) from $mirror"
  debootstrap --variant=minbase --include=python3,python3-venv,nodejs,redis-server \
      bookworm "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -n 20 "$root.log" >&2; die "debootstrap failed"; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$base" >/dev/null
  rm -rf "$root" "$root.log"
  trap - EXIT
  say "base image $base ready"
fi

# -- 2. the wheelhouse ---------------------------------------------------------------------------
# What the package's wheel is made of: a change to any of these files rebuilds it (not README.md,
# its long description only: editing the docs rebuilds nothing).
source_hash="$(cd "$repo" && git ls-files -co --exclude-standard -- pyproject.toml \
    jupyter_exec_ext jupyter-config executor_image labextension \
  | grep -v -e '^jupyter_exec_ext/labextension/' -e 'node_modules/' -e '/ui-tests/' \
  | sort | xargs -d '\n' sha256sum 2>/dev/null | sha256sum | cut -c1-16)"
wheels="$offline/wheels"
if [ "$force" = 0 ] && [ -f "$wheels/.source-hash" ] && [ "$(cat "$wheels/.source-hash")" = "$source_hash" ]; then
  say "wheelhouse $wheels is up to date"
else
  py_version="$(docker run --rm --network none "$base" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
  py_tag="$(docker run --rm --network none "$base" python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
  glibc="$(docker run --rm --network none "$base" python3 -c 'import platform; print(platform.libc_ver()[1].replace(".", "_"))')"
  arch="$(docker run --rm --network none "$base" python3 -c 'import platform; print(platform.machine())')"
  say "wheelhouse: building this package's wheel (with its lab extension) in $wheels"
  rm -rf "$wheels" && mkdir -p "$wheels"
  "$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$repo" \
    || die "building the package's wheel failed"
  wheel="$(ls "$wheels"/jupyter_exec_ext-*.whl)"
  say "wheelhouse: downloading the wheels of its dependencies and of [hub] for Python $py_version ($py_tag, glibc $glibc, $arch)"
  platforms=()
  for p in "manylinux_${glibc}_${arch}" manylinux2014_"$arch" manylinux_2_17_"$arch" linux_"$arch"; do
    platforms+=(--platform "$p")
  done
  # async-timeout: redis needs it below Python 3.11.3 (bookworm has 3.11.2), and pip evaluates
  # the markers for its own interpreter, not the target's.
  "$python" -m pip download --quiet --dest "$wheels" --only-binary=:all: \
      --python-version "$py_version" --implementation cp --abi "$py_tag" --abi abi3 --abi none \
      "${platforms[@]}" "$wheel[hub]" "async-timeout>=4.0.3" 2> >(grep -v "^WARNING: Location .* is ignored" >&2) \
    || die "downloading the wheels failed"
  echo "$source_hash" >"$wheels/.source-hash"
  say "wheelhouse: $(ls "$wheels"/*.whl | wc -l) wheels, $(du -sh "$wheels" | cut -f1)"
fi

# -- 3. configurable-http-proxy --------------------------------------------------------------
npm_dir="$offline/npm"
chp="$npm_dir/configurable-http-proxy-$chp_version.tgz"
if [ -f "$chp" ]; then
  say "configurable-http-proxy $chp_version present ($chp)"
else
  command -v npm >/dev/null || die "npm is not installed (apt-get install -y npm)"
  say "configurable-http-proxy $chp_version: npm install with its dependencies, packed into $chp"
  tmp="$(mktemp -d)"
  npm install --global --prefix "$tmp" --no-audit --no-fund --omit=dev --loglevel=error \
      "configurable-http-proxy@$chp_version" >/dev/null || { rm -rf "$tmp"; die "npm install failed"; }
  rm -rf "$npm_dir" && mkdir -p "$npm_dir"
  # Pure JavaScript: the tree runs on the base image's Node.js. Unpacked into /usr/local.
  tar -C "$tmp" -czf "$chp" lib bin
  rm -rf "$tmp"
fi

# -- 4. the executor image ---------------------------------------------------------------------
if [ "$executor" = 1 ]; then
  cli="$repo/.venv/bin/jupyter-exec-ext"
  [ -x "$cli" ] || cli="$(command -v jupyter-exec-ext || true)"
  [ -n "$cli" ] || die "jupyter-exec-ext is not installed (bash scripts/provision.sh)"
  say "executor image ${DOCKER_EXECUTOR_IMAGE:-(the versioned tag)} (skipped if up to date)"
  "$cli" build-image --offline-base
fi

# -- 5. the images of the stacks ---------------------------------------------------------------
base_id="$(docker image inspect --format '{{.Id}}' "$base")"
stack_hash="$( { echo "$base_id"; cat "$wheels/.source-hash"; ls "$npm_dir";
                 cd "$repo" && cat deploy/Dockerfile deploy/*.py deploy/*.sh .dockerignore; } \
               | sha256sum | cut -c1-16)"
for target in redis service hub lab; do
  image="jupyter-exec-ext-$target:$tag"
  have="$(docker image inspect --format '{{index .Config.Labels "jupyter-exec-ext.stack-hash"}}' "$image" 2>/dev/null || true)"
  if [ "$force" = 0 ] && [ "$have" = "$stack_hash" ]; then
    say "image $image is up to date"
    continue
  fi
  say "building $image (target $target) on $base, without network"
  log="$(mktemp)"
  # The engine's default bridge is not needed (nor used): every step installs from deploy/offline.
  docker build --network none --build-arg "BASE_IMAGE=$base" --target "$target" \
      --label "jupyter-exec-ext.stack-hash=$stack_hash" -t "$image" -f "$repo/deploy/Dockerfile" \
      "$repo" >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; rm -f "$log"; die "building $image failed"; }
  rm -f "$log"
done
say "the images of docker-compose.yml are built: BASE_IMAGE=$base docker-compose --profile hub up -d"
