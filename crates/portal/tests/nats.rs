//! Evidence from plant to portal over the real NATS JetStream server named by
//! `AIFACTORY_TEST_NATS_URL`, into the real PostgreSQL of `AIFACTORY_TEST_PG_URL` (a fresh
//! schema and a stream of its own, both removed afterwards). Without both variables the test
//! says it skipped and passes.

use aifactory_portal::nats::{self, EvidenceChannel, Received};
use aifactory_portal::seed::{self, CitySpec};
use aifactory_portal::{Caller, Clock, NewPlant, Portal};
use sqlx::Connection;
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn pg_admin(url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .expect("admin SQL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plants_sync_evidence_over_jetstream_and_only_signed_bundles_count() {
    let (Ok(pg), Ok(nats_url)) = (
        std::env::var("AIFACTORY_TEST_PG_URL"),
        std::env::var("AIFACTORY_TEST_NATS_URL"),
    ) else {
        println!("skipped: needs AIFACTORY_TEST_PG_URL and AIFACTORY_TEST_NATS_URL");
        return;
    };
    let id = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let schema = format!("aifactory_portal_nats_{id}");
    pg_admin(&pg, &format!("CREATE SCHEMA {schema}")).await;
    let separator = if pg.contains('?') { '&' } else { '?' };
    let url = format!("{pg}{separator}options[search_path]={schema}");
    let channel = EvidenceChannel {
        url: nats_url,
        stream: format!("AIFACTORY_EVIDENCE_TEST_{id}"),
        prefix: format!("aifactory_test_{id}.evidence"),
    };
    let outcome = tokio::spawn(run(url, channel.clone())).await;
    let _ = nats::delete_stream(&channel).await;
    pg_admin(&pg, &format!("DROP SCHEMA {schema} CASCADE")).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run(url: String, channel: EvidenceChannel) {
    let clock: Clock = Arc::new(|| 1_780_243_200_000);
    let portal = Portal::open(&url, 8, clock).await.expect("portal");
    let spec = CitySpec {
        plants: 3,
        providers: 1,
        ..CitySpec::default()
    };
    let plants = seed::city(&spec);
    let system = Caller::system();
    // Plant 0 registered with its key; plant 1 registered without one; plant 2 not registered.
    for (p, key) in [
        (
            &plants[0],
            Some(hex::encode(plants[0].key().verifying_key().to_bytes())),
        ),
        (&plants[1], None),
    ] {
        portal
            .register_plant(
                &system,
                &NewPlant {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    industry: p.industry.clone(),
                    district: p.district.clone(),
                    revenue_myuan: 50.0,
                    public_key: key,
                },
            )
            .await
            .expect("register");
    }
    let heard: Arc<Mutex<Vec<Received>>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sink = heard.clone();
    let consumer = tokio::spawn(nats::consume_evidence(
        portal.clone(),
        channel.clone(),
        stopped,
        move |r| {
            sink.lock().unwrap().push(r);
        },
    ));

    let bytes = |p: &seed::CityPlant, q: u32| {
        serde_json::to_vec(&seed::bundle(p, &spec, q).unwrap()).unwrap()
    };
    nats::publish_bundle(&channel, &plants[0].id, bytes(&plants[0], 1))
        .await
        .expect("publish q1");
    // A resend of the same bundle (a lost acknowledgement) is one message.
    nats::publish_bundle(&channel, &plants[0].id, bytes(&plants[0], 1))
        .await
        .expect("publish q1 again");
    let mut tampered: serde_json::Value = serde_json::from_slice(&bytes(&plants[0], 2)).unwrap();
    tampered["coverage"]["machines_streaming"] = serde_json::json!(1000);
    nats::publish_bundle(&channel, &plants[0].id, tampered.to_string().into_bytes())
        .await
        .expect("publish tampered");
    nats::publish_bundle(&channel, &plants[1].id, bytes(&plants[1], 1))
        .await
        .expect("publish keyless");
    nats::publish_bundle(&channel, &plants[2].id, bytes(&plants[2], 1))
        .await
        .expect("publish unknown");
    let err = nats::publish_bundle(&channel, "bad.id", b"{}".to_vec())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("subject"), "{err}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while heard.lock().unwrap().len() < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A moment more: a duplicate that slipped through would show up now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    consumer.await.unwrap().expect("consumer ran");
    let heard = heard.lock().unwrap().clone();
    assert_eq!(heard.len(), 4, "{heard:?}");
    assert!(
        matches!(&heard[0], Received::Accepted { plant, .. } if *plant == plants[0].id),
        "{heard:?}"
    );
    assert!(
        matches!(&heard[1], Received::Refused { reason, .. } if reason.contains("signature")),
        "{heard:?}"
    );
    assert!(
        matches!(&heard[2], Received::Refused { reason, .. } if reason.contains("no evidence key on record")),
        "{heard:?}"
    );
    assert!(
        matches!(&heard[3], Received::Dropped { reason, .. } if reason.contains("not registered")),
        "{heard:?}"
    );

    let history = portal
        .evidence_history(&system, &plants[0].id, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|e| e.via == "nats"));
    assert_eq!(history.iter().filter(|e| e.accepted).count(), 1);
    let keyless = portal.plant(&system, &plants[1].id).await.unwrap();
    assert_eq!(keyless.public_key, None, "a NATS bundle must not pin a key");
    assert_eq!(keyless.ledger_entries, 0);
    portal.close().await;
}

/// Plants publishing their first bundles at once, and the portal's consumer starting meanwhile,
/// all create the stream if it is not there: none of them may fail because another got there
/// first (seen in CI as "subjects overlap with an existing stream").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_creating_the_stream_at_once_all_succeed() {
    let Ok(nats_url) = std::env::var("AIFACTORY_TEST_NATS_URL") else {
        println!("skipped: needs AIFACTORY_TEST_NATS_URL");
        return;
    };
    let mut failures = Vec::new();
    for round in 0..10 {
        let id = format!(
            "{}_{round}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let channel = EvidenceChannel {
            url: nats_url.clone(),
            stream: format!("AIFACTORY_EVIDENCE_RACE_{id}"),
            prefix: format!("aifactory_race_{id}.evidence"),
        };
        let publishers: Vec<_> = (0..8)
            .map(|p| {
                let channel = channel.clone();
                tokio::spawn(async move {
                    nats::publish_bundle(
                        &channel,
                        &format!("P{p}"),
                        format!("{{\"p\":{p}}}").into_bytes(),
                    )
                    .await
                })
            })
            .collect();
        for p in publishers {
            if let Err(e) = p.await.expect("publisher task") {
                failures.push(e.to_string());
            }
        }
        let _ = nats::delete_stream(&channel).await;
    }
    assert!(failures.is_empty(), "{failures:?}");
}
