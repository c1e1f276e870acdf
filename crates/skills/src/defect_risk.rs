//! Defect risk per job (the testing stage): how likely each unit of an operation is to be
//! scrapped, from the machine's wear (running hours since service) and the process settings it runs at, and where to spend
//! inspection effort because of it.
//!
//! ```text
//!  operation_started (params) ──┐
//!  running hours since service ─┴─► features ◄── operation_completed (good, scrapped): outcome
//!        per (product, step): binomial logistic regression, ridge, fitted by IRLS
//!        features 1, u, u² (u = running hours / 100), and per parameter x−½, (x−½)²
//!        (x scaled to its range)
//!                                   ▼
//!  risk per unit ─► inspect the job fully when risk ≥ the budget's threshold, else sample
//! ```
//!
//! The model is learnt from the plant's own operations: no hidden truth, only what the event
//! stream and the telemetry show. Quadratic terms let it find an optimum inside a parameter's
//! range and the rise of scrap with wear. Groups with too few operations or no scrap at all fall
//! back to their observed rate.
//!
//! Invariants: pure apart from the [`DefectRecorder`] observer; no clock; no panic on any input.

use aifactory_core::{
    Decision, EventKind, ExecutedBy, LifecycleStage, Plant, PlantEvent, Timestamp,
};
use nalgebra::{DMatrix, DVector};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

/// Model id written into decisions.
pub const MODEL_ID: &str = "defect-risk-logit";
/// Model version: the feature set and fitting settings.
pub const MODEL_VERSION: &str = "1/h2-p2-ridge1";

/// Operations a group needs before it gets its own regression.
const MIN_ROWS: usize = 30;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DefectRiskError {
    #[error("no operations to learn from")]
    NoData,
    #[error("row {row}: {reason}")]
    BadRow { row: usize, reason: &'static str },
}

/// One finished operation as the model sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OperationRow {
    pub at: Timestamp,
    pub machine: String,
    pub product: String,
    pub step: usize,
    /// Hours the machine has run since its last service or repair when the operation
    /// started: wear grows with running, and scrap with wear.
    pub run_h: f64,
    /// Each process parameter scaled to its range: 0 at `min`, 1 at `max`.
    pub params: Vec<f64>,
    pub processed: u32,
    pub scrapped: u32,
}

/// Running hours that scale the wear features to about one.
const RUN_SCALE_H: f64 = 100.0;

fn features(run_h: f64, params: &[f64]) -> Vec<f64> {
    let h = if run_h.is_finite() {
        (run_h / RUN_SCALE_H).clamp(0.0, 10.0)
    } else {
        0.0
    };
    let mut x = vec![1.0, h, h * h];
    for &p in params {
        let p = if p.is_finite() {
            p.clamp(-0.5, 1.5) - 0.5
        } else {
            0.0
        };
        x.push(p);
        x.push(p * p);
    }
    x
}

#[derive(Debug, Clone, PartialEq)]
enum GroupModel {
    Logit(Vec<f64>),
    Rate(f64),
}

