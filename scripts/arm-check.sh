#!/usr/bin/env bash
# ARM builds, run by .ci/run (issue #7). For aarch64 and armv7 Linux (Raspberry Pi class):
#  1. the dependency graph (host and each ARM target) has no openssl-sys, no `-sys` crate
#     that links a system library (allowlist below) and no cmake;
#  2. builds the `outpost` binary with Debian's cross gcc as linker and C compiler (ring and
#     zstd-sys compile C), in the quick `arm-check` profile (Cargo.toml);
#  3. runs it under qemu-user: `--version`, then `serve` on 127.0.0.1 port 0 and `topics
#     create`, `produce`, `consume` (the ARM CLI under qemu too), checking the values.
# Installs what is missing (Debian packages, `rustup target add`). A target whose standard
# library cannot be installed is skipped with one loud line; the rest of CI goes on.
# The release build for a Pi is the same command with `--release` (README).
#
# Environment: ARM_CHECK_PROFILE (default arm-check), ARM_CHECK_TARGETS (default both),
# CARGO_TARGET_DIR (default target).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${ARM_CHECK_PROFILE:-arm-check}
targets=${ARM_CHECK_TARGETS:-"aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf"}
target_dir=${CARGO_TARGET_DIR:-target}
# Bounds of every wait (seconds). qemu makes the ARM binary ~10x slower than native.
start_timeout=60
stop_timeout=60
cli_timeout=120

say() { printf '\n=== %s\n' "$*"; }
loud() { echo "!!!!! WARNING: $* !!!!!"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# Per target: Debian's gcc prefix, the qemu-user binary and the sysroot qemu loads libc from.
gcc_prefix() {
  case $1 in
    aarch64-unknown-linux-gnu) echo aarch64-linux-gnu ;;
    armv7-unknown-linux-gnueabihf) echo arm-linux-gnueabihf ;;
    *) fail "unknown target $1" ;;
  esac
}
qemu_of() {
  case $1 in
    aarch64-*) echo qemu-aarch64 ;;
    armv7-*) echo qemu-arm ;;
  esac
}

# --- 1. dependency graph ------------------------------------------------------------------
# `-sys` crates allowed, each because it links no system library:
#   zstd-sys       compiles the zstd C sources it bundles with the `cc` crate; its
#                  `pkg-config` feature (which would link the system libzstd) must stay off,
#                  checked below.
#   linux-raw-sys  Rust declarations of Linux syscall numbers and types; no C, links nothing.
allowed_sys="zstd-sys linux-raw-sys"
# Never: OpenSSL in any form, and cmake (C builds that need it do not cross-compile with
# Debian's gcc alone).
banned="openssl-sys openssl native-tls cmake aws-lc-sys aws-lc-rs"

check_deps() { # $1: "host" or a target triple
  local what=$1 args=()
  if [ "$what" != host ]; then args=(--target "$what"); fi
  local names
  names=$(cargo tree --workspace --locked "${args[@]}" -e normal,build,dev --prefix none \
    --format '{p}' | awk '{print $1}' | sort -u)
  local crate bad=0
  for crate in $names; do
    local why=""
    if [[ " $banned " == *" $crate "* ]]; then
      why="is banned (no OpenSSL, no cmake: DESIGN.md, footprint rules)"
    elif [[ $crate == *-sys && " $allowed_sys " != *" $crate "* ]]; then
      why="is a -sys crate not on the allowlist of scripts/arm-check.sh (it may link a system library)"
    fi
    if [ -n "$why" ]; then
      bad=1
      echo "FAIL ($what): dependency $crate $why; it comes in through:" >&2
      cargo tree --workspace --locked "${args[@]}" -e normal,build,dev -i "$crate" >&2 || true
    fi
  done
  if cargo tree --workspace --locked "${args[@]}" -e features -i zstd-sys 2>/dev/null \
      | grep -q 'zstd-sys feature "pkg-config"'; then
    bad=1
    echo "FAIL ($what): zstd-sys has its pkg-config feature on (links the system libzstd):" >&2
    cargo tree --workspace --locked "${args[@]}" -e features -i zstd-sys >&2 || true
  fi
  [ "$bad" -eq 0 ] || exit 1
  echo "ok ($what): no openssl, no cmake; -sys crates: $(printf '%s\n' $names | grep -- '-sys$' | tr '\n' ' ')"
}

say "dependency graph: no OpenSSL, no system-library -sys crate, no cmake"
check_deps host
for t in $targets; do check_deps "$t"; done

