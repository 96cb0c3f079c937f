#!/bin/sh
# Build a local base image for the Dockerfile where no container registry can be
# reached (the Dockerfile's default base, python:3.11-slim-bookworm pinned by digest,
# needs one). It is a minimal Debian bookworm with Debian's python3 (3.11), venv and
# CA certificates, made from Debian's package archive with debootstrap, then loaded
# with `docker import`. The host's own CAs (/usr/local/share/ca-certificates/*.crt)
# are added, so pip inside the build trusts what the host trusts (needed behind a
# TLS-inspecting proxy). Needs root, debootstrap (apt-get install debootstrap) and a
# running Docker daemon.
#
#   sudo tools/docker-base.sh [TAG]          # default TAG: lasersell-base:bookworm
#   docker build --build-arg PYTHON_IMAGE=lasersell-base:bookworm -t lasersell-bot .
#   make docker-test PYTHON_IMAGE=lasersell-base:bookworm
set -eu
tag=${1:-lasersell-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /tmp/lasersell-base.XXXXXX)
trap 'rm -rf "$root"' EXIT INT TERM

debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$mirror"
for ca in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$ca" ] || continue
    cp "$ca" "$root/usr/local/share/ca-certificates/"
done
chroot "$root" update-ca-certificates >/dev/null
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$tag"
echo "docker-base: built $tag"
