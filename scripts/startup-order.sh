#!/usr/bin/env bash
# Makes link/startup-symbols.txt: the functions an `outpost serve` runs while it starts and
# idles, then those it runs while serving MQTT (plain and TLS) and the binary protocol, in
# that order. build.rs hands the file to the linker of release builds (x86_64), which places
# these functions first, so the code an idle broker keeps mapped is packed into few pages
# (see build.rs for why that matters).
#
# How: the release build itself (its own target dir, the same profile, so the same symbol
# names: they depend on the profile, not on the target dir) with the linker's map of where
# each function went; it runs under valgrind's callgrind on loopback, which records every
# instruction executed; `callgrind_control --dump` separates the phases; the map turns the
# addresses into the functions that contain them.
# The file records the rustc and the Cargo.lock it was made with.
#
# Usage: bash scripts/startup-order.sh          make the file (~5 minutes; installs valgrind)
#        bash scripts/startup-order.sh --check  one line: is the file made for this rustc
#                                              and Cargo.lock (exit 0 either way)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=link/startup-symbols.txt

lock_sum() { sha256sum Cargo.lock | cut -c1-16; }

if [ "${1:-}" = --check ]; then
  if [ ! -f "$OUT" ]; then
    echo "startup order: $OUT missing: release binaries keep the default layout"
  elif [ "$(sed -n 's/^# rustc: //p' "$OUT")" != "$(rustc -V)" ]; then
    echo "STARTUP ORDER STALE: $OUT was made with $(sed -n 's/^# rustc: //p' "$OUT"), this is $(rustc -V): not used; run scripts/startup-order.sh"
  elif [ "$(sed -n 's/^# Cargo.lock: //p' "$OUT")" != "$(lock_sum)" ]; then
    echo "STARTUP ORDER STALE: $OUT was made for another Cargo.lock: names of changed crates no longer match; run scripts/startup-order.sh"
  else
    echo "startup order: $OUT matches $(rustc -V) and Cargo.lock"
  fi
  exit 0
fi

if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
  sudo=""; if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind
fi

TARGET_DIR=${STARTUP_ORDER_TARGET_DIR:-target/startup-order}
mkdir -p "$TARGET_DIR"
MAP=$(cd "$TARGET_DIR" && pwd)/outpost.map
# OUTPOST_STARTUP_ORDER=0: the default layout, as if there were no file yet (a new file is
# the same whichever layout it is measured on; this keeps the map independent of the old one).
OUTPOST_STARTUP_ORDER=0 OUTPOST_LINK_MAP=$MAP CARGO_TARGET_DIR=$TARGET_DIR \
  cargo build --release --quiet
BIN=$TARGET_DIR/release/outpost