/// Defect risk per (product, step), learnt from finished operations.
#[derive(Debug, Clone, PartialEq)]
pub struct DefectRiskModel {
    groups: BTreeMap<(String, usize), GroupModel>,
    /// Scrap rate over all operations, for groups never seen.
    overall: f64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Binomial logistic regression with a ridge on every coefficient but the intercept, by
/// iteratively reweighted least squares. `None` when the normal equations are singular.
fn fit_logit(x: &[Vec<f64>], n: &[f64], y: &[f64], ridge: f64) -> Option<Vec<f64>> {
    let k = x.first()?.len();
    let rows = x.len();
    let rate = (y.iter().sum::<f64>() / n.iter().sum::<f64>()).clamp(1e-6, 1.0 - 1e-6);
    let mut beta = vec![0.0; k];
    beta[0] = (rate / (1.0 - rate)).ln();
    for _ in 0..50 {
        let mut xtwx = DMatrix::<f64>::zeros(k, k);
        let mut xtwz = DVector::<f64>::zeros(k);
        for r in 0..rows {
            let eta: f64 = x[r].iter().zip(&beta).map(|(a, b)| a * b).sum();
            let mu = sigmoid(eta).clamp(1e-9, 1.0 - 1e-9);
            let w = n[r] * mu * (1.0 - mu);
            let z = eta + (y[r] - n[r] * mu) / w;
            for i in 0..k {
                xtwz[i] += x[r][i] * w * z;
                for j in 0..k {
                    xtwx[(i, j)] += x[r][i] * w * x[r][j];
                }
            }
        }
        for i in 1..k {
            xtwx[(i, i)] += ridge;
        }
        let next = xtwx.cholesky()?.solve(&xtwz);
        let step: f64 = next
            .iter()
            .zip(&beta)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        beta = next.iter().copied().collect();
        if !beta.iter().all(|b| b.is_finite()) {
            return None;
        }
        if step < 1e-8 {
            break;
        }
    }
    Some(beta)
}

impl DefectRiskModel {
    /// Learns from finished operations. Rows with nothing processed are skipped; rows that
    /// scrap more than they processed are refused.
    pub fn fit(rows: &[OperationRow]) -> Result<Self, DefectRiskError> {
        let mut groups: BTreeMap<(String, usize), Vec<&OperationRow>> = BTreeMap::new();
        let (mut processed, mut scrapped) = (0.0, 0.0);
        for (i, row) in rows.iter().enumerate() {
            if row.scrapped > row.processed {
                return Err(DefectRiskError::BadRow {
                    row: i,
                    reason: "more units scrapped than processed",
                });
            }
            if row.processed == 0 {
                continue;
            }
            processed += f64::from(row.processed);
            scrapped += f64::from(row.scrapped);
            groups
                .entry((row.product.clone(), row.step))
                .or_default()
                .push(row);
        }
        if processed == 0.0 {
            return Err(DefectRiskError::NoData);
        }
        let groups = groups
            .into_iter()
            .map(|(key, rows)| {
                let n: Vec<f64> = rows.iter().map(|r| f64::from(r.processed)).collect();
                let y: Vec<f64> = rows.iter().map(|r| f64::from(r.scrapped)).collect();
                let rate = y.iter().sum::<f64>() / n.iter().sum::<f64>();
                let width = rows.iter().map(|r| r.params.len()).min().unwrap_or(0);
                let x: Vec<Vec<f64>> = rows
                    .iter()
                    .map(|r| features(r.run_h, &r.params[..width]))
                    .collect();
                let model = if rows.len() >= MIN_ROWS && rate > 0.0 {
                    fit_logit(&x, &n, &y, 1.0).map_or(GroupModel::Rate(rate), GroupModel::Logit)
                } else {
                    GroupModel::Rate(rate)
                };
                (key, model)
            })
            .collect();
        Ok(DefectRiskModel {
            groups,
            overall: scrapped / processed,
        })
    }

    /// Predicted scrap probability per unit of an operation.
    pub fn risk(&self, product: &str, step: usize, run_h: f64, params: &[f64]) -> f64 {
        match self.groups.get(&(product.to_owned(), step)) {
            Some(GroupModel::Logit(beta)) => {
                let width = (beta.len() - 3) / 2;
                let mut p = params.to_vec();
                p.resize(width, 0.5);
                let x = features(run_h, &p);
                sigmoid(x.iter().zip(beta).map(|(a, b)| a * b).sum())
            }
            Some(GroupModel::Rate(rate)) => *rate,
            None => self.overall,
        }
    }

