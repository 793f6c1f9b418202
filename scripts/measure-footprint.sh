#!/usr/bin/env bash
# Measures what issue #7 asks for, on this machine, with a release build:
#   1. stripped release binary size (x86_64; aarch64/armv7 too when scripts/arm-check.sh or a
#      `cargo build --release --target ...` left those binaries in target/);
#   2. idle RSS of `outpost serve` on its defaults (VmRSS after 5 s);
#   3. RSS with N idle MQTT connections, plain TCP and TLS (`outpost bench mqtt-idle`), each
#      on a freshly started broker;
#   4. QoS 1 throughput and PUBACK p99, plain and TLS, with the same `outpost bench mqtt` run.
# Certificates for the TLS listener are generated with the openssl command-line tool into a
# temp dir (the broker itself links no OpenSSL).
# Usage: bash scripts/measure-footprint.sh [CONNECTIONS] [MESSAGES]  (defaults 10000, 20000)
#        env OUTPOST=target/debug/outpost to use an existing binary
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-10000}
MESSAGES=${2:-20000}
# OUTPOST=path/to/outpost skips the release build (e.g. to try the script on a debug build).
BIN=${OUTPOST:-target/release/outpost}
if [ -z "${OUTPOST:-}" ]; then cargo build --release --quiet; fi
WORK=$(mktemp -d /tmp/outpost-footprint.XXXX)
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill -9 "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Two descriptors per connection on each side; the bench and the broker are separate processes.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CONNS + 1000)) ]; then
  ulimit -n $((CONNS + 1000)) 2>/dev/null || {
    echo "ulimit -n is $(ulimit -n); raise it above $((CONNS + 1000)) or pass fewer connections" >&2
    exit 1
  }
fi

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
anon_kib() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }
file_kib() { awk '/^RssFile/ {print $2}' "/proc/$1/status"; }
listener() { sed -n "s/^outpost: $1 listening on //p" "$WORK/out"; }

start_broker() {  # $1 = config file; sets PID
  "$BIN" serve --config "$1" > "$WORK/out" 2> "$WORK/err" &
  PID=$!
  for _ in $(seq 1 600); do
    grep -q '^outpost: ready' "$WORK/out" 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "broker did not start" >&2; cat "$WORK/err" >&2; exit 1
}
stop_broker() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

echo "=== binary size (stripped release)"
for bin in target/release/outpost target/aarch64-unknown-linux-gnu/release/outpost \
           target/armv7-unknown-linux-gnueabihf/release/outpost; do
  if [ -f "$bin" ]; then
    printf '%-58s %8.2f MiB (%s bytes)\n' "$bin" "$(echo "$(stat -c %s "$bin") / 1048576" | bc -l)" "$(stat -c %s "$bin")"
  fi
done

# The code layout that keeps an idle broker's resident code small (build.rs): is it made for
# this compiler and Cargo.lock?
bash scripts/startup-order.sh --check

echo "=== certificates (openssl CLI, test-only)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=outpost measure CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$WORK/san.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 2 -extfile "$WORK/san.ext" -out "$WORK/server.pem" 2>/dev/null
echo "ok: P-256 CA and server certificate for 127.0.0.1"

cat > "$WORK/outpost.toml" <<EOF
data_dir = "$WORK/data"
[wire]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[mqtt]
listen = "127.0.0.1:0"
max_connections = $((CONNS + 100))
[mqtt.tls]
listen = "127.0.0.1:0"
cert_file = "$WORK/server.pem"
key_file = "$WORK/server.key"
EOF

echo "=== idle RSS (defaults plus a TLS listener, after 5 s)"
start_broker "$WORK/outpost.toml"
sleep 5
IDLE=$(rss_kib "$PID")
# VmRSS counts the file pages of the binary and of libc that the kernel maps around each
# page fault (fault-around, 64 KiB), shared and reclaimable; RssAnon is the process's own.
echo "idle: ${IDLE} KiB (anonymous $(anon_kib "$PID") KiB, file-backed $(file_kib "$PID") KiB)"
# The peer in the same run: Mosquitto with one plain loopback listener, same wait.
if command -v "${MOSQUITTO:-/usr/sbin/mosquitto}" > /dev/null; then
  MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'listener %s 127.0.0.1\n' "$MPORT" > "$WORK/mosquitto.conf"
  "${MOSQUITTO:-/usr/sbin/mosquitto}" -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.log" 2>&1 &
  MPID=$!
  sleep 5
  echo "mosquitto idle: $(rss_kib "$MPID") KiB (anonymous $(anon_kib "$MPID") KiB, file-backed $(file_kib "$MPID") KiB)"
  kill "$MPID"; wait "$MPID" 2>/dev/null || true
fi
MQTT=$(listener mqtt)
MQTTS=$(listener mqtt-tls)

idle_conns() {  # $1 = label, rest = bench args
  local label=$1; shift
  local before peak
  before=$(rss_kib "$PID")
  "$BIN" bench mqtt-idle --connections "$CONNS" --hold 6 "$@" > "$WORK/idle.out" 2>&1 &
  local bench=$!
  for _ in $(seq 1 1200); do
    grep -q '^holding' "$WORK/idle.out" 2>/dev/null && break
    kill -0 "$bench" 2>/dev/null || break
    sleep 0.1
  done
  sleep 2
  peak=$(rss_kib "$PID")
  wait "$bench" || { cat "$WORK/idle.out" >&2; exit 1; }
  head -1 "$WORK/idle.out"
  echo "$label: RSS ${before} KiB before, ${peak} KiB holding $CONNS; $(( (peak - before) * 1024 / CONNS )) bytes per connection"
}
echo "=== $CONNS idle MQTT connections"
idle_conns plain --addr "$MQTT"
# TLS on a fresh broker: the heap the plain connections freed stays with the process, and
# reused it would hide part of what the TLS connections cost.
stop_broker
start_broker "$WORK/outpost.toml"
sleep 5
MQTT=$(listener mqtt)
MQTTS=$(listener mqtt-tls)
idle_conns TLS --addr "$MQTTS" --cafile "$WORK/ca.pem"

echo "=== QoS 1 publish, 8 publishers x $MESSAGES messages, 64 B, inflight 64: plain vs TLS"
for mode in plain tls; do
  if [ $mode = plain ]; then args=(--addr "$MQTT"); else args=(--addr "$MQTTS" --cafile "$WORK/ca.pem"); fi
  "$BIN" bench mqtt --publishers 8 --qos 1 --messages "$MESSAGES" --json --quiet "${args[@]}" \
    | MODE=$mode python3 -c 'import json, os, sys
j = json.load(sys.stdin)
print("%s: %.0f msgs/s, PUBACK p50 %.2f ms, p99 %.2f ms"
      % (os.environ["MODE"], j["msgs_per_sec"], j["ack_p50_ms"], j["ack_p99_ms"]))'
done
stop_broker
