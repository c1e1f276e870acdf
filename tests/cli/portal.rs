//! `aifactory portal` end to end against the real PostgreSQL of `AIFACTORY_TEST_PG_URL` (a
//! schema of its own, dropped afterwards): a plant's own `assess --bundle` goes to the portal
//! with `portal submit`, a tampered copy is refused with the reason, plants come from a registry
//! CSV, and bad invocations say what is wrong. Without the variable it says it skipped.

use crate::{aifactory, text};

/// Runs `sql` on the PostgreSQL at `url` as its administrator (test schemas come and go).
pub(crate) fn admin(url: &str, sql: String) {
    let url = url.to_owned();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("PostgreSQL");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("admin SQL");
        });
}

#[test]
fn a_plants_own_bundle_reaches_the_portal_and_a_tampered_one_is_refused() {
    let Ok(pg) = std::env::var("AIFACTORY_TEST_PG_URL") else {
        eprintln!("skipped: set AIFACTORY_TEST_PG_URL to a PostgreSQL database");
        return;
    };
    let schema = format!("aifactory_portal_cli_{}", std::process::id());
    admin(
        &pg,
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    );
    let separator = if pg.contains('?') { '&' } else { '?' };
    let db = format!("{pg}{separator}options[search_path]={schema}");
    let result = std::panic::catch_unwind(|| run(&db));
    admin(&pg, format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn run(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    // The plant's side: its store, its assessment, its signed bundle.
    let store = dir.path().join("plant.db");
    crate::assess::plant_store(&store);
    let bundle = dir.path().join("evidence.json");
    let out = aifactory(&[
        "assess",
        "--db",
        &store.display().to_string(),
        "--plant-id",
        "PLANT-7",
        "--bundle",
        &bundle.display().to_string(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The programme's side: a registry CSV (one bad row first: nothing registered).
    let registry = dir.path().join("registry.csv");
    std::fs::write(&registry, "id,name,industry,district,revenue_myuan\nPLANT-7,Shaft works,auto-parts,Xiaoshan,120\nPLANT 8,Bad id,food,Yuhang,3\n").unwrap();
    let out = aifactory(&[
        "portal",
        "plant",
        "import",
        "--database",
        db,
        &registry.display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("registry.csv:3:") && err.contains("nothing was registered"),
        "{err}"
    );
    std::fs::write(&registry, "id,name,industry,district,revenue_myuan\nPLANT-7,Shaft works,auto-parts,Xiaoshan,120\nPLANT-8,Small works,food,Yuhang,3\n").unwrap();
    let out = aifactory(&[
        "portal",
        "plant",
        "import",
        "--database",
        db,
        &registry.display().to_string(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["registered"], 2, "{v}");
    let out = aifactory(&[
        "portal",
        "plant",
        "add",
        "PLANT-8",
        "--name",
        "x",
        "--industry",
        "food",
        "--district",
        "Yuhang",
        "--revenue-myuan",
        "3",
        "--database",
        db,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already registered"),
        "{}",
        text(&out.stderr)
    );

    // The genuine bundle: accepted at the tier its ledger earns.
    let bundle_arg = bundle.display().to_string();
    let out = aifactory(&[
        "portal",
        "submit",
        "--plant",
        "PLANT-7",
        &bundle_arg,
        "--database",
        db,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["accepted"], true, "{v}");
    assert_eq!(v["tier"], 1, "{v}");
    // A copy claiming more streaming machines: refused with the reason, exit status 2.
    let mut tampered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    tampered["coverage"]["machines_streaming"] = serde_json::json!(40);
    let forged = dir.path().join("forged.json");
    std::fs::write(&forged, tampered.to_string()).unwrap();
    let out = aifactory(&[
        "portal",
        "submit",
        "--plant",
        "PLANT-7",
        &forged.display().to_string(),
        "--database",
        db,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refused: signature does not match"),
        "{}",
        text(&out.stderr)
    );
    // Someone else's bundle for this plant's id.
    let out = aifactory(&[
        "portal",
        "submit",
        "--plant",
        "PLANT-8",
        &bundle_arg,
        "--database",
        db,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("PLANT-7"),
        "{}",
        text(&out.stderr)
    );

    // Users: a token once; a wrong role is named.
    let out = aifactory(&[
        "portal",
        "user",
        "add",
        "alice",
        "--role",
        "officer",
        "--database",
        db,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).trim().starts_with("afp_"));
    let out = aifactory(&[
        "portal",
        "user",
        "add",
        "bob",
        "--role",
        "mayor",
        "--database",
        db,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("one of officer, assessor, plant, provider"),
        "{}",
        text(&out.stderr)
    );
    // An unreachable database is a clear error, not a panic.
    let out = aifactory(&[
        "portal",
        "user",
        "add",
        "carol",
        "--role",
        "officer",
        "--database",
        "postgres://nobody@127.0.0.1:1/none",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("opening the portal database"),
        "{}",
        text(&out.stderr)
    );
}

/// Issue 20: API tokens expire, and an officer lists, issues and revokes them from the CLI.
#[test]
fn tokens_are_issued_listed_and_revoked_from_the_cli() {
    let Ok(pg) = std::env::var("AIFACTORY_TEST_PG_URL") else {
        eprintln!("skipped: set AIFACTORY_TEST_PG_URL to a PostgreSQL database");
        return;
    };
    let schema = format!("aifactory_portal_cli_tokens_{}", std::process::id());
    admin(
        &pg,
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    );
    let separator = if pg.contains('?') { '&' } else { '?' };
    let db = format!("{pg}{separator}options[search_path]={schema}");
    let result = std::panic::catch_unwind(|| tokens(&db));
    admin(&pg, format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn tokens(db: &str) {
    let json = |out: &std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
    };
    let out = aifactory(&[
        "portal",
        "user",
        "add",
        "alice",
        "--role",
        "officer",
        "--database",
        db,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = text(&out.stdout).trim().to_owned();
    assert!(
        text(&out.stderr).contains("expires"),
        "{}",
        text(&out.stderr)
    );
    // A second token for alice, valid for 30 days.
    let issued = json(&aifactory(&[
        "portal",
        "token",
        "issue",
        "alice",
        "--days",
        "30",
        "--database",
        db,
        "--json",
    ]));
    let id = issued["id"].as_str().unwrap().to_owned();
    let second = issued["token"].as_str().unwrap().to_owned();
    assert!(second.starts_with("afp_") && second != first, "{issued}");
    let created = issued["created_at_ms"].as_i64().unwrap();
    assert_eq!(
        issued["expires_at_ms"].as_i64().unwrap(),
        created + 30 * 86_400_000
    );
    // The list names both, never a token or its hash.
    let list = json(&aifactory(&[
        "portal",
        "token",
        "list",
        "--database",
        db,
        "--json",
    ]));
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let listed = list.to_string();
    assert!(
        !listed.contains(&first) && !listed.contains(&second) && !listed.contains("sha256"),
        "{listed}"
    );
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "valid"),
        "{list}"
    );
    // Revoked once; a second time says so.
    let out = aifactory(&["portal", "token", "revoke", &id, "--database", db]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("revoked"),
        "{}",
        text(&out.stdout)
    );
    let out = aifactory(&["portal", "token", "revoke", &id, "--database", db]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already revoked"),
        "{}",
        text(&out.stderr)
    );
    let list = json(&aifactory(&[
        "portal",
        "token",
        "list",
        "--database",
        db,
        "--json",
    ]));
    let revoked = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == serde_json::json!(id))
        .unwrap();
    assert_eq!(revoked["state"], "revoked", "{list}");
    // The plain list is a table with the id and the state.
    let out = aifactory(&["portal", "token", "list", "--database", db]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&id) && text(&out.stdout).contains("revoked"),
        "{}",
        text(&out.stdout)
    );
    // Bad lifetimes and unknown users are named.
    let out = aifactory(&[
        "portal",
        "token",
        "issue",
        "alice",
        "--days",
        "0",
        "--database",
        db,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("expires_in_days"),
        "{}",
        text(&out.stderr)
    );
    let out = aifactory(&["portal", "token", "issue", "nobody", "--database", db]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("user `nobody` not found"),
        "{}",
        text(&out.stderr)
    );
    let out = aifactory(&["portal", "token", "revoke", "tok_nope", "--database", db]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
}
