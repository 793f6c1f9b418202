#!/usr/bin/env bash
# Backlog drain of a Kafka bridge against librdkafka producing the same records to the same
# broker, in one run, per compression:
#
#   broker     tansu 0.6.0 (a Kafka-protocol broker) with sqlite storage in a temp dir, on an
#              ephemeral loopback port. Topics `edge` (the bridge's) and `ref` (librdkafka's),
#              one partition each, are created first; then tansu is stopped.
#   outpost    `outpost serve` with one Kafka bridge (route bench -> edge, partitioning same),
#              loaded with RECORDS records by `outpost produce` while tansu is down. Then tansu
#              starts; drain time = first poll of `outpost bridge status --json` with
#              acked == RECORDS, minus tansu's start (so it includes the first reconnect).
#   reference  scripts/kafka-reference-producer.py: confluent-kafka (librdkafka) producing the
#              same values with the same four origin headers the bridge adds, acks=all,
#              linger.ms and batch.size as below; time = first produce to last delivery report.
# Every record is a distinct 64-byte value (8-digit sequence number, '-', 55 'x'). At the end
# of each case the high watermarks of both topics are printed (edge: RECORDS plus duplicates,
# if any; ref: RECORDS).
#
# Usage: bash scripts/bench-kafka.sh
#   environment (defaults shown):
#   RECORDS=1000000
#   COMPRESSIONS="none gzip"
#   TANSU=tansu          the tansu binary (a release build drains far faster than the --debug
#                        one CI installs; both work)
#   MAX_INFLIGHT=20000   the route's window (records per partition beyond the checkpoint)
#   BATCH_BYTES=1048576  the route's batch_bytes (log reads and produce batches)
#   REQUESTS=1           the bridge's requests_in_flight
#   LINGER_MS=5  RDK_BATCH=1048576   the reference producer's linger.ms and batch.size
#   REFERENCE=1          0: skip the librdkafka reference (to try bridge settings quickly)
#   PHASE_TIMEOUT=900    seconds any one phase may take before we give up
#   PYTHON=.venv/bin/python   with confluent-kafka (scripts/test.sh installs it)
#   OUTPOST=path         default target/release/outpost (built when missing)
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-1000000}
COMPRESSIONS=${COMPRESSIONS:-"none gzip"}
TANSU=${TANSU:-tansu}
MAX_INFLIGHT=${MAX_INFLIGHT:-20000}
BATCH_BYTES=${BATCH_BYTES:-1048576}
REQUESTS=${REQUESTS:-1}
LINGER_MS=${LINGER_MS:-5}
RDK_BATCH=${RDK_BATCH:-1048576}
PHASE_TIMEOUT=${PHASE_TIMEOUT:-900}
REFERENCE=${REFERENCE:-1}
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
BIN=${OUTPOST:-target/release/outpost}
if [ -z "${OUTPOST:-}" ] && [ ! -x "$BIN" ]; then cargo build --release --quiet; fi
"$PYTHON" -c 'import confluent_kafka' || {
  echo "FAIL: $PYTHON has no confluent_kafka (bash scripts/test.sh installs it)" >&2
  exit 1
}

