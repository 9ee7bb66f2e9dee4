#!/usr/bin/env bash
# Container engine for clinical-ml on a machine without a registry (docs/containers.md).
# Idempotent: every stage is skipped when its result is already there; run it again any time.
#
#   scripts/containers-setup.sh            # engine packages, config, local/base image
#   scripts/containers-setup.sh --check    # exit 0 when the engine and local/base are ready
#
# State (never inside the repository): $CLINICAL_ML_ENGINE_HOME, default /var/lib/clinical-ml-engine
#   containers.conf   runtime = "runc", default_ulimits (CONTAINERS_CONF points here)
#   storage.conf      graphroot storage/, runroot run/ (CONTAINERS_STORAGE_CONF points here)
#   env               the two exports above, for `source`
#   storage/ run/     podman's images and containers
# The base image local/base is Debian bookworm (python3.11, as the venv) made by debootstrap from
# the apt mirror this machine uses, with this machine's added CA certificates, and a venv at
# /opt/venv on PATH (python3/pip there, as the SageMaker DLC images have theirs).
set -euo pipefail

ENGINE_HOME="${CLINICAL_ML_ENGINE_HOME:-/var/lib/clinical-ml-engine}"
BASE_TAG="${CLINICAL_ML_BASE_IMAGE:-localhost/clinical-ml-base:bookworm}"
SUITE=bookworm
PACKAGES=(podman buildah debootstrap runc fuse-overlayfs slirp4netns uidmap iptables
          containernetworking-plugins catatonit)
NICE=(nice -n "${CLINICAL_ML_NICE:-19}")

log() { echo "containers-setup: $*" >&2; }

export CONTAINERS_CONF="$ENGINE_HOME/containers.conf"
export CONTAINERS_STORAGE_CONF="$ENGINE_HOME/storage.conf"

ready() {
  command -v podman >/dev/null && [ -f "$CONTAINERS_CONF" ] && [ -f "$CONTAINERS_STORAGE_CONF" ] \
    && podman image exists "$BASE_TAG" 2>/dev/null
}

if [ "${1:-}" = "--check" ]; then
  if ready; then echo "ready: $BASE_TAG in $ENGINE_HOME"; exit 0; fi
  echo "not set up: run scripts/containers-setup.sh" >&2; exit 1
fi
[ "$(id -u)" = 0 ] || { log "needs root (apt-get, debootstrap, podman's root storage)"; exit 1; }

# 1. packages -------------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  "${NICE[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${NICE[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# 2. engine configuration --------------------------------------------------------------------
mkdir -p "$ENGINE_HOME/storage" "$ENGINE_HOME/run"
# crun refuses this machine's hybrid cgroups: runc; without the ulimits every run fails on setrlimit
cat > "$CONTAINERS_CONF.tmp" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mv "$CONTAINERS_CONF.tmp" "$CONTAINERS_CONF"
if [ ! -f "$CONTAINERS_STORAGE_CONF" ]; then
  driver=overlay
  # native overlay where the kernel allows it on this file system, else fuse-overlayfs
  probe=$(mktemp -d); mkdir -p "$probe"/{l,u,w,m}
  if ! mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" "$probe/m" 2>/dev/null; then
    driver=overlay-fuse
  else
    umount "$probe/m"
  fi
  rm -rf "$probe"
  {
    echo "[storage]"
    echo "driver = \"overlay\""
    echo "graphroot = \"$ENGINE_HOME/storage\""
    echo "runroot = \"$ENGINE_HOME/run\""
    if [ "$driver" = overlay-fuse ]; then
      echo "[storage.options.overlay]"
      echo "mount_program = \"/usr/bin/fuse-overlayfs\""
    fi
  } > "$CONTAINERS_STORAGE_CONF"
  log "storage: $driver under $ENGINE_HOME/storage"
fi
printf 'export CONTAINERS_CONF=%q\nexport CONTAINERS_STORAGE_CONF=%q\n' \
  "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF" > "$ENGINE_HOME/env"

# 3. the base image ---------------------------------------------------------------------------
if podman image exists "$BASE_TAG" 2>/dev/null; then
  log "ready: $BASE_TAG (engine state in $ENGINE_HOME)"
  exit 0
fi
# the mirror apt already uses (deb822 .sources or one-line sources.list)
mirror=$(grep -h -E '^URIs:.*debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
[ -n "$mirror" ] || mirror=$(grep -h -E "^deb .*debian/? $SUITE" /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                             2>/dev/null | head -1 | awk '{print $2}')
[ -n "$mirror" ] || { log "no Debian mirror found in /etc/apt/sources.list*"; exit 1; }
rootfs="$ENGINE_HOME/rootfs-$SUITE"
if [ ! -f "$rootfs/.debootstrap-done" ]; then
  rm -rf "$rootfs"
  log "debootstrap $SUITE from $mirror (about a minute)"
  "${NICE[@]}" debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
    "$SUITE" "$rootfs" "$mirror"
  touch "$rootfs/.debootstrap-done"
fi
# the CA certificates this machine added (pip in the build must verify its package index)
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
fi
chroot "$rootfs" update-ca-certificates >/dev/null
if [ ! -x "$rootfs/opt/venv/bin/python3" ]; then
  chroot "$rootfs" python3 -m venv /opt/venv
fi
rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
log "importing $rootfs as $BASE_TAG"
tar -C "$rootfs" --exclude=./.debootstrap-done -c . | "${NICE[@]}" podman import --quiet \
  --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$BASE_TAG" >/dev/null
rm -rf "$rootfs"
log "ready: $BASE_TAG (engine state in $ENGINE_HOME)"