    /// The observed rate of each (product, step): the baseline the model must beat.
    pub fn rates(rows: &[OperationRow]) -> BTreeMap<(String, usize), f64> {
        let mut sums: BTreeMap<(String, usize), (f64, f64)> = BTreeMap::new();
        for r in rows {
            let s = sums.entry((r.product.clone(), r.step)).or_default();
            s.0 += f64::from(r.scrapped);
            s.1 += f64::from(r.processed);
        }
        sums.into_iter()
            .filter(|(_, (_, n))| *n > 0.0)
            .map(|(k, (y, n))| (k, y / n))
            .collect()
    }
}

/// Inspection effort for one job: all of it when its risk reaches `threshold`, else
/// `base_fraction` (the routine sampling rate).
pub fn inspection_fraction(risk: f64, threshold: f64, base_fraction: f64) -> f64 {
    if risk >= threshold {
        1.0
    } else {
        base_fraction.clamp(0.0, 1.0)
    }
}

/// The risk threshold that spends `budget` (a share of units) on full inspection of the
/// riskiest jobs among `jobs` (risk, units): a quantile weighted by units.
pub fn threshold_for_budget(jobs: &[(f64, u32)], budget: f64) -> f64 {
    let mut sorted: Vec<(f64, u32)> = jobs
        .iter()
        .copied()
        .filter(|(r, _)| r.is_finite())
        .collect();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total: f64 = sorted.iter().map(|j| f64::from(j.1)).sum();
    let mut spent = 0.0;
    for (risk, units) in &sorted {
        spent += f64::from(*units);
        if spent >= budget * total {
            return *risk;
        }
    }
    sorted.last().map_or(f64::INFINITY, |j| j.0)
}

/// Share of scrapped units found by fully inspecting the riskiest jobs until `budget` of all
/// units is inspected (ties in risk broken by order). Random inspection finds `budget`.
pub fn capture_at_budget(scored: &[(f64, &OperationRow)], budget: f64) -> f64 {
    let mut sorted: Vec<&(f64, &OperationRow)> = scored.iter().collect();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total: f64 = scored.iter().map(|(_, r)| f64::from(r.processed)).sum();
    let defects: f64 = scored.iter().map(|(_, r)| f64::from(r.scrapped)).sum();
    if defects == 0.0 {
        return 0.0;
    }
    let (mut spent, mut found) = (0.0, 0.0);
    for (_, r) in sorted {
        let units = f64::from(r.processed);
        if spent + units > budget * total {
            // Inspect part of the job: defects found in proportion.
            found += f64::from(r.scrapped) * ((budget * total - spent) / units).max(0.0);
            break;
        }
        spent += units;
        found += f64::from(r.scrapped);
    }
    found / defects
}

/// Binomial log loss per unit of predictions `p` against what happened.
pub fn log_loss(scored: &[(f64, &OperationRow)]) -> f64 {
    let (mut loss, mut units) = (0.0, 0.0);
    for (p, r) in scored {
        let p = p.clamp(1e-9, 1.0 - 1e-9);
        let (y, n) = (f64::from(r.scrapped), f64::from(r.processed));
        loss -= y * p.ln() + (n - y) * (1.0 - p).ln();
        units += n;
    }
    if units > 0.0 { loss / units } else { 0.0 }
}

/// The ledger record of one job's risk and the inspection it gets (stage Testing).
pub fn risk_decision(
    id: impl Into<String>,
    at: Timestamp,
    job: &str,
    row: &OperationRow,
    risk: f64,
    inspect_fraction: f64,
) -> Decision {
    Decision {
        id: id.into(),
        at,
        skill: "defect-risk".to_owned(),
        stage: LifecycleStage::Testing,
        inputs_ref: format!("{job}@{}", row.machine),
        model: MODEL_ID.to_owned(),
        model_version: MODEL_VERSION.to_owned(),
        output: json!({
            "job": job,
            "product": row.product,
            "step": row.step,
            "risk_per_unit": risk,
            "inspect_fraction": inspect_fraction,
        }),
        confidence: None,
        executed_by: ExecutedBy::None,
        outcome: None,
    }
}

/// Builds [`OperationRow`]s from a plant's event stream (the twin's or a real plant's, through
/// the same `Observer` interface): running hours per machine are summed from operation starts
/// and completions and reset by each service or repair.
#[derive(Debug, Clone)]
pub struct DefectRecorder {
    /// (product id, step) → each parameter's (min, max).
    bounds: HashMap<(String, usize), Vec<(f64, f64)>>,
    /// Machine → running hours since its last service or repair.
    run_h: HashMap<String, f64>,
    /// (machine, work order) → the row being filled.
    open: HashMap<(String, String), OperationRow>,
    pub rows: Vec<OperationRow>,
}

impl DefectRecorder {
    pub fn new(plant: &Plant) -> Self {
        let bounds = plant
            .products
            .iter()
            .flat_map(|p| {
                p.routing.iter().enumerate().map(|(s, step)| {
                    (
                        (p.id.clone(), s),
                        step.params.iter().map(|x| (x.min, x.max)).collect(),
                    )
                })
            })
            .collect();
        DefectRecorder {
            bounds,
            run_h: HashMap::new(),
            open: HashMap::new(),
            rows: Vec::new(),
        }
    }

    fn started(&mut self, event: &PlantEvent, machine: &str, order: &str) {
        let product = event.detail["product"].as_str().unwrap_or_default();
        let step = event.detail["step"].as_u64().unwrap_or(0) as usize;
        let values: Vec<f64> = event.detail["params"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default();
        let bounds = self
            .bounds
            .get(&(product.to_owned(), step))
            .map_or(&[][..], Vec::as_slice);
        let params = values
            .iter()
            .zip(bounds)
            .map(|(v, (lo, hi))| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 })
            .collect();
        let run_h = self.run_h.get(machine).copied().unwrap_or(0.0);
        self.open.insert(
            (machine.to_owned(), order.to_owned()),
            OperationRow {
                at: event.at,
                machine: machine.to_owned(),
                product: product.to_owned(),
                step,
                run_h,
                params,
                processed: 0,
                scrapped: 0,
            },
        );
    }
}

impl aifactory_plant::Observer for DefectRecorder {
    fn wants_events(&self) -> bool {
        true
    }
    fn event(&mut self, event: PlantEvent) {
        let (Some(machine), order) = (event.machine.clone(), event.order.clone()) else {
            return;
        };
        match event.kind {
            EventKind::OperationStarted => {
                if let Some(order) = order {
                    self.started(&event, &machine, &order);
                }
            }
            EventKind::OperationCompleted => {
                let Some(order) = order else { return };
                if let Some(mut row) = self.open.remove(&(machine.clone(), order)) {
                    let hours = (event.at.0 - row.at.0).max(0) as f64 / 3_600_000.0;
                    *self.run_h.entry(machine).or_default() += hours;
                    let good = event.detail["good"].as_u64().unwrap_or(0);
                    let scrapped = event.detail["scrapped"].as_u64().unwrap_or(0);
                    row.processed = u32::try_from(good + scrapped).unwrap_or(u32::MAX);
                    row.scrapped = u32::try_from(scrapped).unwrap_or(u32::MAX);
                    self.rows.push(row);
                }
            }
            EventKind::MaintenanceCompleted | EventKind::RepairCompleted => {
                self.run_h.insert(machine, 0.0);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Operations whose scrap rises with running hours and with distance from 0.7 of the
    /// parameter's range.
    fn synthetic(n: usize, seed: u64) -> Vec<OperationRow> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let run_h: f64 = rng.random_range(0.0..300.0);
                let x: f64 = rng.random_range(0.0..1.0);
                let p = 0.005 + 0.02 * (run_h / 300.0).powi(2) + 0.1 * (x - 0.7).powi(2);
                let processed = 100;
                let scrapped = (0..processed).filter(|_| rng.random_bool(p)).count() as u32;
                OperationRow {
                    at: Timestamp(i as i64),
                    machine: "M1".into(),
                    product: "P".into(),
                    step: 0,
                    run_h,
                    params: vec![x],
                    processed,
                    scrapped,
                }
            })
            .collect()
    }

