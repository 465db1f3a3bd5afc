#!/usr/bin/env bash
# Benchmark: restic backup + restore of ~300 MB through `cairn serve` and through
# `rclone serve restic` (both plain HTTP on loopback), alternating runs.
# Usage: bench/serve_vs_rclone.sh [CAIRN_BINARY] [RUNS]
set -euo pipefail
CAIRN=${1:-target/release/cairn}
RUNS=${2:-2}
W=$(mktemp -d /tmp/serve-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
export RESTIC_PASSWORD=bench
SRC=$W/src
mkdir -p "$SRC/big" "$SRC/small"
# 20 x 10 MiB + 1000 x 100 KiB of incompressible data (~300 MiB).
for i in $(seq 1 20); do head -c 10485760 /dev/urandom > "$SRC/big/f$i"; done
for i in $(seq 1 1000); do head -c 102400 /dev/urandom > "$SRC/small/f$i"; done
du -sh "$SRC"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; echo "server did not start"; exit 1; }

run() { # name
  local name=$1 data=$W/data-$1 p
  rm -rf "$data" "$W/cache" "$W/restore"; mkdir -p "$data"
  p=$(port)
  if [ "$name" = cairn ]; then
    "$CAIRN" serve --listen 127.0.0.1:$p --path "$data" --no-auth -q ${CAIRN_ARGS:-} 2>/dev/null &
  else
    rclone serve restic --addr 127.0.0.1:$p "$data" 2>/dev/null &
  fi
  local pid=$!
  wait_port $p
  local R="rest:http://127.0.0.1:$p/repo"
  restic -r "$R" --cache-dir "$W/cache" init -q
  local t0 t1 t2
  t0=$(date +%s.%N)
  restic -r "$R" --cache-dir "$W/cache" backup -q "$SRC"
  t1=$(date +%s.%N)
  restic -r "$R" --cache-dir "$W/cache" restore latest --target "$W/restore" -q
  t2=$(date +%s.%N)
  local cpu
  cpu=$(awk '{printf "%.2f", ($14 + $15) / 100}' /proc/$pid/stat)
  kill $pid; wait $pid 2>/dev/null || true
  printf "%-6s backup %6.2f s   restore %6.2f s   server CPU %6.2f s\n" "$name" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$cpu"
}

for r in $(seq 1 "$RUNS"); do
  run cairn
  run rclone
done
