//! `aifactory ingest` against the real broker (AIFACTORY_TEST_MQTT_URL): messages published
//! while ingest is down are delivered when it comes back (persistent session) and stored.

use crate::{aifactory, repo_file, text};

#[test]
fn ingest_stores_what_the_twin_published_while_it_was_away() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("plant.sqlite").display().to_string();
    let client = format!("ingest-cli-test-{}", std::process::id());
    // A plant no other MQTT test publishes, so no second edge node shares its Sparkplug group.
    let plant = repo_file("plants/electronics-assembly.toml");
    // The site id of the plant file, which is the Sparkplug group the twin publishes under.
    let site = std::fs::read_to_string(&plant)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("id = \"")
                .map(|r| r.trim_end_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no plant id in {plant}"));
    let topic = format!("spBv1.0/{site}/#");
    let ingest = |seconds: &str| {
        aifactory(&[
            "ingest",
            "--mqtt",
            &url,
            "--db",
            &db,
            "--client-id",
            &client,
            "--topic",
            &topic,
            "--duration",
            seconds,
            "--json",
        ])
    };
    // First connection: the broker registers the session and its subscription.
    let out = ingest("0.5");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Hourly readings keep the stream under the broker's per-client queue.
    let out = aifactory(&[
        "sim",
        "--plant",
        &plant,
        "--days",
        "0.1",
        "--telemetry-period",
        "3600",
        "--mqtt",
        &url,
        "--mqtt-client-id",
        &format!("{client}-twin"),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap_or_default();
    let published = v["mqtt"]["messages"].as_u64().unwrap_or(0);
    assert!(published > 10, "{v}");
    let out = ingest("3");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap_or_default();
    // Other tests may publish the same plant at the same time: at least ours arrived.
    assert!(
        stats["messages"].as_u64().unwrap_or(0) >= published,
        "published {published}, ingested {stats}"
    );
    assert_eq!(stats["quarantined"].as_u64(), Some(0), "{stats}");
    assert!(stats["points"].as_u64().unwrap_or(0) >= published);
}

/// Sums every ingested series of a SQLite store.
fn stored(db: &str) -> std::collections::BTreeMap<String, u64> {
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let store = aifactory_store::SqliteStore::open(std::path::Path::new(db))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .series_counts()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|(s, n)| {
                (
                    format!("{}/{}/{}/{}", s.site, s.node, s.device, s.metric),
                    n,
                )
            })
            .collect()
    })
}

#[test]
fn a_crash_between_commit_and_acknowledgement_loses_nothing_and_stores_nothing_twice() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let crashing = dir.path().join("crashing.sqlite").display().to_string();
    let reference = dir.path().join("reference.sqlite").display().to_string();
    let id = format!("crash-test-{}", std::process::id());
    // A plant no other test publishes over MQTT.
    let plant = repo_file("plants/hangzhou-auto-parts.toml");
    let topic = "spBv1.0/hz-auto-parts/#";
    let ingest = |db: &str, client: &str, seconds: &str, abort: Option<&str>| {
        let mut args = vec![
            "ingest",
            "--mqtt",
            &url,
            "--db",
            db,
            "--client-id",
            client,
            "--topic",
            topic,
            "--duration",
            seconds,
            "--json",
        ];
        if let Some(n) = abort {
            args.extend(["--abort-after-commits", n]);
        }
        aifactory(&args)
    };
    let a = format!("{id}-a");
    let b = format!("{id}-b");
    // Register both persistent sessions, then publish while neither is connected.
    for (db, client) in [(&crashing, &a), (&reference, &b)] {
        let out = ingest(db, client, "0.5", None);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = aifactory(&[
        "sim",
        "--plant",
        &plant,
        "--days",
        "0.05",
        "--telemetry-period",
        "3600",
        "--mqtt",
        &url,
        "--mqtt-client-id",
        &format!("{id}-twin"),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The first ingest dies right after its first commit, before acknowledging it.
    let out = ingest(&crashing, &a, "10", Some("1"));
    assert!(
        !out.status.success(),
        "the ingest process was meant to abort"
    );
    // Restarted, it gets the unacknowledged messages again, and the rest.
    let out = ingest(&crashing, &a, "3", None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = ingest(&reference, &b, "3", None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = stored(&crashing);
    let want = stored(&reference);
    assert!(want.values().sum::<u64>() > 50, "{want:?}");
    assert_eq!(got, want);
}