# --- tools ---------------------------------------------------------------------------------
say "cross toolchains and qemu-user"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
apt_packages=()
for p in gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross \
         libc6-dev-armhf-cross qemu-user; do
  installed "$p" || apt_packages+=("$p")
done
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "installing with apt-get: ${apt_packages[*]}"
  if ! { $sudo apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_packages[@]}"; }; then
    loud "cannot install ${apt_packages[*]}; the ARM builds were NOT checked (dependency checks ran)"
    exit 0
  fi
fi

# --- per target: build, run under qemu ---------------------------------------------------
pids=()
tmp_dirs=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${tmp_dirs[@]}"; do rm -rf "$p"; done
}
trap cleanup EXIT

build() { # $1: target
  local t=$1 prefix upper lower
  prefix=$(gcc_prefix "$t")
  upper=$(echo "$t" | tr 'a-z-' 'A-Z_')
  lower=$(echo "$t" | tr '-' '_')
  # The linker, and the C compiler and archiver of the crates that build C (ring, zstd-sys).
  env "CARGO_TARGET_${upper}_LINKER=${prefix}-gcc" "CC_${lower}=${prefix}-gcc" \
      "AR_${lower}=${prefix}-ar" \
      cargo build --locked --profile "$profile" --target "$t" --bin outpost
}

# Runs the ARM binary under qemu, bounded by a timeout.
arm() { timeout "$cli_timeout" "$qemu" -L "$sysroot" "$bin" "$@"; }

smoke() { # $1: target
  local t=$1 dir pid addr=""
  dir=$(mktemp -d)
  tmp_dirs+=("$dir")
  local version
  version=$(arm --version)
  [[ $version == "outpost "* ]] || fail "$t: outpost --version printed '$version'"
  echo "ok ($t): $version"

  cat > "$dir/outpost.toml" <<EOF
data_dir = "$dir/data"
[wire]
listen = "127.0.0.1:0"
[mqtt]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
EOF
  "$qemu" -L "$sysroot" "$bin" serve --config "$dir/outpost.toml" \
    > "$dir/stdout" 2> "$dir/stderr" &
  pid=$!
  pids+=("$pid")
  local waited=0
  while [ -z "$addr" ]; do
    addr=$(sed -n 's/^outpost: wire listening on //p' "$dir/stdout")
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/stderr" >&2; fail "$t: serve exited before listening"; }
    [ "$waited" -lt $((start_timeout * 5)) ] || { cat "$dir/stderr" >&2; fail "$t: serve did not listen within ${start_timeout}s"; }
    sleep 0.2
    waited=$((waited + 1))
  done
  echo "ok ($t): serve listening on $addr (MQTT: $(sed -n 's/^outpost: mqtt listening on //p' "$dir/stdout"))"

  # zstd compression runs the cross-compiled C of zstd-sys on the ARM side.
  arm --broker "$addr" topics create armcheck --partitions 2 --compression zstd
  printf 'reading-1\nreading-2\nreading-3\n' | arm --broker "$addr" produce armcheck --key sensor-7
  arm --broker "$addr" produce armcheck --key sensor-7 --value "$t"
  local got want
  got=$(arm --broker "$addr" consume armcheck --from-beginning --max 4)
  want=$(printf 'reading-1\nreading-2\nreading-3\n%s' "$t")
  [ "$got" = "$want" ] || fail "$t: consume printed '$got', expected '$want'"
  echo "ok ($t): topics create, produce, consume (zstd) round trip"

  kill -TERM "$pid"
  waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge $((stop_timeout * 5)) ]; then
      kill -9 "$pid" 2>/dev/null || true
      fail "$t: serve did not stop within ${stop_timeout}s of SIGTERM"
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  local status=0
  wait "$pid" || status=$?
  [ "$status" -eq 0 ] || { cat "$dir/stderr" >&2; fail "$t: serve exited with status $status after SIGTERM"; }
  echo "ok ($t): graceful stop"
}

for t in $targets; do
  say "$t"
  if ! rustup target list --installed 2>/dev/null | grep -qx "$t" \
     && ! rustup target add "$t" >/dev/null 2>&1; then
    loud "cannot install the $t standard library (rustup target add); the $t build was NOT checked"
    continue
  fi
  started=$(date +%s)
  build "$t"
  echo "built $t ($profile profile) in $(( $(date +%s) - started )) s"
  bin="$target_dir/$t/$profile/outpost"
  qemu=$(qemu_of "$t")
  sysroot=/usr/$(gcc_prefix "$t")
  smoke "$t"
done
