//! Build script of the `outpost` binary: lays out the release binary's code so that what runs
//! at startup and while idle sits together (`link/startup-symbols.txt`, made by
//! `scripts/startup-order.sh`).
//!
//! Why: the kernel maps a binary's code in 64 KiB windows around every page it touches
//! (fault-around), so startup code scattered over 6 MB of `.text` keeps ~4.5 MiB of it
//! resident in an idle broker; the same code packed together keeps ~1.2 MiB. lld places the
//! functions named in the file first, in that order (`--symbol-ordering-file`); everything
//! else keeps its place. The names carry rustc's symbol hashes, which depend on the compiler
//! version and on Cargo.lock, so the file records the rustc it was made with and is used only
//! with that rustc: then the linker is rust-lld (Rust's default on x86_64 Linux since 1.90),
//! which knows the option. A file made for another Cargo.lock still links; the names it no
//! longer finds are skipped (see `scripts/startup-order.sh --check`).
//!
//! Only release builds for `x86_64-unknown-linux-gnu` with Rust's default linker; ARM cross
//! builds link with GNU ld, which has no such option. `OUTPOST_STARTUP_ORDER=0` turns it off.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let file = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("link")
        .join("startup-symbols.txt");
    println!("cargo:rerun-if-changed={}", file.display());
    println!("cargo:rerun-if-env-changed=OUTPOST_STARTUP_ORDER");
    println!("cargo:rerun-if-env-changed=OUTPOST_LINK_MAP");
    // scripts/startup-order.sh reads the linker's map of the release binary: the addresses of
    // its functions, which the stripped binary no longer names.
    if let Some(map) = env::var_os("OUTPOST_LINK_MAP") {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,-Map={}",
            PathBuf::from(map).display()
        );
        // The map names symbols as the ordering file must: mangled.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-demangle");
    }
    if env::var("PROFILE").as_deref() != Ok("release")
        || env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var_os("OUTPOST_STARTUP_ORDER").is_some_and(|v| v == "0")
    {
        return;
    }
    // Another linker than Rust's default (a `linker` setting, `-C linker=`, `-C
    // linker-features`, `-fuse-ld=`) may not know the option: leave the layout alone.
    let rustflags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if env::var_os("RUSTC_LINKER").is_some()
        || rustflags.contains("linker")
        || rustflags.contains("fuse-ld")
    {
        return;
    }
    let Ok(text) = std::fs::read_to_string(&file) else {
        return;
    };
    let made_with = text
        .lines()
        .find_map(|l| l.strip_prefix("# rustc: "))
        .map(str::trim);
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let this_rustc = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned());
    match (made_with, this_rustc.as_deref()) {
        (Some(made), Some(this)) if made == this => {
            println!(
                "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
                file.display()
            );
            // Names the file no longer finds are expected after code changes; they are not
            // errors, and rustc would show one warning per name.
            println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
        }
        (made, this) => println!(
            "cargo:warning=link/startup-symbols.txt was made with {}, this is {}: the release \
             binary keeps the default code layout (idle RSS ~3 MiB higher); \
             scripts/startup-order.sh makes the file for this compiler",
            made.unwrap_or("an unknown rustc"),
            this.unwrap_or("an unknown rustc"),
        ),
    }
}
