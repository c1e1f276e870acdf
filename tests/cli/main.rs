//! End-to-end tests of the `aifactory` binary: one integration binary, one module per behaviour.

mod agent;
mod assess;
mod backup;
mod bench_ingest;
mod bench_paced;
mod browser;
mod demo;
mod eval;
mod eval_anomaly;
mod help;
mod import;
mod ingest;
mod ladder_wire;
mod opcua;
mod plant_check;
mod portal;
mod schedule;
mod serve;
mod sim_json;
mod sim_mqtt;

use std::path::PathBuf;
use std::process::{Command, Output};

pub(crate) fn aifactory(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aifactory"))
        .args(args)
        .env_remove("AIFACTORY_CONFIG")
        .env_remove("AIFACTORY_DB")
        .env_remove("AIFACTORY_SEED")
        .output()
        .expect("the aifactory binary runs")
}

pub(crate) fn repo_file(relative: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(relative)
        .display()
        .to_string()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
