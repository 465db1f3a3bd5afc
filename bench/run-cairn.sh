#!/usr/bin/env bash
# Side-by-side benchmark of Cairn against restic on the corpora of ../shared/bench.
#
#   cargo build --release -p cairn
#   bench/run-cairn.sh                       # restic + cairn, all corpora, 1 repetition
#   CORPORA=realtree REPS=2 bench/run-cairn.sh
#   SKIP_STEPS="check prune" bench/run-cairn.sh   # skip steps (names: backup2 backup3 restore check prune)
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
bash "$shared/bench/run.sh"
python3 "$shared/bench/report.py" "$RESULTS" | tee "$RESULTS/report.md"
