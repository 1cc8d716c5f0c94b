#!/usr/bin/env bash
# Makes a Debian bookworm base image with python3 without any container registry:
# debootstrap fetches .deb packages from a Debian mirror, `docker import` turns the tree into an image.
# Usage: make-offline-base.sh [IMAGE_NAME] [MIRROR] [FLAVOUR]
#   FLAVOUR  science (default): the stdlib base (made first if missing) plus Debian's numpy, pandas
#            and matplotlib, installed with apt from the mirror
#            stdlib: python3 alone
set -euo pipefail

name="${1:-jupyter-exec-ext-base:bookworm-science}"
mirror="${2:-${DEBIAN_MIRROR:-http://deb.debian.org/debian}}"
flavour="${3:-science}"

case "$flavour" in
  science|stdlib) ;;
  *) echo "unknown flavour '$flavour' (science or stdlib)" >&2; exit 2 ;;
esac

if docker image inspect "$name" >/dev/null 2>&1; then
  echo "base image $name already present; nothing to do"
  exit 0
fi
started=$SECONDS

if [ "$flavour" = science ]; then
  # The stdlib base plus Debian's numpy, pandas and matplotlib, installed by apt in a build (the
  # engine's bridge reaches the Debian mirror; no container registry is involved). apt rather than
  # debootstrap --include: debootstrap takes the first of alternative dependencies, and
  # python3-fonttools' first is scipy, which brings gcc, boost and sympy (1.25 GB instead of ~400 MB).
  stdlib="${STDLIB_BASE_IMAGE:-jupyter-exec-ext-base:bookworm}"
  bash "$0" "$stdlib" "$mirror" stdlib
  echo "installing python3-numpy, python3-pandas, python3-matplotlib from $mirror into $name ..."
  log="$(mktemp /var/tmp/jupyter-exec-ext-base.XXXXXX.log)"
  docker build --pull=false --label jupyter-exec-ext.flavour=science --build-arg "MIRROR=$mirror" \
    --build-arg "BASE=$stdlib" -t "$name" - >"$log" 2>&1 <<'DOCKERFILE' || {
ARG BASE
FROM ${BASE}
ARG MIRROR
RUN echo "deb $MIRROR bookworm main" > /etc/apt/sources.list \
 && apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      python3-numpy python3-pandas python3-matplotlib python3-scipy- \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
DOCKERFILE
    echo "installing the scientific packages failed; last lines of the log:" >&2; tail -n 20 "$log" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
  echo "base image $name ready ($flavour, $((SECONDS - started)) s)"
  exit 0
fi

command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install -y debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

root="$(mktemp -d /var/tmp/jupyter-exec-ext-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm (minbase + python3) from $mirror into $root ..."
debootstrap --variant=minbase --include=python3 bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  echo "debootstrap failed; last lines of its log:" >&2; tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# Package caches and lists are dead weight in an image that never runs apt.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
echo "importing the tree as $name ..."
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "LABEL jupyter-exec-ext.flavour=$flavour" \
  --change 'CMD ["python3"]' - "$name" >/dev/null
echo "base image $name ready ($flavour, $((SECONDS - started)) s)"
