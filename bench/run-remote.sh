#!/usr/bin/env bash
# Side-by-side benchmark of Cairn against restic through remote backends on loopback:
#   rest   — both tools back up to `cairn serve` (restic's REST protocol, HTTP/1.1 or HTTP/2)
#   sftp   — both tools back up to OpenSSH's sshd (a throwaway instance on a free port)
#   s3     — both tools back up to moto_server (pip install 'moto[server]'; slow in itself)
#   rclone — both tools start `rclone serve restic --stdio` on a local-disk rclone remote
# Steps per tool and transport: init, first backup, unchanged re-run, restore (fresh directory).
#
#   cargo build --release -p cairn
#   bench/run-remote.sh                               # realtree, rest + sftp, 2 repetitions
#   CORPUS=smallfiles TRANSPORTS=sftp REPS=1 bench/run-remote.sh
#   TRANSPORTS="s3 rclone" bench/run-remote.sh
#
# Needs: apt-get install -y restic openssh-server time; the corpora of ../shared/bench
# (python3 ../shared/bench/corpus.py build all). Prints medians and ratios restic/cairn
# (above 1 = Cairn faster). Wall times include an fsync of the server directory.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
bin=${CANDIDATE:-$here/target/release/cairn}
[[ -x $bin ]] || { echo "build first: cargo build --release -p cairn" >&2; exit 1; }
CORPUS=${CORPUS:-realtree}
TRANSPORTS=${TRANSPORTS:-"rest sftp"}
REPS=${REPS:-2}
RESTIC=${RESTIC:-$(command -v restic)}
work=${WORK:-/tmp/bench-remote}
if [[ -n ${SRC:-} ]]; then
  src=$SRC   # any directory (smoke tests)
else
  src=/tmp/bench-corpus/work/$CORPUS
  [[ -d /tmp/bench-corpus/$CORPUS ]] || python3 "$shared/bench/corpus.py" build "$CORPUS"
  python3 "$shared/bench/corpus.py" reset "$CORPUS" >/dev/null
fi
cp "$bin" /tmp/cairn-bench-remote-bin
CAIRN=/tmp/cairn-bench-remote-bin
rm -rf "$work"; mkdir -p "$work"
results=$work/results.csv
echo "transport,tool,rep,step,wall,rss_kb" >"$results"
export RESTIC_PASSWORD=bench-password

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start_rest() {
  local port; port=$(free_port)
  mkdir -p "$work/rest-data"
  "$CAIRN" serve --path "$work/rest-data" --listen "127.0.0.1:$port" --no-auth --quiet \
    >"$work/serve.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  REST_URL="rest:http://127.0.0.1:$port"
}

start_sftp() {
  local port; port=$(free_port)
  local d=$work/sshd; mkdir -p "$d"
  ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$d/user_key"
  cat "$d/user_key.pub" >"$d/authorized_keys"; chmod 600 "$d/authorized_keys"
  cat >"$d/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $d/host_key
AuthorizedKeysFile $d/authorized_keys
PasswordAuthentication no
PermitRootLogin prohibit-password
StrictModes no
Subsystem sftp internal-sftp
PidFile $d/sshd.pid
EOF
  /usr/sbin/sshd -D -f "$d/sshd_config" -E "$d/sshd.log" &
  pids+=($!)
  for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  SFTP_CMD="ssh -p $port -i $d/user_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR $(whoami)@127.0.0.1 -s sftp"
  mkdir -p "$work/sftp-data"
  SFTP_BASE=$work/sftp-data
}

start_s3() {
  local port; port=$(free_port)
  moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
  S3_URL="s3:http://127.0.0.1:$port"
}

start_rclone() {
  export RCLONE_CONFIG_BENCHLOCAL_TYPE=local
  mkdir -p "$work/rclone-data"
  RCLONE_BASE=$work/rclone-data
}

# measure TRANSPORT TOOL REP STEP CMD... : wall seconds and peak RSS of the client
measure() {
  local t=$1 tool=$2 rep=$3 step=$4; shift 4
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  local out=$work/time.$$
  if ! /usr/bin/time -f "%e %M" -o "$out" "$@" >"$work/last.log" 2>&1; then
    echo "FAILED: $t $tool $step" >&2; tail -20 "$work/last.log" >&2; return 1
  fi
  sync
  read -r wall rss <"$out"
  echo "$t,$tool,$rep,$step,$wall,$rss" >>"$results"
  printf '%-5s %-7s rep %s %-8s %6.2fs %7d KB\n' "$t" "$tool" "$rep" "$step" "$wall" "$rss" >&2
}

run_tool() {  # transport tool rep
  local t=$1 tool=$2 rep=$3 exe repo opts=()
  case $tool in restic) exe=$RESTIC ;; cairn) exe=$CAIRN ;; esac
  case $t in
    rest) repo="$REST_URL/$tool-$rep" ;;
    sftp) repo="sftp:127.0.0.1:$SFTP_BASE/$tool-$rep"; opts=(-o "sftp.command=$SFTP_CMD") ;;
    s3) repo="$S3_URL/bench-$tool-$rep" ;;
    rclone) repo="rclone:benchlocal:$RCLONE_BASE/$tool-$rep" ;;
  esac
  local cache=$work/cache-$t-$tool-$rep restore=$work/restore-$t-$tool-$rep
  export RESTIC_CACHE_DIR=$cache
  measure "$t" "$tool" "$rep" init "$exe" -r "$repo" "${opts[@]}" init
  measure "$t" "$tool" "$rep" backup1 "$exe" -r "$repo" "${opts[@]}" backup --host bench "$src"
  measure "$t" "$tool" "$rep" backup2 "$exe" -r "$repo" "${opts[@]}" backup --host bench "$src"
  measure "$t" "$tool" "$rep" restore "$exe" -r "$repo" "${opts[@]}" restore latest --target "$restore"
  rm -rf "$restore" "$cache"
}

for t in $TRANSPORTS; do
  case $t in
    rest) start_rest ;; sftp) start_sftp ;; s3) start_s3 ;; rclone) start_rclone ;;
    *) echo "unknown transport $t" >&2; exit 1 ;;
  esac
  for rep in $(seq "$REPS"); do
    for tool in restic cairn; do run_tool "$t" "$tool" "$rep"; done
  done
  rm -rf "$work/rest-data" "$work/sftp-data" "$work/rclone-data"
done

python3 - "$results" "${SRC:-$CORPUS}" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"\n## Remote backends, source {sys.argv[2]} (median wall s, peak client RSS MB)\n")
print("| transport | step | restic | cairn | restic/cairn | RSS restic | RSS cairn |")
print("|---|---|---|---|---|---|---|")
for t in dict.fromkeys(r["transport"] for r in rows):
    for step in ["init", "backup1", "backup2", "restore"]:
        def med(tool, key):
            v = [float(r[key]) for r in rows if r["transport"] == t and r["tool"] == tool and r["step"] == step]
            return statistics.median(v) if v else float("nan")
        a, b = med("restic", "wall"), med("cairn", "wall")
        print(f"| {t} | {step} | {a:.2f} | {b:.2f} | {a / b:.2f}x | {med('restic', 'rss_kb') / 1024:.0f} | {med('cairn', 'rss_kb') / 1024:.0f} |")
EOF
