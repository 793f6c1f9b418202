#!/usr/bin/env bash
# The test command (README): builds and runs every test of the workspace, and checks that
# outpost-firmware stays no_std and fits a microcontroller (scripts/firmware-check.sh).
# Installs what it needs; safe to run on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n=== %s\n' "$*"; }

# --- firmware crate: no_std, and the microcontroller build and its size -------------------
say "outpost-firmware: no_std, thumbv7em build and size (scripts/firmware-check.sh)"
bash scripts/firmware-check.sh

# --- tools of the MQTT interop and bridge tests (tests/mqtt_interop.rs, tests/bridge_*) ----
# mosquitto_pub/mosquitto_sub, the mosquitto broker (each bridge test starts a private one on
# an ephemeral port: tests/common/upstream.rs) and a venv with paho-mqtt 2.x. Installed only
# when missing, so a second run does no network traffic.
say "MQTT tools: mosquitto broker and clients, python3 venv with paho-mqtt"
apt_packages=()
if ! command -v mosquitto_pub >/dev/null 2>&1 || ! command -v mosquitto_sub >/dev/null 2>&1; then
  apt_packages+=(mosquitto-clients)
fi
# The broker: where tests/common/upstream.rs looks for it (Debian's path, else PATH).
find_mosquitto() {
  if [ -x /usr/sbin/mosquitto ]; then echo /usr/sbin/mosquitto; else command -v mosquitto || true; fi
}
mosquitto_missing=false
if [ -z "$(find_mosquitto)" ]; then
  mosquitto_missing=true
  apt_packages+=(mosquitto)
fi
# Debian's python3 lacks ensurepip (so `python3 -m venv` fails) until python3-venv is in.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt_packages+=(python3-venv)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing with apt-get: ${apt_packages[*]}"
  # Debian's `mosquitto` package starts a system broker on 1883, which would keep
  # `outpost serve` (README's other command) from binding its default MQTT port. A
  # policy-rc.d exiting 101 tells the package scripts not to start services; it is removed
  # afterwards, and only if this script created it.
  policy_rc=/usr/sbin/policy-rc.d
  created_policy=false
  if $mosquitto_missing && [ ! -e "$policy_rc" ]; then
    printf '#!/bin/sh\n# temporary, from outpost scripts/test.sh: start no services\nexit 101\n' \
      | $sudo tee "$policy_rc" >/dev/null
    $sudo chmod 755 "$policy_rc"
    created_policy=true
    trap 'if $created_policy; then $sudo rm -f "$policy_rc"; fi' EXIT
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_packages[@]}"
  if $created_policy; then
    $sudo rm -f "$policy_rc"
    created_policy=false
  fi
  if $mosquitto_missing; then
    # Belt and braces where policy-rc.d is not consulted (e.g. systemd started it anyway).
    $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
fi
mosquitto_bin="$(find_mosquitto)"
if [ -z "$mosquitto_bin" ]; then
  echo "FAIL: the mosquitto broker is not installed; the bridge tests need it" >&2
  exit 1
fi
venv_python="$PWD/.venv/bin/python"
if ! "$venv_python" -c 'import paho.mqtt, sys; sys.exit(0 if paho.mqtt.__version__.startswith("2.") else 1)' >/dev/null 2>&1; then
  echo "creating .venv with paho-mqtt 2.x"
  python3 -m venv --clear .venv
  "$venv_python" -m pip install --quiet --disable-pip-version-check 'paho-mqtt>=2,<3'
fi
export OUTPOST_PYTHON="$venv_python"
echo "ok: $(mosquitto_pub --help | sed -n 2p); $("$mosquitto_bin" -h 2>&1 | head -1 || true); paho-mqtt $("$OUTPOST_PYTHON" -c 'import paho.mqtt; print(paho.mqtt.__version__)')"

# --- tools of the Kafka tests (tests/kafka_upstream.rs, tests/bridge_kafka.rs) ------------
# tansu, a Kafka-protocol broker (each test starts a private one: tests/common/kafka.rs), and
# confluent-kafka in the same venv, the consumer that checks what arrived (its wheel bundles
# a current librdkafka; Debian's librdkafka 2.0 and kcat cannot talk to tansu). Installed only
# when missing: a cold `cargo install` of tansu takes ~6 minutes on 2 cores.
tansu_version=0.6.0
say "Kafka tools: tansu $tansu_version broker, confluent-kafka in .venv"
tansu_ok() { [ -n "$1" ] && [ -x "$1" ] && [ "$("$1" --version 2>/dev/null)" = "tansu $tansu_version" ]; }
tansu_bin=""
for candidate in "$(command -v tansu || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"; do
  if tansu_ok "$candidate"; then tansu_bin="$candidate"; break; fi
done
if [ -z "$tansu_bin" ]; then
  echo "installing tansu $tansu_version with cargo install (several minutes)"
  cargo install tansu --version "$tansu_version" --locked --debug --no-default-features --features libsql
  tansu_bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
fi
if ! tansu_ok "$tansu_bin"; then
  echo "FAIL: tansu $tansu_version is not installed (found: ${tansu_bin:-none}); the Kafka tests need it" >&2
  exit 1
fi
export OUTPOST_TANSU="$tansu_bin"
if ! "$venv_python" -c 'import confluent_kafka, sys; sys.exit(0 if confluent_kafka.__version__.startswith("2.") else 1)' >/dev/null 2>&1; then
  echo "installing confluent-kafka 2.x into .venv"
  "$venv_python" -m pip install --quiet --disable-pip-version-check 'confluent-kafka>=2.6,<3'
fi
echo "ok: $("$OUTPOST_TANSU" --version) at $OUTPOST_TANSU; confluent-kafka $("$venv_python" -c 'import confluent_kafka as c; print(c.__version__, "(librdkafka", c.libversion()[0] + ")")')"

# --- the workspace ---------------------------------------------------------------------
# Release builds lay out their startup code from link/startup-symbols.txt (build.rs); one
# line says whether it still matches this compiler and Cargo.lock (never fails the tests).
say "release code layout (scripts/startup-order.sh --check)"
bash scripts/startup-order.sh --check

say "cargo test (unit, integration against the real binary, crash tests, doc tests)"
cargo test --workspace --locked
