//! Password verification: one argon2id verification with the parameters new hashes get
//! (`outpost passwd add`), what every MQTT or binary-protocol login costs. The README's
//! "Authentication" section quotes this figure.
//!
//! Run: `cargo bench --bench password`. No timing asserts; compare runs, not absolute numbers.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use outpost::auth::password::{hash_password, verify, PasswordHash};

fn verification(c: &mut Criterion) {
    let phc = hash_password(b"sensor-7-password").expect("hash");
    let hash = PasswordHash::new(&phc).expect("a PHC string");
    let mut g = c.benchmark_group("password");
    g.sample_size(20);
    g.bench_function("verify_argon2id", |b| {
        b.iter(|| assert!(verify(black_box(&hash), black_box(b"sensor-7-password"))))
    });
    g.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
