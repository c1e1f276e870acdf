//! The web UI in a real browser: tests/browser/run.mjs (playwright-core driving Debian's
//! headless Chromium) against this binary — log in, every page in English and Simplified
//! Chinese, a what-if approved — with screenshots left in artifacts/browser/. Runs when
//! AIFACTORY_TEST_BROWSER is set (`.ci/run` sets it after installing Chromium and the test's
//! npm packages); otherwise it says it skipped.

use std::process::Command;

#[test]
fn the_web_ui_works_in_headless_chromium() {
    if std::env::var_os("AIFACTORY_TEST_BROWSER").is_none() {
        eprintln!(
            "skipped: set AIFACTORY_TEST_BROWSER=1 (needs Chromium and `npm ci` in tests/browser)"
        );
        return;
    }
    let output = Command::new("node")
        .arg("run.mjs")
        .current_dir(crate::repo_file("tests/browser"))
        .env("AIFACTORY_BIN", env!("CARGO_BIN_EXE_aifactory"))
        .env(
            "AIFACTORY_SCREENSHOTS",
            crate::repo_file("artifacts/browser"),
        )
        .output()
        .expect("node runs (install Node.js)");
    let text = crate::text(&output.stdout) + &crate::text(&output.stderr);
    assert!(output.status.success(), "browser tests failed:\n{text}");
    // Every page in both languages left a screenshot.
    let shots = std::fs::read_dir(crate::repo_file("artifacts/browser"))
        .expect("screenshots folder")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    assert!(shots >= 14, "{shots} screenshots:\n{text}");
}

/// The programme portal's UI (tests/browser/portal.mjs) against the real PostgreSQL named by
/// AIFACTORY_TEST_PG_URL, in a schema of its own that is dropped afterwards.
#[test]
fn the_portal_ui_works_in_headless_chromium() {
    if std::env::var_os("AIFACTORY_TEST_BROWSER").is_none() {
        eprintln!(
            "skipped: set AIFACTORY_TEST_BROWSER=1 (needs Chromium and `npm ci` in tests/browser)"
        );
        return;
    }
    let Ok(admin_url) = std::env::var("AIFACTORY_TEST_PG_URL") else {
        eprintln!("skipped: set AIFACTORY_TEST_PG_URL to a PostgreSQL database");
        return;
    };
    let schema = format!("aifactory_portal_ui_{}", std::process::id());
    let admin = |sql: String| crate::portal::admin(&admin_url, sql);
    admin(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ));
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let output = Command::new("node")
        .arg("portal.mjs")
        .current_dir(crate::repo_file("tests/browser"))
        .env("AIFACTORY_BIN", env!("CARGO_BIN_EXE_aifactory"))
        .env(
            "AIFACTORY_PORTAL_DATABASE",
            format!("{admin_url}{separator}options[search_path]={schema}"),
        )
        .env(
            "AIFACTORY_SCREENSHOTS",
            crate::repo_file("artifacts/browser"),
        )
        .output()
        .expect("node runs (install Node.js)");
    admin(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    let text = crate::text(&output.stdout) + &crate::text(&output.stderr);
    assert!(
        output.status.success(),
        "portal browser tests failed:\n{text}"
    );
    assert!(text.contains("portal browser checks passed"), "{text}");
}
