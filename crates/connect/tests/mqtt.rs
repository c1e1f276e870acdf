//! Ingest against the real MQTT broker named by `AIFACTORY_TEST_MQTT_URL` (Mosquitto in CI):
//! a Sparkplug edge node and a JSON gateway publish, ingest commits what is good, quarantines
//! what is not, and asks the node for a rebirth after a lost message.

use aifactory_connect::Value;
use aifactory_connect::mqtt::{Batch, BrokerAddress, IngestOptions, Sink, ingest};
use aifactory_connect::sparkplug::{EdgeNode, REBIRTH_METRIC, decode_payload};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Batch>>>);

impl Sink for Collect {
    async fn commit(&mut self, batch: Batch) -> Result<(), String> {
        self.0.lock().map_err(|e| e.to_string())?.push(batch);
        Ok(())
    }
}

impl Collect {
    fn totals(&self) -> (usize, Vec<String>) {
        let batches = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        let points = batches.iter().map(Batch::points).sum();
        let reasons = batches
            .iter()
            .flat_map(|b| b.quarantined.iter().map(|q| q.reason.kind().to_owned()))
            .collect();
        (points, reasons)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

type IngestTask = tokio::task::JoinHandle<
    Result<aifactory_connect::mqtt::IngestStats, aifactory_connect::mqtt::MqttError>,
>;

/// Runs ingest on `topics` into a collecting sink until the returned sender fires.
fn start_ingest(
    broker: &BrokerAddress,
    run: &str,
    topics: Vec<String>,
) -> (Collect, tokio::sync::oneshot::Sender<()>, IngestTask) {
    let options = IngestOptions {
        client_id: format!("ingest-{run}"),
        topics,
        max_delay: Duration::from_millis(20),
        ..IngestOptions::default()
    };
    let sink = Collect::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut task_sink = sink.clone();
    let broker = broker.clone();
    let task = tokio::spawn(async move {
        ingest(&broker, &options, &mut task_sink, now_ms, async {
            let _ = stop_rx.await;
        })
        .await
    });
    (sink, stop_tx, task)
}

/// The broker named by `AIFACTORY_TEST_MQTT_URL`, or `None` (the test says it skipped).
fn external_broker() -> Option<BrokerAddress> {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return None;
    };
    Some(url.parse().unwrap_or_else(|e| panic!("{e}")))
}

/// The embedded broker with `links` in-process links (rumqttd cannot stop: one per test).
#[cfg(feature = "embedded-broker")]
fn embedded_broker(links: usize) -> (BrokerAddress, aifactory_connect::broker::LocalLinks) {
    use aifactory_connect::broker::{EmbeddedBroker, EmbeddedOptions};
    let broker = EmbeddedBroker::start(&EmbeddedOptions {
        local_links: links,
        ..EmbeddedOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let address = broker.address().clone();
    let in_process = address
        .in_process
        .clone()
        .unwrap_or_else(|| panic!("the embedded broker offers no in-process link"));
    (address, in_process)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_takes_sparkplug_and_json_quarantines_bad_payloads_and_asks_for_rebirth() {
    if let Some(broker) = external_broker() {
        sparkplug_json_quarantine_and_rebirth(&broker).await;
    }
}

/// The same through the embedded broker: ingest reads through an in-process link (the only
/// one, so it is in use during the run and free after), and its rebirth request, published
/// through that link, reaches the edge node on TCP.
#[cfg(feature = "embedded-broker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_through_the_embedded_brokers_in_process_link_takes_and_asks_the_same() {
    let (broker, links) = embedded_broker(1);
    sparkplug_json_quarantine_and_rebirth(&broker).await;
    assert_eq!(links.free(), 1, "the link was not given back");
}

async fn sparkplug_json_quarantine_and_rebirth(broker: &BrokerAddress) {
    let run = format!("t{}x{}", std::process::id(), now_ms());
    let topics = vec![format!("spBv1.0/{run}/#"), format!("aifactory/{run}/#")];
    let (sink, stop_tx, ingest_task) = start_ingest(broker, &run, topics);

    // The publisher: a Sparkplug edge node that also listens for its commands.
    let mut mqtt = MqttOptions::new(format!("edge-{run}"), &broker.host, broker.port);
    mqtt.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(mqtt, 1024);
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = cmd_tx.send(p).await;
            }
        }
    });
    client
        .subscribe(format!("spBv1.0/{run}/NCMD/#"), QoS::AtLeastOnce)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Wait until ingest is subscribed: probe with JSON until a point arrives.
    let probe = format!("aifactory/{run}/probe/up");
    let mut probes = 0;
    while sink.totals().0 == 0 {
        assert!(probes < 100, "ingest never received the probe");
        client
            .publish(probe.as_str(), QoS::AtLeastOnce, false, "1")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        probes += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (probe_points, _) = sink.totals();
    #[cfg(feature = "embedded-broker")]
    if let Some(links) = &broker.in_process {
        assert_eq!(
            links.free(),
            0,
            "ingest connected over TCP, not through the free link"
        );
    }

    let t0 = now_ms() as u64;
    let mut edge = EdgeNode::new(&run, "line-1", 0);
    let mut messages = vec![
        edge.birth(t0, &[]),
        edge.device_birth(
            "cnc-1",
            t0,
            &[("temp", Value::Float(20.0)), ("parts", Value::UInt(0))],
        ),
    ];
    for i in 1..=50u64 {
        messages.push(edge.data(
            Some("cnc-1"),
            t0 + i,
            &[
                ("temp", Value::Float(20.0 + i as f64)),
                ("parts", Value::UInt(i)),
            ],
        ));
    }
    for m in &messages {
        client
            .publish(m.topic.as_str(), QoS::AtLeastOnce, false, m.payload.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Three bad messages, then a lost one and the next.
    let ddata = format!("spBv1.0/{run}/DDATA/line-1/cnc-1");
    let bad: Vec<(String, Vec<u8>)> = vec![
        (ddata.clone(), vec![0x0A, 0xFF, 0xFF]),
        (
            format!("aifactory/{run}/cnc-2/temp"),
            b"{\"value\": ".to_vec(),
        ),
        (
            format!("aifactory/{run}/cnc-2/temp"),
            b"{\"value\": 1, \"unit\": \"C\"}".to_vec(),
        ),
    ];
    for (topic, payload) in bad {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let _lost = edge.data(Some("cnc-1"), t0 + 100, &[("parts", Value::UInt(100))]);
    let after = edge.data(Some("cnc-1"), t0 + 101, &[("parts", Value::UInt(101))]);
    client
        .publish(after.topic.as_str(), QoS::AtLeastOnce, false, after.payload)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let expected = probe_points + 2 + 50 * 2 + 1;
    let rebirth = tokio::time::timeout(Duration::from_secs(20), cmd_rx.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no rebirth request arrived"));
    assert_eq!(rebirth.topic, format!("spBv1.0/{run}/NCMD/line-1"));
    let cmd = decode_payload(&rebirth.payload).unwrap_or_default();
    assert_eq!(cmd.metrics[0].name.as_deref(), Some(REBIRTH_METRIC));
    for _ in 0..200 {
        if sink.totals().0 >= expected && sink.totals().1.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(());
    let stats = ingest_task
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (points, mut reasons) = sink.totals();
    assert!(
        points >= expected,
        "{points} points, expected at least {expected}"
    );
    reasons.sort();
    reasons.dedup();
    assert_eq!(
        reasons,
        vec!["json_shape", "json_syntax", "malformed_protobuf"]
    );
    assert_eq!(stats.quarantined, 3);
    assert_eq!(stats.rebirths_requested, 1);
    assert!(stats.commits >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_publisher_sends_ingest_reads_back_in_full() {
    if let Some(broker) = external_broker() {
        read_back_in_full(&broker, "p").await;
    }
}

/// Through the embedded broker, three runs one after the other on its one in-process link and
/// two at once beside them (the second of those finds no free link and connects over TCP):
/// each commits exactly what its own publisher sent, nothing a previous user of the link left.
#[cfg(feature = "embedded-broker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_links_are_reused_and_ingest_falls_back_to_tcp_when_all_are_taken() {
    let (broker, links) = embedded_broker(1);
    for run in ["a", "b", "c"] {
        read_back_in_full(&broker, run).await;
        assert_eq!(links.free(), 1, "run {run} kept the link");
    }
    let (first, second) = tokio::join!(
        read_back_in_full(&broker, "d"),
        read_back_in_full(&broker, "e")
    );
    assert_eq!((first, second), (805, 805));
    assert_eq!(links.free(), 1);
}

/// One run: an edge node's births and 800 DDATA through `publish_stream`; ingest must commit
/// exactly those points. Returns the points committed after the first birth.
async fn read_back_in_full(broker: &BrokerAddress, tag: &str) -> usize {
    use aifactory_connect::mqtt::publish_stream;
    let broker = broker.clone();
    let run = format!("{tag}{}x{}", std::process::id(), now_ms());
    let (sink, stop_tx, ingest_task) =
        start_ingest(&broker, &run, vec![format!("spBv1.0/{run}/#")]);
    // Ingest subscribes after connecting; give it that moment by retrying the birth until seen.
    let t0 = now_ms() as u64;
    let mut edge = EdgeNode::new(&run, "twin", 0);
    let mut tries = 0;
    while sink.totals().0 == 0 {
        assert!(tries < 50, "ingest never saw a birth");
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let birth = edge.birth(t0, &[("plant", Value::Text("test".into()))]);
        tx.send(birth).await.unwrap_or_else(|e| panic!("{e}"));
        drop(tx);
        publish_stream(&broker, &format!("pub-{run}"), None, rx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tries += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = sink.totals().0;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let will = edge.death();
    let producer = tokio::spawn(async move {
        let mut machines = Vec::new();
        for m in 0..5 {
            machines.push(edge.device_birth(&format!("m{m}"), t0, &[("temp", Value::Float(1.0))]));
        }
        for msg in machines {
            let _ = tx.send(msg).await;
        }
        for i in 0..800u64 {
            let device = format!("m{}", i % 5);
            let msg = edge.data(Some(&device), t0 + i, &[("temp", Value::Float(i as f64))]);
            let _ = tx.send(msg).await;
        }
    });
    let stats = publish_stream(&broker, &format!("pub2-{run}"), Some(&will), rx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    producer.await.unwrap_or_else(|e| panic!("{e}"));
    // Under Mosquitto's default queue of 1,000 messages per client, so the broker drops none.
    assert_eq!(stats.messages, 805);
    assert_eq!(stats.acknowledged, 805);
    let expected = before + 5 + 800;
    for _ in 0..200 {
        if sink.totals().0 >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    let stats = ingest_task
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sink.totals().0, expected);
    assert_eq!(stats.quarantined, 0, "{stats:?}");
    expected - before
}

#[tokio::test]
async fn publishing_to_no_broker_fails_instead_of_waiting() {
    use aifactory_connect::mqtt::publish_stream;
    let broker: BrokerAddress = "mqtt://127.0.0.1:9"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut edge = EdgeNode::new("g", "n", 0);
    let _ = tx.send(edge.birth(1, &[])).await;
    drop(tx);
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        publish_stream(&broker, "nobody", None, rx),
    )
    .await;
    assert!(matches!(result, Ok(Err(_))), "{result:?}");
}

/// `Link::connect` returns once the broker has granted its subscriptions: what another client
/// publishes at that moment reaches it. (It used to return on the connection alone, with the
/// subscriptions still on their way, and a lockstep test lost its first message under load.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_hears_what_is_published_the_moment_it_is_connected() {
    use aifactory_connect::mqtt::Link;
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let broker: BrokerAddress = url.parse().unwrap_or_else(|e| panic!("{e}"));
    let run = format!("link-{}-{}", std::process::id(), now_ms());
    let (publisher, _) = Link::connect(&broker, &format!("{run}-pub"), &[], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Many filters: the more subscriptions in flight, the wider the window once was.
    for attempt in 0..20 {
        let filters: Vec<String> = (0..16).map(|i| format!("{run}/{attempt}/{i}")).collect();
        let (_link, mut incoming) =
            Link::connect(&broker, &format!("{run}-sub-{attempt}"), &filters, false)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        let last = filters.last().cloned().unwrap_or_default();
        publisher
            .publish_waiting(last.clone(), b"hello".to_vec(), false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let heard = tokio::time::timeout(Duration::from_secs(5), incoming.recv()).await;
        let heard = heard.ok().flatten().map(|m| m.topic);
        assert_eq!(heard.as_deref(), Some(last.as_str()), "attempt {attempt}");
    }
}
