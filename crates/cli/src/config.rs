//! The configuration file. `config/default.toml` is its documentation; a test keeps the two equal.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data: DataConfig,
    pub demo: DemoConfig,
    pub store: StoreConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    pub plant: String,
    pub days: f64,
    pub seed: u64,
    pub policy: String,
    pub maintenance: String,
    pub purchasing: String,
    pub telemetry_period_s: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub batch_rows: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dir: PathBuf::from("aifactory-data"),
        }
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            plant: String::new(),
            days: 30.0,
            seed: 42,
            policy: "edd".to_owned(),
            maintenance: "pm".to_owned(),
            purchasing: "reorder".to_owned(),
            telemetry_period_s: 300.0,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { batch_rows: 5000 }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)?;
        Ok(toml::from_str(&text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
        let from_file = Config::load(&path).expect("config/default.toml parses");
        assert_eq!(from_file, Config::default());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Config>("[demo]\ndayz = 3\n").expect_err("typo must fail");
        assert!(err.to_string().contains("dayz"), "{err}");
    }
}
