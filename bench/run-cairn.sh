#!/usr/bin/env bash
# Side-by-side benchmark of Cairn against restic on the corpora of ../shared/bench.
#
#   cargo build --release -p cairn
#   bench/run-cairn.sh                       # restic + cairn, all corpora, 1 repetition
#   CORPORA=realtree REPS=2 bench/run-cairn.sh
#   SKIP_STEPS="check prune" bench/run-cairn.sh   # skip steps (names: backup2 backup3 restore check prune)
#   BENCH_FS=journaled bench/run-cairn.sh    # repositories and restores on a fresh journaled ext4 (root)
#
# BENCH_FS=journaled: this VM's /dev/vda is ext4 *without a journal*, where the kernel skips every
# inode freed in the last ~6 minutes when it allocates one (ext4 `recently_deleted`, checked only
# without a journal). The harness deletes one tool's 60k-200k restored files shortly before the
# next tool restores, so every restore then scans past them (measured: the same Cairn restore
# takes 5-6 s on a quiet disk and 15-33 s within minutes of such a delete; restic alike). Users'
# disks have journals (mkfs.ext4's default). This mounts a loop image formatted with defaults as
# REPO_ROOT; corpora stay where they are. Needs root, losetup and mkfs.ext4.
#
# Needs: apt-get install -y restic time rsync; python3 ../shared/bench/corpus.py build all
# Prints the report with medians and ratios (restic / cairn) at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
bin=${CANDIDATE:-$here/target/release/cairn}
[[ -x $bin ]] || { echo "build first: cargo build --release -p cairn" >&2; exit 1; }
# The harness copies nothing of ours; keep the binary stable while it runs.
cp "$bin" /tmp/cairn-bench-bin
export CANDIDATE=/tmp/cairn-bench-bin CANDIDATE_NAME=cairn
export TOOLS=${TOOLS:-"restic candidate"}
export SKIP_STEPS=${SKIP_STEPS-}
export RUN_ID=${RUN_ID:-cairn-$(date +%Y%m%d-%H%M%S)}
export RESULTS=${RESULTS:-/tmp/bench-results/run-$RUN_ID}
[[ -d /tmp/bench-corpus/realtree ]] || python3 "$shared/bench/corpus.py" build all
if [[ ${BENCH_FS:-} == journaled ]]; then
  img=${BENCH_FS_IMAGE:-/tmp/bench-fs.img} mnt=${BENCH_FS_MOUNT:-/tmp/bench-fs}
  mountpoint -q "$mnt" && umount "$mnt"
  rm -f "$img" && truncate -s "${BENCH_FS_SIZE:-16G}" "$img" && mkfs.ext4 -q -F "$img"
  loop=$(losetup --direct-io=on -f --show "$img")
  mkdir -p "$mnt" && mount -o discard "$loop" "$mnt"   # discard: deleted files free the host disk
  trap 'umount "$mnt"; losetup -d "$loop"; rm -f "$img"' EXIT
  export REPO_ROOT=$mnt
  mkdir -p "$RESULTS"
  echo "repositories and restores on $mnt: fresh ext4 with journal on $loop ($img)" |
    tee "$RESULTS/bench-fs.txt" >&2
elif [[ -n ${BENCH_FS:-} ]]; then
  echo "BENCH_FS: only 'journaled' is known" >&2; exit 2
fi
bash "$shared/bench/run.sh"
python3 "$shared/bench/report.py" "$RESULTS" | tee "$RESULTS/report.md"
