#!/usr/bin/env bash
# Backlog drain of a bridge, Outpost against a Mosquitto edge bridge, in one run: RECORDS
# 64-byte records are queued on the edge while the upstream is down; then the upstream
# starts, and we measure the time until all of them are through.
#
#   upstream   a private Mosquitto (max_queued_messages 0, max_inflight_messages 1000) and a
#              counting subscriber on bench/# (mosquitto_sub, QoS 1). Its persistent session
#              is created before the edge is loaded, so it exists the moment the upstream
#              starts: no message can reach the upstream before the subscription.
#   outpost    `outpost serve` with one bridge (route bench -> bench/{partition}), loaded with
#              `outpost produce` while the upstream is down. Drain time = first poll of
#              `outpost bridge status --json` with acked == RECORDS, minus upstream start.
#   mosquitto  a Mosquitto edge (persistence on) bridged with `topic bench/# out 1`, loaded
#              with mosquitto_pub -q 1 while the upstream is down. Drain time = last arrival at
#              the subscriber, minus upstream start.
# Everything is polled every 100 ms. Every record is a distinct 64-byte line (8-digit sequence
# number, '-', 55 'x'), the same file for both systems, so the subscriber's output gives
# arrived, lost (RECORDS - distinct) and duplicates (arrived - distinct).
#
# Usage: bash scripts/bench-bridge.sh
#   environment (defaults shown):
#   RECORDS=1000000
#   CASES="outpost:5 outpost:3.1.1 mosquitto:3.1.1"   system:protocol, run in this order.
#        systems: outpost; mosquitto (edge settings below); mosquitto-defaults (the same edge
#        without max_queued_messages and max_inflight_messages, i.e. Mosquitto's defaults).
#        protocols: 5 or 3.1.1 (for Mosquitto: bridge_protocol_version mqttv50 / mqttv311).
#   SUBSCRIBER=1   0: no subscriber on the upstream (it then only receives); the count is the
#                  upstream's $SYS/broker/publish/messages/received (1 s resolution; lost =
#                  RECORDS - received; duplicates cannot be told apart)
#   PHASE_TIMEOUT=150  seconds any one phase (start, load, drain) may take before we give up
#   STALL=10           seconds without a new arrival (after the first) that end a drain
#   LOAD_PARALLEL=4    concurrent mosquitto_pub loaders for the Mosquitto edge
#   KEEP=0             1: keep the work directory (configs, logs, subscriber output)
#   OUTPOST=path       the binary; default $CARGO_TARGET_DIR/release/outpost or
#                      target/release/outpost, whichever exists, else `cargo build --release`
#   MOSQUITTO=/usr/sbin/mosquitto
# Exits non-zero with a message when a phase times out or a process dies. Ports are
# ephemeral loopback ports; every process started here is stopped on exit.
#
# Settings besides listeners and data directories:
#   Outpost bridge: reconnect_min_ms 500, reconnect_max_ms 1000 (the default cap is 30 s: after
#     a long outage the first attempt would come up to 30 s after the upstream is back, which
#     measures the backoff, not the drain); every other key at its default (tcp_nodelay false,
#     route qos 1, max_inflight 1000).
#   Mosquitto edge: persistence true with autosave_interval at its default (1800 s; a save
#     rewrites the whole database, 190 MB for a million queued messages), sys_interval 1.
#     Bridge: cleansession false, restart_timeout 1 1 (base 1 s, cap 1 s; the default is jitter
#     from 5 s up to 30 s, and `restart_timeout 1` alone keeps the 30 s cap: we saw retries 7,
#     8, 16 and 31 s apart). "mosquitto" also sets max_queued_messages 0 (no limit; the
#     default 1000 drops every further message for the offline bridge) and
#     max_inflight_messages 1000 (default 20; it is also the bridge's window upstream).
# The edge is loaded with 50,000 lines per mosquitto_pub -l: with QoS 1 and more than 65,535
# lines, mosquitto_pub 2.0.11 exits 0 having delivered only part of its input (100,000 lines:
# 34,468 arrived; 1,000,000: 83,330). Its -l mode disconnects at the first PUBACK, after end of
# input, whose 16-bit message id equals that of the last line, and ids wrap at 65,535.
# After loading, the edge's $SYS received count must equal RECORDS, or the run stops.
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-1000000}
CASES=${CASES:-"outpost:5 outpost:3.1.1 mosquitto:3.1.1"}
SUBSCRIBER=${SUBSCRIBER:-1}
PHASE_TIMEOUT=${PHASE_TIMEOUT:-150}
STALL=${STALL:-10}
LOAD_PARALLEL=${LOAD_PARALLEL:-4}
KEEP=${KEEP:-0}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
LINE_BYTES=65    # a 64-byte record and its newline, in the input file and the subscriber's output
PUB_CHUNK=50000  # lines per mosquitto_pub -l (below 65,535, see above)
POLL=0.1         # seconds between polls while draining

