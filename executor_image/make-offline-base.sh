#!/usr/bin/env bash
# Makes a Debian bookworm base image with python3 without any container registry:
# debootstrap fetches .deb packages from a Debian mirror, `docker import` turns the tree into an image.
# Usage: make-offline-base.sh [IMAGE_NAME] [MIRROR] [FLAVOUR]
#   FLAVOUR  science (default): python3 with Debian's numpy, pandas and matplotlib
#            stdlib: python3 alone
set -euo pipefail

name="${1:-jupyter-exec-ext-base:bookworm-science}"
mirror="${2:-${DEBIAN_MIRROR:-http://deb.debian.org/debian}}"
flavour="${3:-science}"

case "$flavour" in
  science) packages=python3,python3-numpy,python3-pandas,python3-matplotlib ;;
  stdlib) packages=python3 ;;
  *) echo "unknown flavour '$flavour' (science or stdlib)" >&2; exit 2 ;;
esac

if docker image inspect "$name" >/dev/null 2>&1; then
  echo "base image $name already present; nothing to do"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install -y debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

root="$(mktemp -d /var/tmp/jupyter-exec-ext-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
started=$SECONDS
echo "debootstrap bookworm (minbase + $packages) from $mirror into $root ..."
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
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
