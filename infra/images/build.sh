#!/usr/bin/env bash
# make images: the user-code and serving images, built from the unchanged Dockerfiles with
# buildah (no daemon), as a user's CI would; then their smoke tests (tests/images) run them.
#
# This machine reaches no container registry, so the Dockerfiles' base image (FROM
# python:3.11-slim-bookworm) cannot be pulled. A stand-in for it is built from Debian's
# packages (debootstrap, and the Python 3.11 the official base provides) and tagged locally
# with the base's name; --pull=never keeps the builds from looking further. A normal build,
# where a registry is reachable, uses the official base and needs none of this.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '\033[1m[images]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[images] error:\033[0m %s\n' "$*" >&2; exit 1; }

BASE=python:3.11-slim-bookworm
TAG=${LAKELOOP_IMAGE_TAG:-0.1.0}
cache=.cache/images
mkdir -p "$cache"
sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# --- the tools, from Debian's packages -----------------------------------------------------
missing=()
for pkg in buildah debootstrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi
buildah=("${sudo_cmd[@]}" buildah)

# --- the stand-in base (once per machine: it stays in buildah's storage) ---------------------
if ! "${buildah[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
  # The Debian archive this machine's apt uses (LAKELOOP_DEBIAN_MIRROR overrides it).
  mirror=${LAKELOOP_DEBIAN_MIRROR:-$(apt-get indextargets --format '$(REPO_URI)' \
    'Created-By: Packages' 2>/dev/null | grep -v -- '-security' | head -1)}
  [ -n "$mirror" ] || die "no Debian archive found in apt's sources; set LAKELOOP_DEBIAN_MIRROR"
  say "building a stand-in for $BASE from Debian's packages (no registry reachable)"
  started=$SECONDS
  rootfs=$cache/rootfs
  "${sudo_cmd[@]}" rm -rf "$rootfs"
  "${sudo_cmd[@]}" debootstrap --variant=minbase \
    --include=python3.11,python3-pip,ca-certificates bookworm "$rootfs" "$mirror" \
    >"$cache/debootstrap.log" 2>&1 || die "debootstrap failed (see $cache/debootstrap.log)"
  # As in the official image: python and pip on /usr/local/bin, pip free to install into
  # the system's Python (Debian marks it externally managed).
  "${sudo_cmd[@]}" sh -c "
    set -e
    ln -sf /usr/bin/python3.11 '$rootfs/usr/local/bin/python'
    ln -sf /usr/bin/python3.11 '$rootfs/usr/local/bin/python3'
    printf '#!/bin/sh\nexec /usr/bin/python3.11 -m pip \"\$@\"\n' > '$rootfs/usr/local/bin/pip'
    chmod 755 '$rootfs/usr/local/bin/pip'
    rm -f '$rootfs/usr/lib/python3.11/EXTERNALLY-MANAGED'
    # This machine's own certificate authorities: the builds' downloads cross its network.
    if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
      cp /usr/local/share/ca-certificates/*.crt '$rootfs/usr/local/share/ca-certificates/'
      chroot '$rootfs' update-ca-certificates >/dev/null
    fi
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > '$rootfs/etc/pip.conf'
    rm -rf '$rootfs/var/cache/apt/archives/'*.deb '$rootfs/var/lib/apt/lists/'*"
  container=$("${buildah[@]}" from scratch)
  mount=$("${buildah[@]}" mount "$container")
  "${sudo_cmd[@]}" cp -a "$rootfs/." "$mount/"
  "${buildah[@]}" umount "$container" >/dev/null
  "${buildah[@]}" config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --cmd python3 "$container"
  "${buildah[@]}" commit -q "$container" "$BASE" >/dev/null
  "${buildah[@]}" rm "$container" >/dev/null
  "${sudo_cmd[@]}" rm -rf "$rootfs"
  say "stand-in base built in $((SECONDS - started)) s"
fi

# --- the two images ---------------------------------------------------------------------------
: >"$cache/built.txt"
for image in serving user-code; do
  name=lakeloop/$image:$TAG
  say "building $name (infra/$image/Dockerfile)"
  started=$SECONDS
  "${buildah[@]}" bud --isolation chroot --pull=never --layers -q \
    -f "infra/$image/Dockerfile" -t "$name" . >"$cache/$image.log" 2>&1 \
    || { tail -30 "$cache/$image.log" >&2; die "$name did not build (see $cache/$image.log)"; }
  seconds=$((SECONDS - started))
  size=$("${buildah[@]}" images --format '{{.Size}}' "$name" | head -1)
  say "$name: built in $seconds s, $size"
  printf '%s\t%s s\t%s\n' "$name" "$seconds" "$size" >>"$cache/built.txt"
done

# Images a rebuild left without a tag (an earlier build of the same name): their layers go.
"${buildah[@]}" rmi --prune >/dev/null 2>&1 || true

# --- smoke tests: each image started as its deployments start it -----------------------------
say "smoke tests"
LAKELOOP_IMAGE_TAG=$TAG .venv/bin/python -m pytest -m images tests/images -q
