#!/usr/bin/env bash
# Prepare a Debian/Ubuntu machine (as root) to run safepip's sandboxed builds and their
# tests: Docker engine, bubblewrap and debootstrap from apt, dockerd started if it is not
# running, then the sandbox root filesystem and image (build-base.sh). Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing: ${need[*]} (install them, or run this as root on Debian/Ubuntu)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (dockerd >/var/log/safepip-dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  docker info >/dev/null 2>&1 || echo "warning: no Docker engine is running" >&2
fi

"$here/build-base.sh"
