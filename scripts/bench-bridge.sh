#!/usr/bin/env bash
# Backlog drain of a bridge, Outpost against a Mosquitto edge bridge, in one run:
#   RECORDS 64-byte records are queued on the edge while the upstream is down; then the
#   upstream starts, and we measure the time until all are through.
#
#   upstream   a private Mosquitto (max_queued_messages 0, max_inflight_messages 1000) and a
#              counting subscriber on bench/# (mosquitto_sub, QoS 1, persistent session
#              created before the edge is loaded, so the subscription exists the moment the
#              upstream starts and nothing can reach the upstream before it).
#   outpost    `outpost serve` with a bridge (route bench -> bench/{partition}), loaded with
#              `outpost produce` while the upstream is down. Drain time = first poll (every
#              100 ms) of `outpost bridge status` with acked == RECORDS, minus upstream start.
#   mosquitto  a Mosquitto edge (persistence on) bridged with `topic bench/# out 1`, loaded
#              with mosquitto_pub (QoS 1) while the upstream is down. Drain time = last
#              arrival at the subscriber (polled every 100 ms), minus upstream start.
#
# Every record is a distinct 64-byte line (8-digit sequence number, '-', 55 'x'), the same
# file for both systems, so the subscriber's output gives arrived, lost and duplicates.
#
# Usage: bash scripts/bench-bridge.sh
#   environment (defaults shown):
#   RECORDS=1000000
#   CASES="outpost:5 outpost:3.1.1 mosquitto:3.1.1 mosquitto-defaults:3.1.1"
#        system:protocol; systems: outpost, mosquitto (edge tuned as below),
#        mosquitto-defaults (edge with Mosquitto's default queue and in-flight limits);
#        protocols: 5, 3.1.1 (mosquitto:5 is a bridge_protocol_version mqttv50 bridge)
#   PHASE_TIMEOUT=120  seconds any one phase (start, load, drain) may take before we give up
#   STALL=10           seconds without a new arrival after which a drain counts as finished
#   OUTPOST=path       the binary; else $CARGO_TARGET_DIR/release/outpost or
#                      target/release/outpost if present, else `cargo build --release`
#   MOSQUITTO=/usr/sbin/mosquitto
# Exits non-zero with a message when a phase times out or a process dies.
#
# Settings besides listeners and data directories:
#   Outpost bridge: reconnect_min_ms 500, reconnect_max_ms 1000 (default cap 30 s; a backlog
#     loaded for several seconds would otherwise put the first attempt up to seconds after
#     the upstream is back), every other key at its default (tcp_nodelay false, route
#     max_inflight 1000, qos 1).
#   Mosquitto edge: persistence true (autosave_interval at its default, 1800 s: saving a
#     database of a million queued messages every second would stall it), sys_interval 1,
#     bridge: cleansession false, restart_timeout 1 (constant 1 s; default 5 s rising to 30 s).
#     "mosquitto" also sets max_queued_messages 0 (no limit; default 1000, beyond which
#     messages for the offline bridge are dropped) and max_inflight_messages 1000 (default
#     20, also the bridge's window).
# The edge is loaded with 50,000 lines per mosquitto_pub -l: mosquitto_pub 2.0.11 in -l mode
# with QoS 1 disconnects at the first PUBACK whose 16-bit message id equals the last
# message's, so with more than 65,535 lines it exits 0 having sent only part of its input.
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-1000000}
CASES=${CASES:-"outpost:5 outpost:3.1.1 mosquitto:3.1.1 mosquitto-defaults:3.1.1"}
PHASE_TIMEOUT=${PHASE_TIMEOUT:-120}
STALL=${STALL:-10}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
LINE_BYTES=65            # 64-byte record + newline, in the generator and the subscriber's output
PUB_CHUNK=50000          # lines per mosquitto_pub -l (below 65,535, see above)
POLL=0.1

die() { echo "bench-bridge: $*" >&2; exit 1; }
for tool in "$MOSQUITTO" mosquitto_pub mosquitto_sub python3; do
  command -v "$tool" > /dev/null || die "$tool not found (apt-get install -y mosquitto mosquitto-clients)"
done

