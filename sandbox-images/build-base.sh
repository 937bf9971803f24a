#!/usr/bin/env bash
# The sandbox base image from Debian packages (debootstrap + docker import). The script
# itself ships inside the safepip package, so that `safepip sandbox build-image` works
# from an installed safepip too; this is the entry point from a source checkout.
exec bash "$(dirname "$0")/../safepip/sandbox/build-base.sh" "$@"
