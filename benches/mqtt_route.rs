//! MQTT routing: `SubscriptionTree::route` over 10,000 subscriptions of 1,000 sessions, and
//! `topic::matches` alone.
//!
//! Each session `i` (site `s = i % 100`) holds ten subscriptions: five exact
//! (`site/s/dev/i/{temp,hum,cmd,status,config}`), four with wildcards (`site/s/dev/i/#`,
//! `site/s/+/i/temp`, `site/+/dev/i/hum`, `alerts/s/#`) and one shared
//! (`$share/workers/site/s/dev/+/temp`, ten members per site).
//!
//! - `mqtt_route/device_topic`: a device reading; three of one session's subscriptions merge
//!   into one route, plus one shared route.
//! - `mqtt_route/fan_out_10`: an alert for one site, ten sessions.
//! - `mqtt_route/no_match`: a topic under no subscription.
//! - `mqtt_matches/one`: one filter against one topic.
//! - `mqtt_matches/scan_10k`: every stored filter against one topic, what routing would cost
//!   without the tree.
//!
//! Run: `cargo bench --bench mqtt_route`. No timing asserts; compare runs, not absolute numbers.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use outpost::mqtt::packet::{QoS, SubscriptionOptions};
use outpost::mqtt::subscriptions::{SessionId, Subscription, SubscriptionTree};
use outpost::mqtt::topic::{matches, parse_filter};

/// Sessions in the tree.
const SESSIONS: u64 = 1_000;
/// Sites the sessions are spread over.
const SITES: u64 = 100;
/// Level limit for parsing.
const MAX_LEVELS: usize = 16;

/// The ten filters of session `i`.
fn filters(i: u64) -> Vec<String> {
    let s = i % SITES;
    let mut out: Vec<String> = ["temp", "hum", "cmd", "status", "config"]
        .iter()
        .map(|leaf| format!("site/{s}/dev/{i}/{leaf}"))
        .collect();
    out.extend([
        format!("site/{s}/dev/{i}/#"),
        format!("site/{s}/+/{i}/temp"),
        format!("site/+/dev/{i}/hum"),
        format!("alerts/{s}/#"),
        format!("$share/workers/site/{s}/dev/+/temp"),
    ]);
    out
}

fn all_filters() -> Vec<(SessionId, String)> {
    (0..SESSIONS)
        .flat_map(|i| filters(i).into_iter().map(move |f| (SessionId(i), f)))
        .collect()
}

fn tree(filters: &[(SessionId, String)]) -> SubscriptionTree {
    let mut tree = SubscriptionTree::new();
    let sub = Subscription {
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..Default::default()
        },
        id: None,
    };
    for (session, text) in filters {
        let filter = parse_filter(text, MAX_LEVELS).expect("valid filter");
        tree.subscribe(*session, &filter, sub);
    }
    assert_eq!(tree.len(), filters.len());
    tree
}

fn bench_route(c: &mut Criterion) {
    let tree = tree(&all_filters());
    let mut group = c.benchmark_group("mqtt_route");
    group.throughput(Throughput::Elements(1));
    let cases = [
        ("device_topic", "site/7/dev/507/temp", 2),
        ("fan_out_10", "alerts/7/fire", 10),
        ("no_match", "other/7/dev/507/temp", 0),
    ];
    let mut out = Vec::with_capacity(64);
    for (name, topic, routes) in cases {
        tree.route(topic, None, |_| true, &mut out);
        assert_eq!(out.len(), routes, "{topic}");
        group.bench_function(name, |b| {
            b.iter(|| {
                tree.route(black_box(topic), None, |s| s.0 % 2 == 0, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn bench_matches(c: &mut Criterion) {
    let filters = all_filters();
    let inner: Vec<&str> = filters
        .iter()
        .map(|(_, text)| parse_filter(text, MAX_LEVELS).expect("valid").filter)
        .collect();
    let topic = "site/7/dev/507/temp";
    let mut group = c.benchmark_group("mqtt_matches");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one", |b| {
        b.iter(|| matches(black_box("site/+/dev/507/#"), black_box(topic)))
    });
    group.throughput(Throughput::Elements(inner.len() as u64));
    group.bench_function("scan_10k", |b| {
        b.iter(|| {
            let topic = black_box(topic);
            inner.iter().filter(|f| matches(f, topic)).count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_route, bench_matches);
criterion_main!(benches);