if [ -z "${OUTPOST:-}" ]; then
  for candidate in "${CARGO_TARGET_DIR:-target}/release/outpost" target/release/outpost; do
    [ -x "$candidate" ] && { OUTPOST=$candidate; break; }
  done
fi
if [ -z "${OUTPOST:-}" ]; then
  cargo build --release --quiet
  OUTPOST=${CARGO_TARGET_DIR:-target}/release/outpost
fi
[ -x "$OUTPOST" ] || die "no outpost binary at $OUTPOST"

WORK=$(mktemp -d /tmp/outpost-bench-bridge.XXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
RESULTS=$WORK/results.jsonl

now() { date +%s.%N; }

stop_pid() {  # $1 = pid: TERM, then KILL after 20 s (Mosquitto saves its database on TERM)
  kill -TERM "$1" 2> /dev/null || return 0
  for _ in $(seq 1 200); do
    kill -0 "$1" 2> /dev/null || { wait "$1" 2> /dev/null || true; return 0; }
    sleep 0.1
  done
  echo "bench-bridge: pid $1 ignored TERM for 20 s, killing it" >&2
  kill -KILL "$1" 2> /dev/null || true
  wait "$1" 2> /dev/null || true
}

spawn() {  # $1 = log file, rest = command; sets PID and remembers it for cleanup
  local log=$1; shift
  "$@" > "$log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
}

wait_port() {  # $1 = port, $2 = pid, $3 = what, $4 = its log
  local deadline=$((SECONDS + PHASE_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$2" 2> /dev/null || { tail -20 "$4" >&2; die "$3 exited before listening on $1"; }
    (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
    sleep 0.05
  done
  tail -20 "$4" >&2
  die "timeout: $3 not listening on 127.0.0.1:$1 after ${PHASE_TIMEOUT} s"
}

free_ports() {  # $1 = how many: distinct free ephemeral loopback ports
  python3 - "$1" << 'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

sys_value() {  # $1 = port, $2 = $SYS topic: its next value (sys_interval 1)
  timeout 5 mosquitto_sub -h 127.0.0.1 -p "$1" -t "$2" -C 1 -W 4 2> /dev/null || echo "?"
}

mosquitto_dir() {  # $1 = dir: run as root, Mosquitto drops to user mosquitto and must own it
  mkdir -p "$1"
  if [ "$(id -u)" = 0 ]; then chown mosquitto: "$1"; fi
}

# --- input: RECORDS distinct 64-byte lines, and the same split for mosquitto_pub ---
python3 - "$RECORDS" > "$WORK/lines.txt" << 'PY'
import sys
pad = "x" * 55
sys.stdout.write("".join(f"{i:08d}-{pad}\n" for i in range(int(sys.argv[1]))))
PY
mkdir "$WORK/chunks"
split -l "$PUB_CHUNK" -d -a 4 "$WORK/lines.txt" "$WORK/chunks/c."

# --- upstream and its subscriber ---
upstream_conf() {  # $1 = dir, $2 = port
  mosquitto_dir "$1/data"
  cat > "$1/upstream.conf" << EOF
listener $2 127.0.0.1
allow_anonymous true
max_queued_messages 0
max_inflight_messages 1000
# Persistence only so that the counting subscriber's session (created before the edge is
# loaded) survives the restart; no autosave during the run.
persistence true
persistence_location $1/data/
EOF
}

start_upstream() {  # $1 = dir, $2 = port; sets UP_PID
  spawn "$1/upstream.log" "$MOSQUITTO" -c "$1/upstream.conf"
  UP_PID=$PID
  wait_port "$2" "$UP_PID" "upstream mosquitto" "$1/upstream.log"
}

create_subscriber_session() {  # $1 = dir, $2 = port: persistent QoS 1 session on bench/#
  start_upstream "$1" "$2"
  timeout "$PHASE_TIMEOUT" mosquitto_sub -h 127.0.0.1 -p "$2" -i bench-counter -c -q 1 -t 'bench/#' -E \
    || die "could not create the subscriber's session on the upstream"
  stop_pid "$UP_PID"
}

start_subscriber() {  # $1 = dir, $2 = port; sets SUB_PID; prints one payload per line
  mosquitto_sub -h 127.0.0.1 -p "$2" -i bench-counter -c -q 1 -t 'bench/#' \
    > "$1/sub.out" 2> "$1/sub.err" &
  SUB_PID=$!
  PIDS+=("$SUB_PID")
}

# --- the drain monitor: polls every 100 ms; prints one JSON line ---
monitor() {  # $1 = system, $2 = dir, $3 = t0, $4 = wire port (outpost) or "", rest = pids to watch
  python3 - "$@" "$RECORDS" "$LINE_BYTES" "$PHASE_TIMEOUT" "$STALL" "$POLL" "$OUTPOST" << 'PY'
import json, os, subprocess, sys, time
system, d, t0, wire = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
pids = [int(p) for p in sys.argv[5:-6]]
n, line, timeout, stall, poll = (int(sys.argv[-6]), int(sys.argv[-5]), float(sys.argv[-4]),
                                 float(sys.argv[-3]), float(sys.argv[-2]))
outpost = sys.argv[-1]
out = os.path.join(d, "sub.out")

def status():
    try:
        r = subprocess.run([outpost, "bridge", "status", "--broker", f"127.0.0.1:{wire}", "--json"],
                           capture_output=True, timeout=2, text=True)
        b = json.loads(r.stdout)[0]
        p = b["routes"][0]["partitions"][0]
        return b, p
    except Exception:
        return None, None

def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False

count = last = 0
t_first = t_last = t_acked = None
acked = None
part = bridge = None
next_report = time.time() + 1
while True:
    now = time.time()
    try:
        count = os.path.getsize(out) // line
    except OSError:
        count = 0
    if count != last:
        t_last = now
        if t_first is None:
            t_first = now
        last = count
    if system == "outpost":
        b, p = status()
        if p is not None:
            bridge, part, acked = b, p, p["acked"]
            if acked >= n and t_acked is None:
                t_acked = now
    quiet_since = t_last if t_last is not None else t0
    if system == "outpost":
        done = t_acked is not None and (count >= n or now - quiet_since >= stall)
    else:
        done = count >= n or now - quiet_since >= stall
    if done:
        break
    if now - t0 > timeout:
        print(f"timeout: {system} drain not finished after {timeout:.0f} s: subscriber has {count:,}"
              + (f", bridge acked {acked:,}" if acked is not None else ""), file=sys.stderr)
        sys.exit(2)
    dead = [p for p in pids if not alive(p)]
    if dead:
        print(f"{system}: process(es) {dead} exited during the drain", file=sys.stderr)
        sys.exit(3)
    if now >= next_report:
        print(f"    {now - t0:5.1f} s: subscriber {count:>9,}"
              + (f", bridge acked {acked:>9,}" if acked is not None else ""), file=sys.stderr)
        next_report += 1
    time.sleep(poll)
res = {
    "t_first": None if t_first is None else t_first - t0,
    "t_last": None if t_last is None else t_last - t0,
    "t_acked": None if t_acked is None else t_acked - t0,
    "polled_count": count,
    "acked": acked,
}
if part is not None:
    res.update(forwarded=part["forwarded"], dropped=part["dropped"], log_end=part["log_end"],
               connects=bridge["connects"], connect_attempts=bridge["connect_attempts"])
print(json.dumps(res))
PY
}

tally() {  # $1 = dir: arrived, distinct, valid distinct records of the subscriber's output
  python3 - "$1/sub.out" "$RECORDS" << 'PY'
import json, re, sys
ok = re.compile(rb"^(\d{8})-x{55}$")
seen = set()
arrived = foreign = 0
with open(sys.argv[1], "rb") as f:
    for l in f:
        arrived += 1
        m = ok.match(l.rstrip(b"\n"))
        if m and int(m.group(1)) < int(sys.argv[2]):
            seen.add(m.group(1))
        else:
            foreign += 1
print(json.dumps({"arrived": arrived, "distinct": len(seen), "foreign": foreign}))
PY
}

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status" 2> /dev/null || echo 0; }

# --- the loaders ---
load_outpost() {  # $1 = wire port
  timeout "$PHASE_TIMEOUT" "$OUTPOST" produce --broker "127.0.0.1:$1" bench < "$WORK/lines.txt" \
    || die "timeout or error loading Outpost with outpost produce (exit $?)"
}

load_mosquitto() {  # $1 = edge port
  local f
  for f in "$WORK"/chunks/c.*; do
    timeout "$PHASE_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$1" -t bench/0 -q 1 -M 1000 -l < "$f" \
      || die "timeout or error loading the Mosquitto edge from $f (exit $?)"
  done
}

# --- one case ---
run_case() {  # $1 = system, $2 = protocol
  local system=$1 proto=$2 d port_up port_w port_m port_e
  d=$WORK/$system-$proto
  mkdir -p "$d"
  read -r port_up port_w port_m port_e < <(free_ports 4)
  echo "== $system, MQTT $proto: upstream :$port_up"
  upstream_conf "$d" "$port_up"
  create_subscriber_session "$d" "$port_up"

  local edge_pid edge_log t_load0 t_load1 edge_received="" edge_dropped="" edge_stored=""
  t_load0=$(now)
  if [ "$system" = outpost ]; then
    local version=$proto
    cat > "$d/outpost.toml" << EOF
data_dir = "$d/outpost-data"
[wire]
listen = "127.0.0.1:$port_w"
[mqtt]
listen = "127.0.0.1:$port_m"
[[bridge]]
name = "bench"
upstream = "mqtt://127.0.0.1:$port_up"
mqtt_version = "$version"
reconnect_min_ms = 500
reconnect_max_ms = 1000
[[bridge.route]]
topic = "bench"
upstream_topic = "bench/{partition}"
EOF
    edge_log=$d/outpost.log
    spawn "$edge_log" "$OUTPOST" serve --config "$d/outpost.toml"
    edge_pid=$PID
    wait_port "$port_w" "$edge_pid" "outpost" "$edge_log"
    echo "  loading $RECORDS records into Outpost (upstream down)"
    t_load0=$(now)
    load_outpost "$port_w"
  else
    local bridge_proto=mqttv311 limits=""
    [ "$proto" = 5 ] && bridge_proto=mqttv50
    [ "$system" = mosquitto ] && limits=$'max_queued_messages 0\nmax_inflight_messages 1000'
    mosquitto_dir "$d/edge-data"
    cat > "$d/edge.conf" << EOF
listener $port_e 127.0.0.1
allow_anonymous true
persistence true
persistence_location $d/edge-data/
sys_interval 1
$limits
connection bench
address 127.0.0.1:$port_up
topic bench/# out 1
cleansession false
bridge_protocol_version $bridge_proto
restart_timeout 1
EOF
    edge_log=$d/edge.log
    spawn "$edge_log" "$MOSQUITTO" -c "$d/edge.conf"
    edge_pid=$PID
    wait_port "$port_e" "$edge_pid" "edge mosquitto" "$edge_log"
    echo "  loading $RECORDS messages into the Mosquitto edge (upstream down)"
    t_load0=$(now)
    load_mosquitto "$port_e"
  fi
  t_load1=$(now)
  kill -0 "$edge_pid" 2> /dev/null || die "$system exited while loading (log $edge_log)"
  if [ "$system" != outpost ]; then
    sleep 1.5  # two $SYS intervals
    edge_received=$(sys_value "$port_e" '$SYS/broker/publish/messages/received')
    edge_dropped=$(sys_value "$port_e" '$SYS/broker/publish/messages/dropped')
    edge_stored=$(sys_value "$port_e" '$SYS/broker/store/messages/count')
    echo "  edge: received $edge_received, dropped $edge_dropped, messages in store $edge_stored"
    [ "$edge_received" = "$RECORDS" ] || echo "  !! the edge reports $edge_received messages received, not $RECORDS" >&2
  fi
  local load_rss
  load_rss=$(kib "$edge_pid" VmRSS)

  echo "  starting the upstream and the subscriber; draining"
  local t0
  t0=$(now)
  start_upstream "$d" "$port_up"
  start_subscriber "$d" "$port_up"
  local sub_pid=$SUB_PID
  local m rc=0
  m=$(monitor "$system" "$d" "$t0" "${port_w:-}" "$edge_pid" "$UP_PID" "$sub_pid") || rc=$?
  [ "$rc" = 0 ] || die "$system $proto: drain failed (monitor exit $rc); logs in $d"
  sleep 1  # late duplicates
  local hwm
  hwm=$(kib "$edge_pid" VmHWM)
  stop_pid "$sub_pid"
  local t
  t=$(tally "$d")
  python3 - "$system" "$proto" "$m" "$t" "$RECORDS" "$t_load0" "$t_load1" \
    "$edge_received" "$edge_dropped" "$edge_stored" "$load_rss" "$hwm" >> "$RESULTS" << 'PY'
import json, sys
a = sys.argv
r = {"system": a[1], "protocol": a[2], "records": int(a[5]),
     "load_s": float(a[7]) - float(a[6]),
     "edge_received": a[8], "edge_dropped": a[9], "edge_stored": a[10],
     "rss_loaded_kib": int(a[11] or 0), "hwm_kib": int(a[12] or 0)}
r.update(json.loads(a[3]))
r.update(json.loads(a[4]))
print(json.dumps(r))
PY
  python3 - "$RESULTS" << 'PY'
import json, sys
r = json.loads(open(sys.argv[1]).readlines()[-1])
s = lambda x: "-" if x is None else f"{x:.2f}"
print(f"  done: first arrival {s(r['t_first'])} s, last arrival {s(r['t_last'])} s, all acked "
      f"{s(r['t_acked'])} s after upstream start; arrived {r['arrived']:,}, distinct {r['distinct']:,}")
PY
  stop_pid "$UP_PID"
  stop_pid "$edge_pid"
}

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(free -m | awk '/^Mem:/ {print $2}') MiB RAM; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $("$MOSQUITTO" -h 2> /dev/null | head -1); $("$OUTPOST" --version) ($OUTPOST, built $(date -r "$OUTPOST" '+%F %T'))"
for c in $CASES; do
  run_case "${c%%:*}" "${c#*:}"
done

python3 - "$RESULTS" << 'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def f(x, fmt):
    return "-" if x is None else fmt.format(x)
print()
print("drain: seconds from upstream start until the bridge reports all acked (outpost) or the")
print("last message arrived at the subscriber (mosquitto); polled every 100 ms.")
print(f"{'system':20} | {'protocol':8} | {'drain s':>7} | {'records/s':>9} | {'arrived':>9} | {'lost':>9} | {'duplicates':>10}")
print("-" * 92)
for r in rows:
    drain = r["t_acked"] if r["system"] == "outpost" else r["t_last"]
    rate = r["records"] / drain if drain else None
    lost = r["records"] - r["distinct"]
    dup = r["arrived"] - r["distinct"] - r["foreign"]
    print(f"{r['system']:20} | {r['protocol']:8} | {f(drain, '{:.2f}'):>7} | {f(rate, '{:,.0f}'):>9} | "
          f"{r['arrived']:>9,} | {lost:>9,} | {dup:>10,}")
print()
print("details:")
for r in rows:
    drain = r["t_acked"] if r["system"] == "outpost" else r["t_last"]
    span = (r["t_last"] - r["t_first"]) if r["t_first"] is not None and r["t_last"] is not None else None
    extra = ""
    if r["system"] == "outpost":
        extra = (f"; bridge: forwarded {r.get('forwarded')}, dropped {r.get('dropped')}, "
                 f"connect attempts {r.get('connect_attempts')}, connects {r.get('connects')}")
    else:
        extra = (f"; edge $SYS after load: received {r['edge_received']}, dropped {r['edge_dropped']}, "
                 f"messages in store {r['edge_stored']}")
    print(f"  {r['system']} {r['protocol']}: load {r['load_s']:.1f} s; first arrival {f(r['t_first'], '{:.2f}')} s, "
          f"last arrival {f(r['t_last'], '{:.2f}')} s after upstream start "
          f"(first-to-last {f(span, '{:.2f}')} s"
          + (f", {r['records'] / span:,.0f}/s" if span else "") + ")"
          + f"; edge RSS loaded {r['rss_loaded_kib'] / 1024:.0f} MiB, peak {r['hwm_kib'] / 1024:.0f} MiB"
          + (f"; foreign lines {r['foreign']}" if r["foreign"] else "") + extra)
PY
