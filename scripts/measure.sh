#!/usr/bin/env bash
# Measures what issue #3 asks for, on this machine, with a release build:
#   1. `outpost bench produce`: 8 producers × windows 64 and 512 (single records) and 4 (100-record batches), 64-byte records, fsync = "always";
#      single-record produce, then batch produce (100 records per request).
#   2. bytes written to disk per payload byte (from /proc/PID/io write_bytes) for each run.
#   3. reopen time after kill -9 with a ~1 GB log file (time from spawn to listening).
#   4. the raw-redb ceiling in the same run: criterion's `redb_raw` group of benches/writer.rs
#      (page-fit batches straight into redb at 128/512/1000 records per durable commit).
# Usage: bash scripts/measure.sh [RECORDS]   (default 1,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-1000000}
BIN=target/release/outpost
cargo build --release --quiet
WORK=$(mktemp -d /tmp/outpost-measure.XXXX)
trap 'kill -9 $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

start_broker() {   # $1 = data dir; sets PID and ADDR
  "$BIN" serve --data-dir "$1" --listen 127.0.0.1:0 > "$WORK/out" 2> "$WORK/err" &
  PID=$!
  for _ in $(seq 1 600); do
    ADDR=$(sed -n 's/^outpost: wire listening on //p' "$WORK/out")
    [ -n "$ADDR" ] && return 0
    sleep 0.05
  done
  echo "broker did not start" >&2; cat "$WORK/err" >&2; exit 1
}
written() { awk '/^write_bytes/ {print $2}' /proc/$PID/io; }

run_bench() {  # $1 = label, rest = bench args
  local label=$1; shift
  local before after
  before=$(written)
  local json
  json=$("$BIN" --broker "$ADDR" bench produce --json --quiet "$@")
  after=$(written)
  local records
  records=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["records"])')
  python3 - "$label" "$json" "$before" "$after" "$records" <<'PY'
import json, sys
label, j, before, after, records = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
payload = records * j["record_size"]
print(f"{label}: {j['records_per_sec']:,.0f} records/s, {j['mb_per_sec']:.1f} MB/s, "
      f"ack p50 {j['ack_p50_ms']:.2f} ms p99 {j['ack_p99_ms']:.2f} ms p99.9 {j['ack_p999_ms']:.2f} ms, "
      f"disk writes {(after-before)/payload:.2f} bytes per payload byte")
PY
}

echo "== outpost bench produce ($RECORDS records, 64-byte values, fsync always)"
start_broker "$WORK/data"
run_bench "single-record produce, 8 producers x 64 in flight" --producers 8 --window 64 --records "$RECORDS" --topic single
run_bench "single-record produce, 8 producers x 512 in flight" --producers 8 --window 512 --records $((RECORDS * 2)) --topic single512
run_bench "batch produce (100/request), 8 producers x 4 in flight" --producers 8 --window 4 --batch 100 --records $((RECORDS * 4)) --topic batched
echo "log file: $(du -h "$WORK/data/outpost.redb" | cut -f1)"
kill -TERM $PID; wait $PID || true

echo "== reopen after kill -9 with a ~1 GB log"
start_broker "$WORK/big"
"$BIN" --broker "$ADDR" bench produce --quiet --producers 4 --window 4 --batch 200 --record-size 1000 --records 1000000 --topic big > /dev/null
kill -9 $PID; wait $PID 2>/dev/null || true
echo "log file: $(du -h "$WORK/big/outpost.redb" | cut -f1)"
t0=$(date +%s%N); start_broker "$WORK/big"; t1=$(date +%s%N)
echo "reopen after kill -9 (spawn to listening, includes redb quick repair): $(( (t1 - t0) / 1000000 )) ms"
kill -TERM $PID; wait $PID || true

echo "== raw redb ceiling (criterion, same page-fit batches, durable commits)"
cargo bench --quiet --bench writer -- --noplot redb_raw 2>/dev/null | grep -E "^redb_raw|thrpt" || echo "(criterion bench failed)"
