#!/usr/bin/env bash
# Build safepip's sandbox base from Debian packages, for machines that cannot pull
# python:3.X-slim (air-gapped sites, CI here). The result is a root filesystem with only
# an interpreter and compilers; safepip mounts its own build driver read-only at run time.
#
#   sandbox-images/build-base.sh [ROOTFS_DIR] [IMAGE_NAME]
#
# ROOTFS_DIR (default /var/lib/safepip/rootfs-bookworm) is what the bubblewrap backend
# uses as its root; when a Docker engine answers, the same tree is imported as
# IMAGE_NAME (default safepip-sandbox:bookworm). MIRROR overrides the Debian mirror (the
# default is the first one in apt's sources). Idempotent: an existing complete rootfs
# is reused.
set -euo pipefail

ROOTFS=${1:-/var/lib/safepip/rootfs-bookworm}
IMAGE=${2:-safepip-sandbox:bookworm}
SUITE=${SUITE:-bookworm}
PACKAGES=python3,python3-venv,python3-dev,gcc,g++,libc6-dev,make

mirror() {
  if [ -n "${MIRROR:-}" ]; then echo "$MIRROR"; return; fi
  local m
  m=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list 2>/dev/null | grep -v security | head -n1 | awk '{print $2}')
  echo "${m:-http://deb.debian.org/debian}"
}

rebuilt=0
if [ ! -x "$ROOTFS/usr/bin/python3" ] || [ ! -f "$ROOTFS/.safepip-complete" ]; then
  rebuilt=1
  command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  rm -rf "$ROOTFS.tmp"
  mkdir -p "$(dirname "$ROOTFS")"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS.tmp" "$(mirror)"
  # nothing of the host's identity goes in; an unprivileged build user exists
  rm -rf "$ROOTFS.tmp"/var/cache/apt/archives/*.deb "$ROOTFS.tmp"/var/lib/apt/lists/*
  echo 'builder:x:65534:65534:safepip builder:/tmp:/usr/sbin/nologin' >> "$ROOTFS.tmp/etc/passwd"
  mkdir -p "$ROOTFS.tmp"/{src,out,wheelhouse,driver}
  touch "$ROOTFS.tmp/.safepip-complete"
  rm -rf "$ROOTFS"
  mv "$ROOTFS.tmp" "$ROOTFS"
fi
"$ROOTFS/usr/bin/python3" --version 2>/dev/null || chroot "$ROOTFS" python3 --version

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  # re-import only when the rootfs is new or the image is missing: the image id is part
  # of the built-wheel cache key
  if [ "$rebuilt" = 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    docker image inspect --format '{{.Id}}' "$IMAGE"
    exit 0
  fi
  tar -C "$ROOTFS" -c . | docker import \
      --change 'USER 65534:65534' --change 'WORKDIR /src' \
      --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - "$IMAGE" >/dev/null
  docker image inspect --format '{{.Id}}' "$IMAGE"
else
  echo "no Docker engine answered: the rootfs is ready for the bubblewrap backend only" >&2
fi
