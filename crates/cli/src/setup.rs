//! What every command sets up the same way: the plant it runs (a file, or the reference plant
//! built into the binary), the range of `--days`, and the async runtime the I/O commands run on.

use aifactory_core::Plant;
use anyhow::{Context, bail};
use std::path::Path;

/// The reference plant, built into the binary so `aifactory demo` works from any folder.
pub const REFERENCE_PLANT: &str = include_str!("../../../plants/hangzhou-auto-parts.toml");

/// The given plant file, or the built-in reference plant.
pub(crate) fn plant_or_reference(file: Option<&Path>) -> anyhow::Result<Plant> {
    Ok(match file {
        Some(path) => Plant::load(path)?,
        None => Plant::parse(
            REFERENCE_PLANT,
            Path::new("plants/hangzhou-auto-parts.toml"),
        )
        .context("the built-in reference plant is invalid")?,
    })
}

pub(crate) fn check_days(days: f64) -> anyhow::Result<()> {
    if !days.is_finite() || days <= 0.0 || days > 3660.0 {
        bail!("--days must be between 0 and 3660, got {days}");
    }
    Ok(())
}

/// The async runtime the I/O commands run on: two workers, as the machines we target have few
/// cores and the work is I/O and one SQLite writer.
/// A store's location fit to print or log: a PostgreSQL URL's password is replaced by `***`.
pub(crate) fn shown_location(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => location.to_owned(),
        },
        None => location.to_owned(),
    }
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) at a terminal, or SIGTERM from
/// systemd, Docker or `kill`, so a service stops as cleanly as an interactive run.
pub(crate) async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stop requested; shutting down");
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[cfg(test)]
mod tests {
    use super::shown_location;

    #[test]
    fn a_store_url_is_shown_without_its_password() {
        assert_eq!(
            shown_location("postgres://plant:s3cr:et@db.local:5432/aifactory"),
            "postgres://plant:***@db.local:5432/aifactory"
        );
        assert_eq!(
            shown_location("postgres://plant@db.local/aifactory"),
            "postgres://plant@db.local/aifactory"
        );
        assert_eq!(
            shown_location("/var/lib/aifactory/serve.sqlite"),
            "/var/lib/aifactory/serve.sqlite"
        );
        assert_eq!(
            shown_location("postgres://h/db?x=a@b"),
            "postgres://h/db?x=a@b"
        );
    }
}
