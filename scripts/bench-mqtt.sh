#!/usr/bin/env bash
# Outpost's MQTT broker against a private Mosquitto, on this machine, in one run:
#   1. QoS 1, 8 publishers x 64 in flight, 64-byte payloads: acknowledged msgs/s, p99 PUBACK.
#   2. QoS 0, 8 publishers, 1 wildcard subscriber (bench/#): delivered msgs/s, messages lost.
#   3. RSS (VmRSS) idle, and holding 10,000 idle MQTT connections (`outpost bench mqtt-idle`).
# Cases 1 and 2 run RUNS times, alternating the brokers; the table shows the medians, then
# every raw run. Both brokers run at once on loopback, on free ports (18xx3), never 1883, and
# are stopped on exit. The load generator shares the machine's cores with the brokers.
#
# Usage: bash scripts/bench-mqtt.sh
#   RUNS=3 DURATION=5 CONNECTIONS=10000 (environment, defaults shown)
#   CARGO_TARGET_DIR: cargo's target directory (default ./target), e.g. /work/target-bench
#
# Outpost: `[log] fsync = "always"` and every other key at its default (max_connections
# 16384, max_queued_messages 1000, max_queued_qos0_messages 10000).
# Mosquitto (2.0.x), besides the listener and persistence (autosave every second):
#   max_inflight_messages 1000   QoS 1/2 in flight per client (default 20)
#   max_queued_messages 1000000  per-client queue beyond that (default 1000); QoS 0 to an
#                                online client is dropped when this many packets wait
#   set_tcp_nodelay true         Outpost sets TCP_NODELAY; Mosquitto's default leaves Nagle on
#                                and delays its acks and deliveries (FIELD-NOTES.md)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-10000}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/outpost
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
if [ ! -x "$MOSQUITTO" ]; then
  echo "no Mosquitto at $MOSQUITTO: install it (apt-get install -y mosquitto; then" \
       "systemctl disable --now mosquitto, so it does not hold port 1883) or set MOSQUITTO=" >&2
  exit 1
fi

cargo build --release --quiet
# Each process (a broker, the load generator) holds CONNECTIONS sockets plus its own files.
NOFILE=$((CONNECTIONS + 1024))
if ! ulimit -n "$NOFILE" 2>/dev/null; then
  ulimit -n "$(ulimit -Hn)"
  echo "warning: cannot raise the open-file limit to $NOFILE; it is $(ulimit -n)" >&2
fi

