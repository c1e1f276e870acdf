//! Structured logs on standard error: what a long-running command (`serve`, `ingest`,
//! `portal serve`) did and when, for a terminal or for the journal. Human lines by default, one
//! JSON object per line with `--log-format json` (for Loki, Elasticsearch or `journalctl -o
//! cat | jq`). Results and the start-up lines a person reads (address, password) stay on
//! standard output; logs never carry a password or a token.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// `2026-12-07T08:00:00.123Z  INFO request{id=… method=GET path=/health}: finished …`
    Human,
    /// One JSON object per line: timestamp, level, target, fields and spans.
    Json,
}

/// The logging flags, global to every command.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LogArgs {
    /// Least severe level logged by aifactory: error, warn, info, debug or trace (libraries log
    /// warnings and errors only); or per-module directives such as `info,rumqttd=info`.
    #[arg(long, env = "AIFACTORY_LOG", default_value = "info", global = true)]
    pub log_level: String,
    /// Log line format on standard error.
    #[arg(long, env = "AIFACTORY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The filter `--log-level` names. A bare word must be a level: tracing would read `loud` as a
/// module name and quietly log nothing of ours.
fn filter(spec: &str) -> anyhow::Result<EnvFilter> {
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let level = part.rsplit_once('=').map_or(part, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            anyhow::bail!(
                "--log-level {spec:?}: {level:?} is not a level (use one of {}, or module=level)",
                LEVELS.join(", ")
            );
        }
    }
    // A bare level is for aifactory's own lines (and the request log); libraries say only what
    // goes wrong, and the embedded broker (rumqttd) nothing: it reports every connection,
    // including our own readiness probe as an error. Directives are taken as written.
    let trimmed = spec.trim().to_ascii_lowercase();
    let directives = if LEVELS.contains(&trimmed.as_str())
        && !matches!(trimmed.as_str(), "off" | "error" | "warn")
    {
        format!("warn,rumqttd=off,aifactory={trimmed},tower_http={trimmed}")
    } else {
        spec.to_owned()
    };
    EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| anyhow::anyhow!("--log-level {spec:?}: {e}"))
}

/// Installs the process's subscriber. A bad `--log-level` is an error naming it.
pub(crate) fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = filter(&args.log_level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match args.log_format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // A second init (tests calling `main` twice in one process) keeps the first subscriber.
    drop(installed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn levels_and_module_directives_are_taken_and_anything_else_is_named() {
        for good in [
            "info",
            "DEBUG",
            "warn,aifactory_server=debug",
            "off",
            "error,sqlx=warn",
        ] {
            assert!(filter(good).is_ok(), "{good}");
        }
        for (bad, named) in [("loud", "loud"), ("info,sqlx=noisy", "noisy"), ("=", "")] {
            let why = filter(bad).expect_err(bad).to_string();
            assert!(
                why.contains(&format!("{named:?}")) && why.contains("not a level"),
                "{why}"
            );
        }
    }
}