WORK=$(mktemp -d /tmp/outpost-bench-kafka.XXXX)
TANSU_PID=""
EDGE_PID=""
cleanup() {
  for p in $EDGE_PID $TANSU_PID; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# tansu reads CLUSTER_ID, LISTENER_URL, ADVERTISED_LISTENER_URL, STORAGE_ENGINE and a .env in
# its working directory: run it with those unset, from its own directory.
start_tansu() {  # $1 = dir, $2 = port; sets TANSU_PID, returns when it accepts connections
  (cd "$1" && exec env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE \
    "$TANSU" broker --listener-url "tcp://127.0.0.1:$2" --advertised-listener-url "tcp://127.0.0.1:$2" \
    --storage-engine "sqlite://tansu.db" >> "$1/tansu.log" 2>&1) &
  TANSU_PID=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    kill -0 "$TANSU_PID" 2>/dev/null || { echo "FAIL: tansu exited; $1/tansu.log:" >&2; tail -5 "$1/tansu.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "FAIL: tansu did not listen on $2 within 10 s" >&2
  exit 1
}
stop_tansu() {
  kill "$TANSU_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$TANSU_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$TANSU_PID" 2>/dev/null || true
  wait "$TANSU_PID" 2>/dev/null || true
  TANSU_PID=""
}
watermark() {  # $1 = port, $2 = topic
  "$PYTHON" - "$1" "$2" <<'EOF'
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": "127.0.0.1:" + sys.argv[1], "group.id": "bench-watermark"})
print(c.get_watermark_offsets(TopicPartition(sys.argv[2], 0), timeout=30)[1])
c.close()
EOF
}

VALUES="$WORK/values"
"$PYTHON" -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(int(sys.argv[2])):
        f.write('%08d-' % i + 'x' * 55 + '\n')
" "$VALUES" "$RECORDS"

echo "records: $RECORDS x 64 bytes; tansu: $("$TANSU" --version); outpost window $MAX_INFLIGHT, batch_bytes $BATCH_BYTES, requests_in_flight $REQUESTS; librdkafka linger.ms $LINGER_MS, batch.size $RDK_BATCH"
printf '%-12s %-12s %10s %12s %12s\n' compression system seconds records/s watermark
for compression in $COMPRESSIONS; do
  dir="$WORK/$compression"
  mkdir -p "$dir/tansu" "$dir/edge"
  port=$(free_port)
  start_tansu "$dir/tansu" "$port"
  "$TANSU" topic create edge --partitions 1 --broker "tcp://127.0.0.1:$port" > /dev/null
  "$TANSU" topic create ref --partitions 1 --broker "tcp://127.0.0.1:$port" > /dev/null
  stop_tansu

  wire=$(free_port) mqtt=$(free_port) metrics=$(free_port)
  cat > "$dir/edge/outpost.toml" <<EOF
data_dir = "$dir/edge/data"
gateway_id = "bench"
[mqtt]
listen = "127.0.0.1:$mqtt"
[wire]
listen = "127.0.0.1:$wire"
[udp]
enabled = false
[metrics]
listen = "127.0.0.1:$metrics"
[[bridge]]
name = "bench"
upstream = "kafka://127.0.0.1:$port"
reconnect_min_ms = 500
reconnect_max_ms = 1000
requests_in_flight = $REQUESTS
[[bridge.route]]
topic = "bench"
upstream_topic = "edge"
compression = "$compression"
max_inflight = $MAX_INFLIGHT
batch_bytes = $BATCH_BYTES
EOF
  "$BIN" serve --config "$dir/edge/outpost.toml" > "$dir/edge/out" 2> "$dir/edge/err" &
  EDGE_PID=$!
  for _ in $(seq 1 100); do grep -q '^outpost: ready' "$dir/edge/out" 2>/dev/null && break; sleep 0.1; done
  export OUTPOST_BROKER="127.0.0.1:$wire"
  "$BIN" topics create bench --partitions 1 > /dev/null
  "$BIN" produce bench < "$VALUES" > /dev/null

  start_tansu "$dir/tansu" "$port"
  t0=$(now)
  acked=0
  deadline=$(( $(date +%s) + PHASE_TIMEOUT ))
  while [ "$acked" -lt "$RECORDS" ]; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "FAIL: drain not done in $PHASE_TIMEOUT s (acked $acked)" >&2
      "$BIN" bridge status >&2 || true
      exit 1
    fi
    sleep 0.1
    read -r acked dropped < <("$BIN" bridge status --json | "$PYTHON" -c 'import json,sys; ps=[p for r in json.load(sys.stdin)[0]["routes"] for p in r["partitions"]]; print(sum(p["acked"] for p in ps), sum(p["dropped"] for p in ps))')
    if [ "$dropped" -gt 0 ]; then
      # Retention (e.g. the free-disk floor) deleted records before they were forwarded: the
      # acknowledged count then includes records that never went upstream.
      echo "FAIL: the edge dropped $dropped records (see $dir/edge/err: retention or the disk floor)" >&2
      exit 1
    fi
  done
  t1=$(now)
  secs=$(echo "$t1 - $t0" | bc -l)
  kill "$EDGE_PID"; wait "$EDGE_PID" 2>/dev/null || true; EDGE_PID=""
  printf '%-12s %-12s %10.2f %12.0f %12s\n' "$compression" outpost "$secs" "$(echo "$RECORDS / $secs" | bc -l)" "$(watermark "$port" edge)"

  if [ "$REFERENCE" = 0 ]; then stop_tansu; continue; fi
  ref=$("$PYTHON" scripts/kafka-reference-producer.py "127.0.0.1:$port" ref "$VALUES" "$compression" "$LINGER_MS" "$RDK_BATCH")
  rsecs=$(echo "$ref" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
  printf '%-12s %-12s %10.2f %12.0f %12s   %s\n' "$compression" librdkafka "$rsecs" "$(echo "$RECORDS / $rsecs" | bc -l)" "$(watermark "$port" ref)" "$ref"
  stop_tansu
done