die() { echo "bench-bridge: $*" >&2; exit 1; }
for tool in "$MOSQUITTO" mosquitto_pub mosquitto_sub python3; do
  command -v "$tool" > /dev/null || die "$tool not found (apt-get install -y mosquitto mosquitto-clients)"
done

if [ -z "${OUTPOST:-}" ]; then
  for candidate in "${CARGO_TARGET_DIR:-target}/release/outpost" target/release/outpost; do
    if [ -x "$candidate" ]; then OUTPOST=$candidate; break; fi
  done
fi
if [ -z "${OUTPOST:-}" ]; then
  cargo build --release --quiet
  OUTPOST=${CARGO_TARGET_DIR:-target}/release/outpost
fi
[ -x "$OUTPOST" ] || die "no outpost binary at $OUTPOST"

WORK=$(mktemp -d /tmp/outpost-bench-bridge.XXXX)
chmod 755 "$WORK"  # Mosquitto, run as root, drops to user mosquitto and reads its config here
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
RESULTS=$WORK/results.jsonl

now() { date +%s.%N; }

stop_pid() {  # $1 = pid: TERM, then KILL after 20 s (Mosquitto saves its database on TERM)
  kill -TERM "$1" 2> /dev/null || return 0
  for _ in $(seq 1 200); do
    if ! kill -0 "$1" 2> /dev/null; then wait "$1" 2> /dev/null || true; return 0; fi
    sleep 0.1
  done
  echo "bench-bridge: pid $1 ignored TERM for 20 s, killing it" >&2
  kill -KILL "$1" 2> /dev/null || true
  wait "$1" 2> /dev/null || true
}

spawn() {  # $1 = stdout file, $2 = stderr file, rest = command; sets PID, stopped on exit
  local out=$1 err=$2; shift 2
  "$@" > "$out" 2> "$err" &
  PID=$!
  PIDS+=("$PID")
}

