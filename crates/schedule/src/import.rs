//! The SME path into the solver: machines, routings and orders imported from CSV exports
//! (`aifactory_core::import`) become a scheduling [`Problem`].

use crate::problem::{Alternative, Job, Operation, Problem};
use aifactory_core::Timestamp;
use aifactory_core::import::Imported;

/// Minutes since `start`.
fn minutes(t: Timestamp, start: Timestamp) -> i64 {
    (t.0 - start.0).div_euclid(60_000)
}

/// The scheduling instance: one job per order, one operation per routing step, one alternative
/// per eligible machine lasting set-up + minutes per unit × quantity (whole minutes, rounded
/// up); times in minutes from the day the earliest order is released or due.
pub fn from_import(imported: &Imported) -> (Problem, Timestamp) {
    let earliest = imported
        .orders
        .iter()
        .map(|o| o.release.unwrap_or(o.due).min(o.due))
        .min()
        .unwrap_or(Timestamp(0));
    let start = Timestamp(earliest.0.div_euclid(86_400_000) * 86_400_000);
    let index: std::collections::HashMap<&str, usize> = imported
        .machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let jobs = imported
        .orders
        .iter()
        .map(|o| Job {
            release: o.release.map_or(0, |r| minutes(r, start).max(0)),
            due: Some(minutes(o.due, start)),
            weight: o.weight,
            family: None,
            operations: imported.routings[&o.product]
                .iter()
                .map(|step| {
                    let mut alternatives: Vec<Alternative> = Vec::new();
                    for row in step {
                        let duration = (row.setup_minutes
                            + row.minutes_per_unit * f64::from(o.quantity))
                        .ceil()
                        .max(1.0) as i64;
                        for m in &row.machines {
                            if let Some(&machine) = index.get(m.as_str())
                                && !alternatives.iter().any(|a| a.machine == machine)
                            {
                                alternatives.push(Alternative { machine, duration });
                            }
                        }
                    }
                    Operation {
                        alternatives,
                        frozen: None,
                    }
                })
                .collect(),
        })
        .collect();
    (
        Problem {
            name: "imported".to_owned(),
            machines: imported.machines.len(),
            jobs,
            downtime: Vec::new(),
            setup: None,
        },
        start,
    )
}
