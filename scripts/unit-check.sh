#!/usr/bin/env bash
# Checks examples/outpost.service with `systemd-analyze verify`, run by .ci/run.
#
# verify also checks that ExecStart's binary exists and is executable, so the unit is verified
# inside a temporary root: the unit at /etc/systemd/system/, the outpost binary built from
# this tree at /usr/local/bin/outpost (where the unit points), /bin/kill (ExecReload), and a copy of this machine's
# systemd units for the targets it depends on. Nothing is installed on the machine itself.
# verify exits 0 even for an unknown key or a value it ignores, so any output fails the check.
# Prints the `systemd-analyze security` exposure score as well. Installs systemd's tools when
# missing; where systemd-analyze cannot run, says so in one loud line and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

unit=examples/outpost.service
loud() { echo "!!!!! WARNING: $* !!!!!"; }

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "installing systemd (for systemd-analyze) with apt-get"
  # policy-rc.d is irrelevant here: the package starts nothing inside a container.
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq systemd; }; then
    loud "cannot install systemd-analyze here; $unit was NOT verified"
    exit 0
  fi
fi
if ! systemd-analyze --version >/dev/null 2>&1; then
  loud "systemd-analyze does not run here; $unit was NOT verified"
  exit 0
fi

# The units verify needs (sysinit.target, basic.target, ...): Debian keeps them in /lib.
units_dir=""
for d in /usr/lib/systemd/system /lib/systemd/system; do
  if [ -e "$d/sysinit.target" ]; then units_dir=$d; break; fi
done
if [ -z "$units_dir" ]; then
  loud "no systemd units (sysinit.target) on this machine; $unit was NOT verified"
  exit 0
fi

# Any outpost binary built from this tree will do (verify checks that ExecStart's file is
# executable): the host's debug build, else the one scripts/arm-check.sh built for the Pi,
# else a fresh host build.
target_dir=${CARGO_TARGET_DIR:-target}
bin=""
for b in "$target_dir/debug/outpost" "$target_dir"/*-linux-gnu*/arm-check/outpost; do
  if [ -x "$b" ]; then bin=$b; break; fi
done
if [ -z "$bin" ]; then
  cargo build --locked --bin outpost
  bin="$target_dir/debug/outpost"
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/bin"
cp "$bin" "$root/usr/local/bin/outpost"
# ExecReload's /bin/kill (procps), checked like ExecStart.
cp "$(type -P kill)" "$root/bin/kill"
cp -r "$units_dir" "$root/usr/lib/systemd/system"

# verify prints problems and exits 0 for most of them: any output is a failure.
verify() { # $1: unit file to place at /etc/systemd/system/outpost.service
  cp "$1" "$root/etc/systemd/system/outpost.service"
  systemd-analyze verify --root="$root" /etc/systemd/system/outpost.service 2>&1 || echo "(exit code $?)"
}

# The check must see a broken unit, or it checks nothing.
sed 's/^ProtectHome=/ProtectHomeTypo=/' "$unit" > "$root/broken.service"
if [ -z "$(verify "$root/broken.service")" ]; then
  echo "FAIL: systemd-analyze verify did not report an unknown key; the unit check is not working" >&2
  exit 1
fi

out=$(verify "$unit")
if [ -n "$out" ]; then
  echo "$out" >&2
  echo "FAIL: systemd-analyze verify reports problems in $unit (above)" >&2
  exit 1
fi
echo "ok: systemd-analyze verify $unit (ExecStart=/usr/local/bin/outpost: $bin, in a temporary root)"

if score=$(systemd-analyze security --offline=true --root="$root" /etc/systemd/system/outpost.service 2>&1 \
    | grep 'Overall exposure level'); then
  echo "ok: systemd-analyze security: ${score#→ }"
else
  echo "note: systemd-analyze security --offline gave no score here"
fi
