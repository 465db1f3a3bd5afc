#!/usr/bin/env bash
# Seed and run every fuzz target for a bounded time (see README.md).
# Usage: fuzz/run-all.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s, all targets)
set -u
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
fi
export RUSTC_BOOTSTRAP=1 # cargo-fuzz passes -Z flags; lets a stable toolchain accept them
cargo run -q --example seed_corpus >/dev/null || exit 1
cargo fuzz build || exit 1
mkdir -p logs
status=0
for t in "${targets[@]}"; do
    if cargo fuzz run "$t" -- -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        >"logs/$t.log" 2>&1; then
        result=ok
    else
        result=FINDING
        status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$')
    echo "$t: $result, ${runs:-?} executions in ${secs}s (log: fuzz/logs/$t.log)"
done
exit $status
