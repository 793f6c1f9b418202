//! Self-tests of the bridge tests' upstream harness (`tests/common/upstream.rs`): a private
//! Mosquitto, the fault-injecting proxy and the recording subscriber, with no bridge. A real
//! rumqttc v5 publisher stands in for the bridge.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::upstream::{
    by_partition, check_complete, wait_until, Keep, Mosquitto, MosquittoOpts, Proxy, Subscriber,
    SubscriberOpts, PROP_GATEWAY, PROP_OFFSET, PROP_PARTITION, PROP_TOPIC,
};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};

/// How long a test waits for something it expects.
const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);
/// Capacity of the publisher's request channel.
const REQUESTS: usize = 100;
/// Pause between the publisher's reconnects.
const PUB_RECONNECT: Duration = Duration::from_millis(100);
/// MQTT topic the publisher uses.
const TOPIC: &str = "site/telemetry";

/// Counters of a publisher's event loop.
#[derive(Default)]
struct PubState {
    acks: AtomicU64,
    errors: AtomicU64,
    connacks: AtomicU64,
}

/// A rumqttc v5 publisher standing in for the bridge; its event loop runs in a task of the
/// current runtime, aborted on drop.
struct Publisher {
    client: AsyncClient,
    state: Arc<PubState>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Connects to `127.0.0.1:port` (must be called inside a tokio runtime).
    fn start(port: u16) -> Publisher {
        let mut o = MqttOptions::new(unique_id("pub"), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(o, REQUESTS);
        let state = Arc::new(PubState::default());
        let st = state.clone();
        // Ends when aborted (drop).
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        st.acks.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        st.connacks.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        st.errors.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(PUB_RECONNECT).await;
                    }
                }
            }
        });
        Publisher {
            client,
            state,
            task,
        }
    }

    /// Publishes offset `offset` of partition 0 of log topic `t` at QoS 1.
    async fn publish(&self, offset: u64) {
        let props = PublishProperties {
            user_properties: vec![
                (PROP_GATEWAY.to_owned(), "gw-test".to_owned()),
                (PROP_TOPIC.to_owned(), "t".to_owned()),
                (PROP_PARTITION.to_owned(), "0".to_owned()),
                (PROP_OFFSET.to_owned(), offset.to_string()),
            ],
            ..Default::default()
        };
        self.client
            .publish_with_properties(TOPIC, QoS::AtLeastOnce, false, offset.to_string(), props)
            .await
            .expect("publish request");
    }

    /// Publishes `offsets` and waits until all of them are acknowledged.
    async fn publish_acked(&self, offsets: std::ops::Range<u64>) {
        let before = self.acks();
        let n = offsets.end - offsets.start;
        for offset in offsets {
            self.publish(offset).await;
        }
        assert!(
            wait_until(WAIT, || self.acks() >= before + n),
            "{n} PUBACKs expected, got {}",
            self.acks() - before
        );
    }

    fn acks(&self) -> u64 {
        self.state.acks.load(Ordering::SeqCst)
    }

    fn errors(&self) -> u64 {
        self.state.errors.load(Ordering::SeqCst)
    }

    fn connacks(&self) -> u64 {
        self.state.connacks.load(Ordering::SeqCst)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unique_id(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "harness-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Connects once with `credentials`; returns CONNACK's code or the connection error.
async fn connect_once(port: u16, credentials: (&str, &str)) -> Result<(), ConnectionError> {
    let mut o = MqttOptions::new(unique_id("auth"), "127.0.0.1", port);
    o.set_credentials(credentials.0, credentials.1);
    let (_client, mut el) = AsyncClient::new(o, REQUESTS);
    let first = tokio::time::timeout(WAIT, el.poll())
        .await
        .expect("CONNACK or error in time");
    match first? {
        Event::Incoming(Packet::ConnAck(a)) if a.code == ConnectReturnCode::Success => Ok(()),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// 1,000 QoS 1 messages through the proxy all arrive, once each and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_messages_through_the_proxy_arrive_complete() {
    let m = Mosquitto::start(MosquittoOpts::default());
    let proxy = Proxy::start(m.port());
    let sub = Subscriber::start(m.port(), "site/#");
    let publisher = Publisher::start(proxy.port());
    publisher.publish_acked(0..1000).await;
    assert!(sub.wait_for_count(1000, WAIT), "got {}", sub.count());
    let arrivals = sub.arrivals();
    let report = check_complete(&arrivals, 0, 0..1000);
    assert!(report.is_complete_in_order(), "{report}");
    assert_eq!(report.duplicates, 0, "{report}");
    assert_eq!(by_partition(&arrivals)[&0].len(), 1000);
    let origin = arrivals[7].origin.as_ref().expect("origin parsed");
    assert_eq!(
        (
            origin.gateway.as_str(),
            origin.topic.as_str(),
            origin.offset
        ),
        ("gw-test", "t", 7)
    );
    assert_eq!(arrivals[7].payload, b"7");
    assert_eq!(arrivals[7].user_properties.len(), 4);
    assert!(proxy.connections() >= 1);
    assert!(m.url().starts_with("mqtt://127.0.0.1:"));
}

/// The subscriber's session survives a SIGTERM restart: what was queued for it while it was
/// away is delivered when it comes back, without subscribing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_survives_a_sigterm_restart() {
    let mut m = Mosquitto::start(MosquittoOpts::default());
    let sub_proxy = Proxy::start(m.port());
    let sub = Subscriber::start(sub_proxy.port(), "site/#");
    // Keep the subscriber away: cut it, and refuse its reconnects.
    sub_proxy.refuse(true);
    sub_proxy.cut_all();
    assert!(wait_until(WAIT, || !sub.connected()));
    {
        let publisher = Publisher::start(m.port());
        publisher.publish_acked(0..20).await;
    }
    m.terminate();
    m.restart();
    sub_proxy.refuse(false);
    assert!(sub.wait_for_count(20, WAIT), "got {}", sub.count());
    let report = check_complete(&sub.arrivals(), 0, 0..20);
    assert!(report.missing.is_empty(), "{report}");
    assert_eq!(
        sub.subacks(),
        1,
        "the session (and its subscription) was kept"
    );
    assert!(m.log().contains("Saving in-memory database"));
}

/// kill -9, wiping the database and restarting gives an empty broker: the subscriber
/// subscribes again by itself and gets what is published afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_wipe_restart_resubscribes() {
    let mut m = Mosquitto::start(MosquittoOpts::default());
    let lean = SubscriberOpts {
        keep: Keep::OriginOnly,
        ..SubscriberOpts::default()
    };
    let sub = Subscriber::start_with(m.port(), "site/#", lean);
    let port = m.port();
    m.kill9();
    assert!(!m.running());
    m.wipe_state();
    m.restart();
    assert_eq!(m.port(), port);
    assert!(
        wait_until(WAIT, || sub.subacks() >= 2),
        "no new SUBACK; {:?}",
        sub.last_error()
    );
    let publisher = Publisher::start(m.port());
    publisher.publish_acked(0..5).await;
    assert!(sub.wait_for_count(5, WAIT), "got {}", sub.count());
    assert!(sub.connected());
    let first = &sub.arrivals()[0];
    assert_eq!(first.origin.as_ref().map(|o| o.offset), Some(0));
    assert!(first.payload.is_empty() && first.user_properties.is_empty());
}

/// SIGSTOP hangs the broker with its port open; SIGCONT lets the traffic through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_holds_and_sigcont_releases() {
    let mut m = Mosquitto::start(MosquittoOpts::default());
    let sub = Subscriber::start(m.port(), "site/#");
    let publisher = Publisher::start(m.port());
    publisher.publish_acked(0..1).await;
    assert!(sub.wait_for_count(1, WAIT));
    m.stop_signal();
    for offset in 1..4 {
        publisher.publish(offset).await;
    }
    assert_eq!(
        sub.wait_quiet(QUIET, WAIT),
        1,
        "a stopped broker forwards nothing"
    );
    m.cont();
    assert!(sub.wait_for_count(4, WAIT), "got {}", sub.count());
    // Drop with the broker stopped must not hang either.
    m.stop_signal();
}