    #[test]
    fn learns_wear_and_the_settings_optimum_and_ranks_jobs_better_than_the_rate() {
        let model = DefectRiskModel::fit(&synthetic(3000, 1)).unwrap();
        let at = |h: f64, x: f64| model.risk("P", 0, h, &[x]);
        assert!(at(0.0, 0.7) < at(0.0, 0.0) && at(0.0, 0.7) < at(0.0, 1.0));
        assert!(at(280.0, 0.7) > at(20.0, 0.7));
        // Logistic quadratics only approximate the true curve: near, not at, 0.5 %.
        assert!(at(0.0, 0.7) < 0.012, "{}", at(0.0, 0.7));
        // An unseen group gets the overall rate.
        let overall = model.risk("Q", 3, 0.0, &[]);
        assert!(overall > 0.005 && overall < 0.05, "{overall}");
        let test = synthetic(2000, 2);
        let rates = DefectRiskModel::rates(&synthetic(3000, 1));
        let by_skill: Vec<(f64, &OperationRow)> = test
            .iter()
            .map(|r| (model.risk(&r.product, r.step, r.run_h, &r.params), r))
            .collect();
        let by_rate: Vec<(f64, &OperationRow)> =
            test.iter().map(|r| (rates[&("P".into(), 0)], r)).collect();
        let (skill, flat) = (
            capture_at_budget(&by_skill, 0.2),
            capture_at_budget(&by_rate, 0.2),
        );
        assert!(skill > flat + 0.15, "{skill} vs {flat}");
        assert!(
            (flat - 0.2).abs() < 0.05,
            "equal risks find about the budget: {flat}"
        );
        assert!(log_loss(&by_skill) < log_loss(&by_rate));
    }

    #[test]
    fn bad_rows_and_empty_data_are_refused() {
        let mut rows = synthetic(3, 3);
        rows[2].scrapped = rows[2].processed + 1;
        assert_eq!(
            DefectRiskModel::fit(&rows).unwrap_err(),
            DefectRiskError::BadRow {
                row: 2,
                reason: "more units scrapped than processed"
            }
        );
        assert_eq!(
            DefectRiskModel::fit(&[]).unwrap_err(),
            DefectRiskError::NoData
        );
        // Non-finite features do not poison a fitted model.
        let model = DefectRiskModel::fit(&synthetic(500, 4)).unwrap();
        let r = model.risk("P", 0, f64::NAN, &[f64::INFINITY]);
        assert!(r.is_finite() && (0.0..=1.0).contains(&r), "{r}");
    }

    #[test]
    fn inspection_follows_the_budget_threshold() {
        let jobs = [(0.05, 100), (0.01, 100), (0.03, 100), (0.02, 200)];
        // 20 % of 500 units: the riskiest job alone.
        let t = threshold_for_budget(&jobs, 0.2);
        assert_eq!(t, 0.05);
        assert_eq!(inspection_fraction(0.05, t, 0.1), 1.0);
        assert_eq!(inspection_fraction(0.03, t, 0.1), 0.1);
        assert_eq!(threshold_for_budget(&jobs, 0.4), 0.03);
        assert_eq!(threshold_for_budget(&[], 0.2), f64::INFINITY);
        let rows = synthetic(1, 5);
        let d = risk_decision("D-1", Timestamp(0), "WO-000001", &rows[0], 0.04, 1.0);
        assert_eq!(d.stage, LifecycleStage::Testing);
        assert_eq!(d.output["inspect_fraction"], 1.0);
    }
}