WORK=$(mktemp -d /tmp/outpost-bench-mqtt.XXXX)
OP_PID="" MQ_PID=""
cleanup() {
  for pid in $OP_PID $MQ_PID; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $OP_PID $MQ_PID; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
RESULTS=$WORK/results.jsonl

free_port() {  # a free loopback port 18xx3, different from $1
  python3 - "$1" <<'PY'
import random, socket, sys
ports = [18003 + 10 * i for i in range(100)]
random.shuffle(ports)
for p in ports:
    if str(p) == sys.argv[1]:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
PY
}

wait_port() {  # $1 = port, $2 = pid
  for _ in $(seq 1 200); do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

OP_PORT=$(free_port 0)
MQ_PORT=$(free_port "$OP_PORT")

mkdir -p "$WORK/outpost-data" "$WORK/mosquitto"
cat > "$WORK/outpost.toml" <<EOF
data_dir = "$WORK/outpost-data"
[wire]
listen = "127.0.0.1:0"
[log]
fsync = "always"
[mqtt]
listen = "127.0.0.1:$OP_PORT"
EOF
cat > "$WORK/mosquitto.conf" <<EOF
listener $MQ_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $WORK/mosquitto/
autosave_interval 1
max_inflight_messages 1000
max_queued_messages 1000000
set_tcp_nodelay true
EOF
# Run as root, Mosquitto drops to user mosquitto: it must own its directory or every
# autosave fails.
[ "$(id -u)" = 0 ] && chown mosquitto: "$WORK/mosquitto"

"$BIN" serve --config "$WORK/outpost.toml" > "$WORK/outpost.out" 2> "$WORK/outpost.err" &
OP_PID=$!
"$MOSQUITTO" -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.log" 2>&1 &
MQ_PID=$!
wait_port "$OP_PORT" "$OP_PID" || { echo "outpost did not start" >&2; cat "$WORK/outpost.err" >&2; exit 1; }
wait_port "$MQ_PORT" "$MQ_PID" || { echo "mosquitto did not start" >&2; cat "$WORK/mosquitto.log" >&2; exit 1; }
echo "outpost $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo +dirty) on :$OP_PORT (pid $OP_PID), $("$MOSQUITTO" -h 2>/dev/null | head -1) on :$MQ_PORT (pid $MQ_PID)"

pid_of() { if [ "$1" = outpost ]; then echo "$OP_PID"; else echo "$MQ_PID"; fi; }
port_of() { if [ "$1" = outpost ]; then echo "$OP_PORT"; else echo "$MQ_PORT"; fi; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

alive() {  # $1 = broker: fails loudly if it is gone
  local pid
  pid=$(pid_of "$1")
  kill -0 "$pid" 2>/dev/null && return 0
  echo "!! $1 (pid $pid) is gone" >&2
  [ "$1" = outpost ] && tail -20 "$WORK/outpost.err" >&2 || tail -20 "$WORK/mosquitto.log" >&2
  exit 1
}

bench() {  # $1 = broker, $2 = case, $3 = run, rest = bench mqtt args; appends one JSON line
  local broker=$1 case=$2 run=$3; shift 3
  local cmd=("$BIN" bench mqtt --addr "127.0.0.1:$(port_of "$broker")" --json --quiet "$@")
  local out
  if ! out=$("${cmd[@]}" 2> "$WORK/bench.err"); then
    echo "!! $broker $case run $run failed: ${cmd[*]}" >&2
    cat "$WORK/bench.err" >&2
    alive "$broker"
    echo "{\"broker\":\"$broker\",\"case\":\"$case\",\"run\":$run,\"failed\":true}" >> "$RESULTS"
    return 0
  fi
  alive "$broker"
  python3 - "$out" "$broker" "$case" "$run" >> "$RESULTS" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
d.update(broker=sys.argv[2], case=sys.argv[3], run=int(sys.argv[4]))
print(json.dumps(d))
print(f"  {d['broker']} {d['case']} run {d['run']}: {d['msgs_per_sec']:,.0f} published/s, "
      f"p99 ack {d['ack_p99_ms']:.2f} ms, delivered {d['delivered_per_sec']:,.0f}/s, "
      f"received {d['received']:,} of {d['expected']:,}", file=sys.stderr)
PY
}

idle_rss() {  # $1 = broker: RSS idle, holding $CONNECTIONS connections, after closing them
  local broker=$1 pid
  pid=$(pid_of "$broker")
  local idle
  idle=$(kib "$pid" VmRSS)
  "$BIN" bench mqtt-idle --addr "127.0.0.1:$(port_of "$broker")" --connections "$CONNECTIONS" --hold 8 \
    > "$WORK/idle.out" 2> "$WORK/idle.err" &
  local ipid=$!
  for _ in $(seq 1 1200); do
    grep -q '^holding' "$WORK/idle.out" && break
    kill -0 "$ipid" 2>/dev/null || break
    sleep 0.1
  done
  sleep 3
  local held connected
  held=$(kib "$pid" VmRSS)
  connected=$(sed -n 's/^holding \([0-9]*\) MQTT connections.*/\1/p' "$WORK/idle.out")
  if ! wait "$ipid"; then
    echo "!! $broker: bench mqtt-idle --connections $CONNECTIONS failed" >&2
    cat "$WORK/idle.err" >&2
  fi
  sed -n 's/^connected/  '"$broker"': connected/p' "$WORK/idle.out"
  alive "$broker"
  sleep 2
  local after
  after=$(kib "$pid" VmRSS)
  echo "{\"broker\":\"$broker\",\"case\":\"rss\",\"idle_kib\":$idle,\"held_kib\":$held,\"after_kib\":$after,\"connected\":${connected:-0}}" >> "$RESULTS"
  echo "  $broker RSS: idle $idle KiB, ${connected:-0} connections $held KiB, closed $after KiB"
}

echo "== 3. RSS idle and with $CONNECTIONS idle connections (fresh brokers)"
sleep 2
for broker in outpost mosquitto; do idle_rss "$broker"; done

echo "== 1. QoS 1, 8 publishers x 64 in flight, 64 B, ${DURATION} s x $RUNS runs"
for run in $(seq 1 "$RUNS"); do
  for broker in outpost mosquitto; do
    bench "$broker" qos1 "$run" --qos 1 --publishers 8 --inflight 64 --payload 64 --duration "$DURATION" --topic "q1r$run"
  done
done

echo "== 2. QoS 0, 8 publishers, 1 wildcard subscriber, 64 B, ${DURATION} s x $RUNS runs"
for run in $(seq 1 "$RUNS"); do
  for broker in outpost mosquitto; do
    bench "$broker" qos0 "$run" --qos 0 --publishers 8 --subscribers 1 --payload 64 --duration "$DURATION" --topic "q0r$run"
  done
done

for broker in outpost mosquitto; do
  pid=$(pid_of "$broker")
  echo "{\"broker\":\"$broker\",\"case\":\"end\",\"rss_kib\":$(kib "$pid" VmRSS),\"hwm_kib\":$(kib "$pid" VmHWM)}" >> "$RESULTS"
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def get(broker, case):
    return [r for r in rows if r["broker"] == broker and r["case"] == case and not r.get("failed")]
def med(broker, case, key):
    v = [r[key] for r in get(broker, case)]
    return statistics.median(v) if v else float("nan")
def one(broker, case, key):
    r = get(broker, case)
    return r[0][key] if r else float("nan")
lines = [
    ("QoS 1 acked msgs/s (8 pub x 64 in flight)", lambda b: med(b, "qos1", "msgs_per_sec"), "{:,.0f}"),
    ("QoS 1 PUBACK p50 ms", lambda b: med(b, "qos1", "ack_p50_ms"), "{:.2f}"),
    ("QoS 1 PUBACK p99 ms", lambda b: med(b, "qos1", "ack_p99_ms"), "{:.2f}"),
    ("QoS 0 sent msgs/s (8 pub)", lambda b: med(b, "qos0", "msgs_per_sec"), "{:,.0f}"),
    ("QoS 0 delivered msgs/s (1 sub on #)", lambda b: med(b, "qos0", "delivered_per_sec"), "{:,.0f}"),
    ("QoS 0 lost per run (median)", lambda b: med(b, "qos0", "lost"), "{:,.0f}"),
    ("QoS 0 lost % (median)", lambda b: statistics.median([100 * r["lost"] / max(r["expected"], 1) for r in get(b, "qos0")] or [float("nan")]), "{:.1f}"),
    ("QoS 0 end-to-end p50 ms", lambda b: med(b, "qos0", "e2e_p50_ms"), "{:.1f}"),
    ("RSS idle MiB", lambda b: one(b, "rss", "idle_kib") / 1024, "{:.1f}"),
    ("RSS with idle connections MiB", lambda b: one(b, "rss", "held_kib") / 1024, "{:.1f}"),
    ("KiB per idle connection", lambda b: (one(b, "rss", "held_kib") - one(b, "rss", "idle_kib")) / max(one(b, "rss", "connected"), 1), "{:.2f}"),
    ("RSS after closing them MiB", lambda b: one(b, "rss", "after_kib") / 1024, "{:.1f}"),
    ("RSS at the end MiB", lambda b: one(b, "end", "rss_kib") / 1024, "{:.1f}"),
    ("peak RSS (VmHWM) MiB", lambda b: one(b, "end", "hwm_kib") / 1024, "{:.1f}"),
]
print()
print(f"{'':42} {'Outpost':>12} {'Mosquitto':>12} {'ratio O/M':>10}")
for name, f, fmt in lines:
    o, m = f("outpost"), f("mosquitto")
    ratio = o / m if m else float("nan")
    print(f"{name:42} {fmt.format(o):>12} {fmt.format(m):>12} {ratio:>10.2f}")
c = {b: one(b, "rss", "connected") for b in ("outpost", "mosquitto")}
print(f"(idle connections held: outpost {c['outpost']}, mosquitto {c['mosquitto']})")
print("\nraw runs:")
for r in rows:
    if r["case"] in ("qos1", "qos0"):
        if r.get("failed"):
            print(f"  {r['broker']:9} {r['case']} run {r['run']}: FAILED")
            continue
        print(f"  {r['broker']:9} {r['case']} run {r['run']}: published {r['msgs_per_sec']:>9,.0f}/s "
              f"ack p50/p99/p99.9 {r['ack_p50_ms']:.2f}/{r['ack_p99_ms']:.2f}/{r['ack_p999_ms']:.2f} ms"
              + (f"; delivered {r['delivered_per_sec']:,.0f}/s, received {r['received']:,} of {r['expected']:,} "
                 f"(lost {r['lost']:,}, dup {r['duplicates']}, ooo {r['out_of_order']}), "
                 f"e2e p50/p99 {r['e2e_p50_ms']:.1f}/{r['e2e_p99_ms']:.1f} ms" if r["subscribers"] else ""))
PY