WORK=$(mktemp -d /tmp/outpost-order.XXXX)
VG=""
cleanup() {
  if [ -n "$VG" ]; then kill -9 "$VG" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=outpost order CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$WORK/san.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 2 -extfile "$WORK/san.ext" -out "$WORK/server.pem" 2>/dev/null

# The default configuration (`outpost config default`, what operators start from), its
# listeners on loopback ports of our own, plus a TLS listener.
"$BIN" config default | WORK=$WORK python3 -c '
import os, re, sys
text = sys.stdin.read()
text = re.sub(r"(?m)^data_dir = .*$", "data_dir = \"%s/data\"" % os.environ["WORK"], text)
text = re.sub(r"(?m)^listen = \"127\.0\.0\.1:\d+\"$", "listen = \"127.0.0.1:0\"", text)
print(text)' > "$WORK/outpost.toml"
cat >> "$WORK/outpost.toml" <<EOF
[mqtt.tls]
listen = "127.0.0.1:0"
cert_file = "$WORK/server.pem"
key_file = "$WORK/server.key"
EOF

start() {  # [command prefix...]: starts the broker on the config, sets VG, waits for ready
  "$@" "$BIN" serve --config "$WORK/outpost.toml" > "$WORK/out" 2> "$WORK/err" &
  VG=$!
  for _ in $(seq 1 1200); do
    grep -q '^outpost: ready' "$WORK/out" 2>/dev/null && return 0
    kill -0 "$VG" 2>/dev/null || break
    sleep 0.1
  done
  echo "broker did not start" >&2; cat "$WORK/err" >&2; exit 1
}
stop() { kill -TERM "$VG"; wait "$VG" 2>/dev/null || true; VG=""; }
listener() { sed -n "s/^outpost: $1 listening on //p" "$WORK/out"; }
dump() {  # $1 = run, $2 = phase: asks callgrind for a dump, waits for it, prints its path
  callgrind_control --dump="$2" "$VG" > /dev/null
  for _ in $(seq 1 300); do
    f=$(grep -l "^desc: Trigger: dump $2\$" "$WORK/cg-$1".* 2>/dev/null | head -1 || true)
    if [ -n "$f" ]; then echo "$f"; return 0; fi
    sleep 0.1
  done
  echo "no callgrind dump for $1 $2" >&2; exit 1
}

# One traced run ($1 = its name): starting, then idling for 10 s (the periodic work of an
# idle broker: timers, retention, a scrape of its metrics and health as Prometheus would);
# then serving MQTT 3.1.1 and 5.0, QoS 0/1/2, plain and TLS, with subscribers, and the binary
# protocol's produce, consume and consumer-group commit. The clients run natively; only the
# broker is under valgrind. Sets STARTUP and SERVING to the paths of the two dumps.
traced_run() {
  start valgrind --tool=callgrind --dump-instr=yes --compress-pos=no --compress-strings=no \
    --callgrind-out-file="$WORK/cg-$1.%p"
  sleep 5
  python3 -c 'import sys, urllib.request
for path in ("/metrics", "/healthz", "/readyz"):
    urllib.request.urlopen("http://" + sys.argv[1] + path, timeout=60).read()' "$(listener metrics)"
  sleep 5
  STARTUP=$(dump "$1" startup)
  export OUTPOST_BROKER
  OUTPOST_BROKER=$(listener wire)
  local bench=(--messages 300 --subscribers 1 --quiet --timeout 120)
  "$BIN" bench mqtt --addr "$(listener mqtt)" --publishers 2 --qos 1 "${bench[@]}" > /dev/null
  "$BIN" bench mqtt --addr "$(listener mqtt)" --publishers 2 --qos 0 --protocol 5 "${bench[@]}" > /dev/null
  "$BIN" bench mqtt --addr "$(listener mqtt)" --publishers 1 --qos 2 "${bench[@]}" > /dev/null
  "$BIN" bench mqtt --addr "$(listener mqtt-tls)" --cafile "$WORK/ca.pem" --publishers 2 --qos 1 \
    "${bench[@]}" > /dev/null
  "$BIN" bench produce --records 2000 --quiet > /dev/null
  "$BIN" bench consume > /dev/null
  "$BIN" consume bench --from-beginning --group order --max 100 > /dev/null
  SERVING=$(dump "$1" serving)
  stop
}
# A new gateway's first start, on an empty data directory; then every later start, on the log
# and sessions the first run left (the common case: it goes first in the file).
traced_run first
FIRST_STARTUP=$STARTUP FIRST_SERVING=$SERVING
traced_run restart

# The functions of the outpost binary that contain an instruction a phase executed, in the
# order callgrind lists them. Its dumps (positions and names uncompressed) give, under
# `ob=OBJECT`, lines `0xADDRESS COSTS`; the map's symbol lines sit 16 columns deeper than
# its output sections (`VMA LMA SIZE ALIGN OUT IN SYMBOL`).
functions_of() {  # $1 = dump
  python3 - "$MAP" "$1" <<'PY'
import bisect, re, sys
map_path, dump = sys.argv[1], sys.argv[2]
row = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+[0-9a-f]+\s+\d+ (\s*)(\S.*)$")
symbols, in_text = [], False
for line in open(map_path, errors="replace"):
    m = row.match(line)
    if not m:
        continue
    vma, depth, name = int(m.group(1), 16), len(m.group(2)), m.group(3)
    if depth == 0:
        in_text = name == ".text"
    elif depth >= 16 and in_text:
        symbols.append((vma, name))
symbols.sort()
starts = [vma for vma, _ in symbols]
obj, seen = None, set()
for line in open(dump, errors="replace"):
    if line.startswith("ob="):
        obj = line[3:].strip()
    elif line.startswith("0x") and obj is not None and obj.endswith("/outpost"):
        address = int(line.split()[0], 16)
        i = bisect.bisect_right(starts, address) - 1
        start = starts[i] if i >= 0 else None
        while i >= 0 and starts[i] == start:
            name = symbols[i][1]  # every name at that address: aliases
            if name not in seen:
                seen.add(name)
                print(name)
            i -= 1
PY
}
{ functions_of "$STARTUP"; functions_of "$FIRST_STARTUP"; } | awk '!seen[$0]++' > "$WORK/startup.txt"
{ functions_of "$SERVING"; functions_of "$FIRST_SERVING"; } | awk '!seen[$0]++' \
  | grep -vxF -f "$WORK/startup.txt" > "$WORK/serving.txt" || true
if [ "$(wc -l < "$WORK/startup.txt")" -lt 100 ]; then
  echo "only $(wc -l < "$WORK/startup.txt") startup functions found: is $MAP the map of $BIN?" >&2
  exit 1
fi

{
  echo "# Link order of the release binary (x86_64): read by build.rs, made by scripts/startup-order.sh."
  echo "# rustc: $(rustc -V)"
  echo "# Cargo.lock: $(lock_sum)"
  echo "# $(wc -l < "$WORK/startup.txt") functions run while starting (on an existing log, then on none) and idling, then"
  echo "# $(wc -l < "$WORK/serving.txt") more run while serving MQTT (plain, TLS) and the binary protocol."
  cat "$WORK/startup.txt" "$WORK/serving.txt"
} > "$OUT"
echo "wrote $OUT: $(grep -vc '^#' "$OUT") functions"
