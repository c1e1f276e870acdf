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
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
