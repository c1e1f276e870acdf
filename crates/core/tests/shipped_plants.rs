//! Every plant file shipped in `plants/` must load, and the reference plant must stay rich
//! enough to exercise the twin: parallel non-identical machines, multi-level BOMs, many products.

use aifactory_core::Plant;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn plants_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plants")
}

fn shipped_files() -> Vec<PathBuf> {
    let dir = plants_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Plant {
    match Plant::load(path) {
        Ok(plant) => plant,
        Err(err) => panic!("{} does not load:\n{err}", path.display()),
    }
}

#[test]
fn every_shipped_plant_loads() {
    let files = shipped_files();
    let mut failures = Vec::new();
    for file in &files {
        if let Err(err) = Plant::load(file) {
            eprintln!("{err}");
            failures.push(file.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "plant files that do not load: {failures:?}"
    );
    assert!(
        files.len() >= 3,
        "expected at least 3 plant files in {}, found {files:?}",
        plants_dir().display()
    );
}

#[test]
fn reference_plant_is_rich_enough() {
    let plant = load(&plants_dir().join("hangzhou-auto-parts.toml"));

    let machines = plant.machines.len();
    assert!(
        (12..=16).contains(&machines),
        "reference plant should have 12-16 machines, has {machines}"
    );
    assert!(
        plant.work_centres.len() >= 5,
        "reference plant should have at least 5 work centres, has {}",
        plant.work_centres.len()
    );
    assert!(
        plant.products.len() >= 8,
        "reference plant should have at least 8 products, has {}",
        plant.products.len()
    );

    // A work centre whose parallel machines are not identical: different types, or different
    // minutes per unit for the same routing step.
    let mut types_by_centre: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for m in &plant.machines {
        types_by_centre
            .entry(m.work_centre.as_str())
            .or_default()
            .insert(m.machine_type.as_str());
    }
    let mixed_types = types_by_centre.values().any(|types| types.len() >= 2);
    let mixed_times = plant.products.iter().any(|p| {
        p.routing.iter().any(|step| {
            let mut times = step.times.values();
            times
                .next()
                .is_some_and(|first| times.any(|t| (t - first).abs() > 1e-9))
        })
    });
    assert!(
        mixed_types || mixed_times,
        "reference plant needs a work centre with non-identical parallel machines"
    );

    // A multi-level bill of materials: some product is a component of another.
    let product_ids: BTreeSet<&str> = plant.products.iter().map(|p| p.id.as_str()).collect();
    let nested = plant.products.iter().any(|p| {
        p.bom
            .iter()
            .any(|line| product_ids.contains(line.item.as_str()))
    });
    assert!(
        nested,
        "reference plant needs a BOM line that references another product"
    );
}
