#!/usr/bin/env bash
# Storage faults for apikeyd (docs/RELIABILITY.md, D1/D6 on a full disk).
# Puts the database on a 2 MiB tmpfs when mounting is allowed (root); otherwise falls back
# to a file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored). Says which in its output.
# Usage: scripts/crash/storage_faults.sh [--binary PATH]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d /tmp/apikeyd-faults-XXXXXX)"
mnt="$work/mnt"
mkdir -p "$mnt"
mounted=""
cleanup() {
    if [ -n "$mounted" ]; then umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=2m,mode=0700 apikeyd-faults "$mnt" 2>/dev/null; then
    mounted=1
    python3 "$here/storage_faults.py" --mode tmpfs --dir "$mnt" \
        --grow "mount -o remount,size=16m '$mnt'" "$@"
else
    echo "storage_faults: cannot mount a tmpfs here; using the file-size-limit fault instead"
    python3 "$here/storage_faults.py" --mode ulimit --dir "$mnt" "$@"
fi