/// `pause` holds traffic until `resume`; `cut_all` disconnects the publisher; `flaky` keeps
/// cutting its reconnects.
#[test]
fn proxy_pause_cut_and_flaky() {
    let rt = common::runtime();
    let m = Mosquitto::start(MosquittoOpts::default());
    let proxy = Proxy::start(m.port());
    let sub = Subscriber::start(m.port(), "site/#");
    let publisher = rt.block_on(async { Publisher::start(proxy.port()) });
    rt.block_on(publisher.publish_acked(0..10));
    assert!(sub.wait_for_count(10, WAIT));

    proxy.pause();
    rt.block_on(async {
        for offset in 10..20 {
            publisher.publish(offset).await;
        }
    });
    assert_eq!(
        sub.wait_quiet(QUIET, WAIT),
        10,
        "nothing passes a paused proxy"
    );
    proxy.resume();
    assert!(sub.wait_for_count(20, WAIT), "got {}", sub.count());
    assert!(wait_until(WAIT, || publisher.acks() >= 20));

    let errors = publisher.errors();
    proxy.cut_all();
    assert!(
        wait_until(WAIT, || publisher.errors() > errors),
        "the publisher saw no disconnect"
    );
    assert!(proxy.cuts() >= 1);
    assert!(
        wait_until(WAIT, || publisher.connacks() >= 2),
        "no reconnect"
    );

    let cuts = proxy.cuts();
    proxy.flaky(Duration::from_millis(200));
    assert!(
        wait_until(WAIT, || proxy.cuts() >= cuts + 2),
        "flaky cut {} times",
        proxy.cuts() - cuts
    );
    proxy.steady();
    let connacks = publisher.connacks();
    assert!(wait_until(WAIT, || publisher.connacks() > connacks));
    drop(publisher);
    drop(rt);
}

/// With a password file, wrong credentials are refused and right ones accepted; a user added
/// later works after a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_file_and_reload() {
    let opts = MosquittoOpts {
        password: Some(("alice".to_owned(), "secret".to_owned())),
        ..MosquittoOpts::default()
    };
    let mut m = Mosquitto::start(opts);
    let refused = connect_once(m.port(), ("alice", "wrong")).await;
    assert!(
        matches!(
            refused,
            Err(ConnectionError::ConnectionRefused(
                ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized
            ))
        ),
        "{refused:?}"
    );
    connect_once(m.port(), ("alice", "secret"))
        .await
        .expect("right credentials accepted");
    let creds = SubscriberOpts {
        credentials: Some(("alice".to_owned(), "secret".to_owned())),
        ..SubscriberOpts::default()
    };
    let _sub = Subscriber::start_with(m.port(), "site/#", creds);

    assert!(connect_once(m.port(), ("bob", "hunter2")).await.is_err());
    m.add_user("bob", "hunter2");
    m.reload();
    // The reload is asynchronous: retry a bounded number of times.
    let mut accepted = false;
    for _ in 0..50 {
        if connect_once(m.port(), ("bob", "hunter2")).await.is_ok() {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "bob refused after reload; log:\n{}", m.log());
}
