#!/usr/bin/env bash
# Prepare a Debian/Ubuntu machine (as root) to run safepip's sandboxed builds and their
# tests: Docker engine, Podman, bubblewrap and debootstrap from apt, dockerd and Podman's
# Docker-compatible service started if they are not running, then the sandbox root
# filesystem and image (build-base.sh), imported into Podman too. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v podman >/dev/null || need+=(podman)
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
    # daemons start in / : one left running with a deleted working directory (a
    # removed checkout) fails to start containers ("write child: broken pipe")
    (cd / && dockerd >/var/log/safepip-dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  docker info >/dev/null 2>&1 || echo "warning: no Docker engine is running" >&2
fi

"$here/build-base.sh"

# Podman, through its Docker-compatible API (what `--sandbox podman` uses)
if command -v podman >/dev/null && [ "$(id -u)" = 0 ]; then
  sock=/run/podman/podman.sock
  ping() {  # the API answers on its socket (python3 is there: it runs everything else)
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(2)
s.connect(sys.argv[1]); s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
sys.exit(0 if b" 200 " in s.recv(64) else 1)' "$sock" >/dev/null 2>&1
  }
  if ! ping; then
    mkdir -p /run/podman
    (cd / && podman system service --time=0 "unix://$sock" >/var/log/safepip-podman.log 2>&1 &)
    for _ in $(seq 1 30); do
      ping && break
      sleep 1
    done
  fi
  rootfs=${SAFEPIP_ROOTFS:-/var/lib/safepip/rootfs-bookworm}
  image=${SAFEPIP_SANDBOX_IMAGE:-safepip-sandbox:bookworm}
  stamp=$rootfs.podman-imported
  if [ ! -e "$stamp" ] || [ "$rootfs/.safepip-complete" -nt "$stamp" ] \
      || ! podman image exists "$image"; then
    tar -C "$rootfs" -c . | podman import -q \
        --change 'USER 65534:65534' --change 'WORKDIR /src' \
        --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - "$image" >/dev/null
    touch "$stamp"
  fi
fi