wait_port() {  # $1 = port, $2 = pid, $3 = what, $4 = its log
  local deadline=$((SECONDS + PHASE_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! kill -0 "$2" 2> /dev/null; then tail -20 "$4" >&2; die "$3 exited before listening on $1"; fi
    if (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; then return 0; fi
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

sys_value() {  # $1 = port, $2 = $SYS topic: a value published after the call (sys_interval 1)
  # The first message is the retained one (up to 1 s old); the second is fresh.
  timeout 6 mosquitto_sub -h 127.0.0.1 -p "$1" -t "$2" -C 2 -W 5 2> /dev/null | tail -1 || true
}

settled_sys_value() {  # $1 = port, $2 = topic: polls until two fresh values agree (<= 30 s)
  local prev="" v
  for _ in $(seq 1 15); do
    v=$(sys_value "$1" "$2")
    if [ -n "$v" ] && [ "$v" = "$prev" ]; then echo "$v"; return 0; fi
    prev=$v
  done
  echo "${v:-?}"
}

mosquitto_dir() {  # $1 = dir: run as root, Mosquitto drops to user mosquitto and must own it
  mkdir -p "$1"
  if [ "$(id -u)" = 0 ]; then chown mosquitto: "$1"; fi
}

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status" 2> /dev/null || true; }
TICKS=$(getconf CLK_TCK)
cpu_s() {  # $1 = pid: user + system CPU seconds so far (fields 14, 15; comm has no spaces here)
  awk -v t="$TICKS" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat" 2> /dev/null || echo 0
}

# --- input: RECORDS distinct 64-byte lines, and the same lines split for mosquitto_pub ---
python3 - "$RECORDS" > "$WORK/lines.txt" << 'PY'
import sys
pad = "x" * 55
sys.stdout.write("".join(f"{i:08d}-{pad}\n" for i in range(int(sys.argv[1]))))
PY
mkdir "$WORK/chunks"
split -l "$PUB_CHUNK" -d -a 4 "$WORK/lines.txt" "$WORK/chunks/c."

# --- the upstream and its counter ---
upstream_conf() {  # $1 = dir, $2 = port
  mosquitto_dir "$1/upstream-data"
  cat > "$1/upstream.conf" << EOF
listener $2 127.0.0.1
allow_anonymous true
max_queued_messages 0
max_inflight_messages 1000
sys_interval 1
# Persistence only so that the subscriber's session, created before the edge is loaded,
# survives the restart; no autosave during the run.
persistence true
persistence_location $1/upstream-data/
EOF
}

start_upstream() {  # $1 = dir, $2 = port; sets UP_PID
  spawn "$1/upstream.log" "$1/upstream.log" "$MOSQUITTO" -c "$1/upstream.conf"
  UP_PID=$PID
  wait_port "$2" "$UP_PID" "upstream mosquitto" "$1/upstream.log"
}

create_subscriber_session() {  # $1 = dir, $2 = port: persistent QoS 1 session on bench/#
  start_upstream "$1" "$2"
  timeout "$PHASE_TIMEOUT" mosquitto_sub -h 127.0.0.1 -p "$2" -i bench-counter -c -q 1 -t 'bench/#' -E \
    || die "could not create the subscriber's session on the upstream"
  stop_pid "$UP_PID"
}

start_counter() {  # $1 = dir, $2 = port; sets COUNTER_PID; writes $1/count.out
  if [ "$SUBSCRIBER" = 1 ]; then  # one payload per line
    spawn "$1/count.out" "$1/count.err" \
      mosquitto_sub -h 127.0.0.1 -p "$2" -i bench-counter -c -q 1 -t 'bench/#'
  else                            # one number per line
    spawn "$1/count.out" "$1/count.err" \
      mosquitto_sub -h 127.0.0.1 -p "$2" -t '$SYS/broker/publish/messages/received'
  fi
  COUNTER_PID=$PID
}

# --- the drain monitor: polls every POLL s; prints one JSON line ---
monitor() {  # $1 = system, $2 = dir, $3 = t0, $4 = wire port, rest = pids that must stay up
  MON_SYSTEM=$1 MON_DIR=$2 MON_T0=$3 MON_WIRE=$4 MON_PIDS="${*:5}" RECORDS=$RECORDS \
    LINE_BYTES=$LINE_BYTES PHASE_TIMEOUT=$PHASE_TIMEOUT STALL=$STALL POLL=$POLL \
    SUBSCRIBER=$SUBSCRIBER OUTPOST=$OUTPOST python3 - << 'PY'
import json, os, subprocess, sys, time
e = os.environ
system, d, t0, wire = e["MON_SYSTEM"], e["MON_DIR"], float(e["MON_T0"]), e["MON_WIRE"]
pids = [int(p) for p in e["MON_PIDS"].split()]
n, line = int(e["RECORDS"]), int(e["LINE_BYTES"])
timeout, stall, poll = float(e["PHASE_TIMEOUT"]), float(e["STALL"]), float(e["POLL"])
by_lines = e["SUBSCRIBER"] == "1"
out = os.path.join(d, "count.out")

def counted():
    try:
        if by_lines:
            return os.path.getsize(out) // line
        with open(out, "rb") as f:
            done = f.read().rsplit(b"\n", 2)
        return int(done[-2]) if len(done) >= 2 and done[-2] else 0
    except (OSError, ValueError):
        return 0

def status():
    try:
        r = subprocess.run([e["OUTPOST"], "bridge", "status", "--broker", f"127.0.0.1:{wire}", "--json"],
                           capture_output=True, timeout=2, text=True)
        b = json.loads(r.stdout)[0]
        return b, b["routes"][0]["partitions"][0]
    except (subprocess.SubprocessError, ValueError, LookupError, TypeError):
        return None, None

def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False

count = last = 0
t_first = t_last = t_acked = None
acked = bridge = part = None
next_report = t0 + 1
while True:
    now = time.time()
    count = counted()
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
    # A drain ends when everything arrived, or STALL s after the last arrival (losses).
    stalled = t_last is not None and now - t_last >= stall
    through = count >= n or stalled
    if through and (system != "outpost" or t_acked is not None):
        break
    if now - t0 > timeout:
        print(f"timeout: {system} drain not finished {timeout:.0f} s after the upstream started: "
              f"counted {count:,}" + (f", bridge acked {acked:,}" if acked is not None else ""),
              file=sys.stderr)
        sys.exit(2)
    dead = [p for p in pids if not alive(p)]
    if dead:
        print(f"{system}: process(es) {dead} exited during the drain", file=sys.stderr)
        sys.exit(3)
    if now >= next_report:
        print(f"    {now - t0:5.1f} s: counted {count:>9,}"
              + (f", bridge acked {acked:>9,}" if acked is not None else ""), file=sys.stderr)
        next_report += 1
    time.sleep(poll)
res = {"t_first": None if t_first is None else t_first - t0,
       "t_last": None if t_last is None else t_last - t0,
       "t_acked": None if t_acked is None else t_acked - t0,
       "acked": acked}
if part is not None:
    res.update(forwarded=part["forwarded"], dropped=part["dropped"], log_end=part["log_end"],
               connects=bridge["connects"], connect_attempts=bridge["connect_attempts"])
print(json.dumps(res))
PY
}

tally() {  # $1 = dir: arrived, distinct and foreign lines of the subscriber's output
  python3 - "$1/count.out" "$RECORDS" "$SUBSCRIBER" << 'PY'
import json, re, sys
path, n, by_lines = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
if not by_lines:  # the upstream's last $SYS received count
    values = [l for l in open(path, "rb").read().split(b"\n") if l.strip()]
    print(json.dumps({"arrived": int(values[-1]) if values else 0, "distinct": None, "foreign": 0}))
    sys.exit(0)
ok = re.compile(rb"^(\d{8})-x{55}$")
seen = set()
arrived = foreign = 0
with open(path, "rb") as f:
    for l in f:
        arrived += 1
        m = ok.match(l.rstrip(b"\n"))
        if m and int(m.group(1)) < n:
            seen.add(m.group(1))
        else:
            foreign += 1
print(json.dumps({"arrived": arrived, "distinct": len(seen), "foreign": foreign}))
PY
}

# --- the loaders ---
load_outpost() {  # $1 = wire port
  timeout "$PHASE_TIMEOUT" "$OUTPOST" produce --broker "127.0.0.1:$1" bench < "$WORK/lines.txt" \
    || die "timeout or error loading Outpost with outpost produce (exit $?)"
}

load_mosquitto() {  # $1 = edge port: LOAD_PARALLEL mosquitto_pub at a time, PUB_CHUNK lines each
  local port=$1 deadline=$((SECONDS + PHASE_TIMEOUT))
  # xargs exits 123 when any command failed; each mosquitto_pub is bounded by what is left.
  if ! printf '%s\n' "$WORK"/chunks/c.* | xargs -P "$LOAD_PARALLEL" -I{} sh -c \
      'timeout "$1" mosquitto_pub -h 127.0.0.1 -p "$2" -t bench/0 -q 1 -M 1000 -l < "$3"' \
      sh "$PHASE_TIMEOUT" "$port" {}; then
    die "timeout or error loading the Mosquitto edge (a mosquitto_pub failed)"
  fi
  [ "$SECONDS" -le "$deadline" ] || die "timeout: loading the Mosquitto edge took over $PHASE_TIMEOUT s"
}

write_outpost_conf() {  # $1 = dir, $2 = protocol, $3 = wire port, $4 = mqtt port, $5 = upstream
  cat > "$1/outpost.toml" << EOF
data_dir = "$1/outpost-data"
[wire]
listen = "127.0.0.1:$3"
[mqtt]
listen = "127.0.0.1:$4"
[metrics]
enabled = false
[[bridge]]
name = "bench"
upstream = "mqtt://127.0.0.1:$5"
mqtt_version = "$2"
reconnect_min_ms = 500
reconnect_max_ms = 1000
[[bridge.route]]
topic = "bench"
upstream_topic = "bench/{partition}"
EOF
}

write_edge_conf() {  # $1 = dir, $2 = system, $3 = protocol, $4 = edge port, $5 = upstream
  local bridge_proto=mqttv311 limits="# max_queued_messages, max_inflight_messages: defaults"
  if [ "$3" = 5 ]; then bridge_proto=mqttv50; fi
  if [ "$2" = mosquitto ]; then limits=$'max_queued_messages 0\nmax_inflight_messages 1000'; fi
  mosquitto_dir "$1/edge-data"
  cat > "$1/edge.conf" << EOF
listener $4 127.0.0.1
allow_anonymous true
persistence true
persistence_location $1/edge-data/
sys_interval 1
$limits
connection bench
address 127.0.0.1:$5
topic bench/# out 1
cleansession false
bridge_protocol_version $bridge_proto
restart_timeout 1 1
EOF
}

# --- one case ---
run_case() {  # $1 = system, $2 = protocol; appends one JSON line to RESULTS
  local system=$1 proto=$2 d port_up port_w port_m port_e
  case "$system:$proto" in
    outpost:5 | outpost:3.1.1 | mosquitto:5 | mosquitto:3.1.1 | mosquitto-defaults:5 | mosquitto-defaults:3.1.1) ;;
    *) die "unknown case $system:$proto (see the usage at the top of $0)" ;;
  esac
  d=$WORK/$system-$proto
  mkdir -p "$d"
  read -r port_up port_w port_m port_e < <(free_ports 4)
  echo "== $system, MQTT $proto (upstream 127.0.0.1:$port_up)"
  upstream_conf "$d" "$port_up"
  if [ "$SUBSCRIBER" = 1 ]; then create_subscriber_session "$d" "$port_up"; fi

  local edge_pid edge_log t_load0 t_load1 disk=""
  local edge_received="" edge_dropped="" edge_stored=""
  if [ "$system" = outpost ]; then
    write_outpost_conf "$d" "$proto" "$port_w" "$port_m" "$port_up"
    edge_log=$d/outpost.log
    spawn "$edge_log" "$edge_log" "$OUTPOST" serve --config "$d/outpost.toml"
    edge_pid=$PID
    wait_port "$port_w" "$edge_pid" "outpost" "$edge_log"
    echo "  loading $RECORDS records into Outpost with outpost produce (upstream down)"
    t_load0=$(now)
    load_outpost "$port_w"
    t_load1=$(now)
    disk=$(du -sk "$d/outpost-data" | cut -f1)
  else
    write_edge_conf "$d" "$system" "$proto" "$port_e" "$port_up"
    edge_log=$d/edge.log
    spawn "$edge_log" "$edge_log" "$MOSQUITTO" -c "$d/edge.conf"
    edge_pid=$PID
    wait_port "$port_e" "$edge_pid" "edge mosquitto" "$edge_log"
    echo "  loading $RECORDS messages into the Mosquitto edge with mosquitto_pub (upstream down)"
    t_load0=$(now)
    load_mosquitto "$port_e"
    t_load1=$(now)
    edge_received=$(settled_sys_value "$port_e" '$SYS/broker/publish/messages/received')
    edge_dropped=$(sys_value "$port_e" '$SYS/broker/publish/messages/dropped')
    edge_stored=$(sys_value "$port_e" '$SYS/broker/store/messages/count')
    echo "  edge \$SYS: publish/messages/received $edge_received, publish/messages/dropped" \
         "$edge_dropped, store/messages/count $edge_stored"
    [ "$edge_received" = "$RECORDS" ] \
      || die "the edge reports $edge_received messages received, not $RECORDS (log $edge_log)"
  fi
  kill -0 "$edge_pid" 2> /dev/null || die "$system exited while loading (log $edge_log)"
  local load_rss
  load_rss=$(kib "$edge_pid" VmRSS)

  echo "  starting the upstream and the counter; draining"
  local t0 m rc=0 edge_cpu0
  edge_cpu0=$(cpu_s "$edge_pid")
  t0=$(now)
  start_upstream "$d" "$port_up"
  start_counter "$d" "$port_up"
  m=$(monitor "$system" "$d" "$t0" "$port_w" "$edge_pid" "$UP_PID" "$COUNTER_PID") || rc=$?
  [ "$rc" = 0 ] || die "$system $proto: drain failed (monitor exit $rc); KEEP=1 keeps the logs"
  sleep 1  # late duplicates
  local hwm t cpu
  hwm=$(kib "$edge_pid" VmHWM)
  cpu="$edge_cpu0 $(cpu_s "$edge_pid") $(cpu_s "$UP_PID") $(cpu_s "$COUNTER_PID")"
  stop_pid "$COUNTER_PID"
  t=$(tally "$d")
  python3 - "$system" "$proto" "$m" "$t" "$RECORDS" "$t_load0" "$t_load1" "$edge_received" \
    "$edge_dropped" "$edge_stored" "${load_rss:-0}" "${hwm:-0}" "${disk:-0}" "$cpu" >> "$RESULTS" << 'PY'
import json, sys
a = sys.argv
edge0, edge1, up, counter = map(float, a[14].split())
cpu = {"edge_cpu_s": edge1 - edge0, "upstream_cpu_s": up, "counter_cpu_s": counter}
r = {"system": a[1], "protocol": a[2], "records": int(a[5]), "load_s": float(a[7]) - float(a[6]),
     "edge_received": a[8], "edge_dropped": a[9], "edge_stored": a[10],
     "rss_loaded_kib": int(a[11]), "hwm_kib": int(a[12]), "disk_kib": int(a[13])}
r.update(json.loads(a[3]))
r.update(json.loads(a[4]))
r.update(cpu)
print(json.dumps(r))
PY
  python3 - "$RESULTS" << 'PY'
import json, sys
r = json.loads(open(sys.argv[1]).readlines()[-1])
s = lambda x: "n/a" if x is None else f"{x:.2f} s"
print(f"  first arrival {s(r['t_first'])}, last arrival {s(r['t_last'])}, all acked {s(r['t_acked'])} "
      f"after upstream start; counted {r['arrived']:,}"
      + ("" if r["distinct"] is None else f", distinct {r['distinct']:,}"))
PY
  stop_pid "$UP_PID"
  stop_pid "$edge_pid"
}

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
     "$(free -m | awk '/^Mem:/ {print $2}') MiB RAM; load average before the run $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $("$MOSQUITTO" -h 2> /dev/null | head -1); $(mosquitto_sub --help | sed -n 2p | cut -d' ' -f1-3);" \
     "$("$OUTPOST" --version) ($OUTPOST, built $(date -r "$OUTPOST" '+%F %T'))"
echo "records: $RECORDS x 64 B; subscriber on the upstream: $([ "$SUBSCRIBER" = 1 ] && echo "mosquitto_sub -q 1 bench/#" || echo "none (upstream \$SYS count)")"
for c in $CASES; do
  run_case "${c%%:*}" "${c#*:}"
done

python3 - "$RESULTS" "$(cut -d' ' -f1-3 /proc/loadavg)" << 'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
f = lambda x, fmt: "-" if x is None else fmt.format(x)
print()
print("drain s: from upstream start until the bridge reports all acked (outpost) or until the last")
print("arrival upstream (mosquitto); records/s = distinct records arrived / drain s. Polled every")
print("100 ms. lost = records - distinct arrived; duplicates = arrived - distinct.")
print(f"{'system':18} | {'protocol':8} | {'drain s':>7} | {'records/s':>9} | {'arrived':>9} | {'lost':>9} | {'duplicates':>10}")
print("-" * 90)
for r in rows:
    drain = r["t_acked"] if r["system"] == "outpost" else r["t_last"]
    if r["distinct"] is None:
        lost, dup = max(r["records"] - r["arrived"], 0), None
    else:
        lost, dup = r["records"] - r["distinct"], r["arrived"] - r["distinct"] - r["foreign"]
    rate = (r["records"] - lost) / drain if drain else None
    print(f"{r['system']:18} | {r['protocol']:8} | {f(drain, '{:.2f}'):>7} | {f(rate, '{:,.0f}'):>9} | "
          f"{r['arrived']:>9,} | {lost:>9,} | {f(dup, '{:,}'):>10}")
print()
print("details (times after upstream start):")
for r in rows:
    span = None if r["t_first"] is None or r["t_last"] is None else r["t_last"] - r["t_first"]
    got = r["arrived"] if r["distinct"] is None else r["distinct"]
    line = (f"  {r['system']} {r['protocol']}: loaded in {r['load_s']:.1f} s; first arrival "
            f"{f(r['t_first'], '{:.2f}')} s, last {f(r['t_last'], '{:.2f}')} s (first to last "
            f"{f(span, '{:.2f}')} s" + (f", {got / span:,.0f}/s" if span else "") + ")")
    line += f"; edge RSS loaded {r['rss_loaded_kib'] / 1024:.0f} MiB, peak {r['hwm_kib'] / 1024:.0f} MiB"
    if r["system"] == "outpost":
        line += (f"; data dir {r['disk_kib'] / 1024:.0f} MiB; bridge forwarded {r.get('forwarded')},"
                 f" dropped {r.get('dropped')}, connect attempts {r.get('connect_attempts')},"
                 f" connects {r.get('connects')}")
    else:
        line += (f"; edge $SYS after loading: received {r['edge_received']}, dropped "
                 f"{r['edge_dropped']}, messages in store {r['edge_stored']}")
    line += (f"; CPU s in the drain: edge {r['edge_cpu_s']:.1f}, upstream {r['upstream_cpu_s']:.1f},"
             f" counter {r['counter_cpu_s']:.1f}")
    if r["foreign"]:
        line += f"; {r['foreign']} unexpected lines"
    print(line)
print(f"load average after the run: {sys.argv[2]}")
PY
