#!/usr/bin/env bash
# Firmware checks, run by .ci/run (issue #5): outpost-firmware stays no_std and fits a
# microcontroller.
#  1. host: builds outpost-firmware with --no-default-features, and checks with
#     `cargo tree -e features` that no dependency turns `std` on in that build;
#  2. thumbv7em-none-eabihf (Cortex-M4F; `rustup target add` when missing, else one loud
#     line and the thumb checks are skipped): builds the crate with default features, then
#     the firmware image firmware-config/thumb-demo (the blocking client over a mock
#     transport; cortex-m-rt, opt-level z, LTO, panic abort), prints its size table and
#     fails past the targets: 16 KiB of code (.text + .rodata) and 2 KiB of RAM
#     (.data + .bss) besides the caller's buffers (the TX and RX statics). The same image with
#     its `config` feature (decoding a pushed DeviceConfig) is measured and held to them too.
# Sizes come from the ELF's section and symbol tables, read by python3 (no cross binutils
# needed). Environment: CARGO_TARGET_DIR (default target).
set -euo pipefail
cd "$(dirname "$0")/.."

target=thumbv7em-none-eabihf
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
code_limit=16384
ram_limit=2048

say() { printf '\n=== %s\n' "$*"; }
loud() { echo "!!!!! WARNING: $* !!!!!"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# --- 1. host: no_std, and no dependency enables std ---------------------------------------
say "outpost-firmware without default features (host)"
cargo build -p outpost-firmware --no-default-features --locked
# Dev-dependencies (tests only) are left out: they never reach firmware.
if cargo tree -p outpost-firmware --no-default-features --locked -e features,no-dev \
    --prefix none | grep -E '^[a-z0-9_-]+ feature "std"'; then
  fail "a dependency of outpost-firmware enables std in the no_std build (above)"
fi
echo "ok: no dependency enables std"

# --- 2. the microcontroller target ------------------------------------------------------------
if ! rustup target list --installed 2>/dev/null | grep -qx "$target" \
   && ! rustup target add "$target" >/dev/null 2>&1; then
  loud "cannot install the $target target here; the microcontroller build and the firmware size checks were NOT run (host checks still ran)"
  exit 0
fi

say "outpost-firmware for $target (Cortex-M4F), default features"
cargo build -p outpost-firmware --target "$target" --locked

# Prints the sections of ELF $1 and the sizes of the demo's statics, then checks the limits.
# $2 names the build in the output.
measure() {
  python3 - "$1" "$2" "$code_limit" "$ram_limit" <<'PY'
import re, struct, sys

path, name, code_limit, ram_limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
elf = open(path, "rb").read()
assert elf[:4] == b"\x7fELF" and elf[4] == 1 and elf[5] == 1, "not a 32-bit little-endian ELF"
shoff, = struct.unpack_from("<I", elf, 0x20)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x2E)
headers = [struct.unpack_from("<IIIIIIIIII", elf, shoff + i * shentsize) for i in range(shnum)]
def text(table_offset, at):
    end = elf.index(b"\0", table_offset + at)
    return elf[table_offset + at:end].decode()
names = [text(headers[shstrndx][4], h[0]) for h in headers]
sections = {n: h for n, h in zip(names, headers)}
size = lambda s: sections[s][5] if s in sections else 0

# Statics of the demo's entry function: TX and RX (the caller's buffers), CLIENT.
statics = {}
symtab, strtab = sections.get(".symtab"), sections.get(".strtab")
if symtab and strtab:
    for i in range(symtab[5] // 16):
        st_name, _, st_size, _, _, _ = struct.unpack_from("<IIIBBH", elf, symtab[4] + i * 16)
        m = re.search(r"(\d+)(TX|RX|CLIENT)17h[0-9a-f]{16}E$", text(strtab[4], st_name))
        if m and int(m.group(1)) == len(m.group(2)):
            statics[m.group(2)] = st_size

print(f"{name}:")
for s in (".vector_table", ".text", ".rodata", ".data", ".bss"):
    print(f"  {s:<14}{size(s):>7} bytes")
for s in ("CLIENT", "TX", "RX"):
    print(f"  static {s:<7}{statics.get(s, 0):>7} bytes")
code = size(".text") + size(".rodata")
flash = code + size(".vector_table") + size(".data")
if "TX" not in statics or "RX" not in statics:
    sys.exit("FAIL: the TX and RX statics are not in the ELF's symbol table")
buffers = statics["TX"] + statics["RX"]
ram = size(".data") + size(".bss") - buffers
print(f"  code (.text + .rodata) {code} bytes of {code_limit}; flash in all {flash}")
print(f"  RAM (.data + .bss) besides the caller's buffers ({buffers} bytes): {ram} of {ram_limit}")
bad = []
if code > code_limit:
    bad.append(f"code {code} > {code_limit}")
if ram > ram_limit:
    bad.append(f"RAM {ram} > {ram_limit}")
if bad:
    sys.exit(f"FAIL ({name}): " + ", ".join(bad))
PY
}

demo=firmware-config/thumb-demo
elf="$target_dir/$target/release/thumb-demo"
say "thumb-demo: format, lints, and the firmware image (release: opt-level z, LTO, panic abort)"
(cd "$demo" && cargo fmt --check && cargo clippy --release --locked --target "$target" \
   --target-dir "$target_dir" -- -D warnings)
(cd "$demo" && cargo build --release --locked --target "$target" --target-dir "$target_dir")
measure "$elf" "thumb-demo (readings, acked readings, batches)"
(cd "$demo" && cargo build --release --locked --target "$target" --target-dir "$target_dir" \
   --features config)
measure "$elf" "thumb-demo --features config (also decodes a pushed DeviceConfig)"
echo "ok: the firmware image links and fits"
