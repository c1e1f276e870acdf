//! Quality risk driving set-points (the quality-to-process link): trial batches at the default
//! settings estimate each routing step's scrap risk (testing stage); steps whose risk is worth
//! a trial budget get their settings tuned by Bayesian optimisation (design stage), and each
//! settings decision cites the risk decision that called for it. A tuned setting is kept only
//! if confirmation trials show it beats the default — otherwise the step stays at its default.

use aifactory_core::{Decision, DecisionLog, ExecutedBy, LifecycleStage, Timestamp};
use aifactory_plant::{MasterData, PlantTime};
use aifactory_skills::log::SkillLog;
use aifactory_skills::quality::{Settings, StepToTune, learn_settings};

use crate::CoordinatorError;
use crate::closed_loop::{ClosedLoop, guard_change};

/// A trial batch on the line: (product, step, settings) → scrap share, `None` if the step has
/// no such parameters. The caller runs it (on the line, or on the twin); the coordinator never
/// sees how scrap arises.
pub type TrialFn<'a> = &'a mut TrialLine<'a>;

/// The trial line itself, behind [`TrialFn`].
pub type TrialLine<'a> = dyn FnMut(usize, usize, &[f64]) -> Option<f64> + 'a;

/// Trials at the default settings per step, to estimate its risk.
const RISK_TRIALS: usize = 3;
/// Bayesian-optimisation trials per tuned step.
const TUNING_TRIALS: usize = 15;
/// Trials confirming a tuned setting against the default.
const CONFIRM_TRIALS: usize = 3;
/// Below this scrap share a step is not worth a trial budget.
const RISK_WORTH_TUNING: f64 = 0.001;

/// What the quality link decided, for reports and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityPlan {
    pub settings: Settings,
    /// (product, step, risk at defaults, tuned, kept).
    pub steps: Vec<(usize, usize, f64, bool, bool)>,
}

fn mean_trials(
    trial: &mut TrialLine<'_>,
    product: usize,
    step: usize,
    values: &[f64],
    n: usize,
) -> Option<f64> {
    let mut sum = 0.0;
    for _ in 0..n {
        sum += trial(product, step, values)?;
    }
    Some(sum / n.max(1) as f64)
}

/// Runs the link: risk per step, then tuning where the risk calls for it. With `gate_by_risk`
/// false (the link cut) every step with parameters is tuned and no settings decision cites a
/// risk decision.
pub(crate) fn plan_quality(
    master: &MasterData,
    trial: TrialFn<'_>,
    gate_by_risk: bool,
    seed: u64,
    log: Option<(&DecisionLog, Timestamp)>,
    closed_loop: Option<&ClosedLoop>,
) -> Result<QualityPlan, CoordinatorError> {
    let plant = master.plant();
    let mut risk_log = log.map(|(l, start)| SkillLog::new(l.clone(), start, "DR"));
    let mut settings_log = log.map(|(l, start)| SkillLog::new(l.clone(), start, "PS"));
    let mut plan = QualityPlan {
        settings: Settings::new(),
        steps: Vec::new(),
    };
    for (p, product) in plant.products.iter().enumerate() {
        for (s, step) in product.routing.iter().enumerate() {
            if step.params.is_empty() {
                continue;
            }
            let defaults: Vec<f64> = step.params.iter().map(|x| x.default).collect();
            let risk = if gate_by_risk {
                mean_trials(trial, p, s, &defaults, RISK_TRIALS)
            } else {
                None
            };
            let tune = risk.is_none_or(|r| r >= RISK_WORTH_TUNING);
            let risk_decision = match (risk, &mut risk_log) {
                (Some(r), Some(log)) => Some(log.record(PlantTime(0), |id, at| Decision {
                    id,
                    at,
                    skill: "defect-risk".to_owned(),
                    stage: LifecycleStage::Testing,
                    inputs_ref: format!("trials:{}/{}x{RISK_TRIALS}", product.id, s + 1),
                    model: "trial-scrap-rate".to_owned(),
                    model_version: "1/mean-of-trials".to_owned(),
                    output: serde_json::json!({
                        "product": product.id,
                        "step": s + 1,
                        "scrap_risk": r,
                        "tune_settings": tune,
                    }),
                    confidence: None,
                    executed_by: ExecutedBy::Auto,
                    outcome: None,
                })),
                _ => None,
            };
            if !tune {
                plan.steps.push((p, s, risk.unwrap_or(0.0), false, false));
                if let Some(closed) = closed_loop {
                    closed.register_step((p, s), risk_decision, None, risk.unwrap_or(0.0), None);
                }
                continue;
            }
            let to_tune = StepToTune {
                product: p,
                step: s,
                bounds: step.params.iter().map(|x| (x.min, x.max)).collect(),
            };
            let mut failed = None;
            let learnt = learn_settings(
                std::slice::from_ref(&to_tune),
                TUNING_TRIALS,
                seed.wrapping_add((p * 101 + s) as u64),
                |t, x| match trial(t.product, t.step, x) {
                    Some(v) => v,
                    None => {
                        failed = Some((t.product, t.step));
                        1.0
                    }
                },
            )
            .map_err(|e| CoordinatorError::Quality(e.to_string()))?;
            if let Some((product, step)) = failed {
                return Err(CoordinatorError::Trial { product, step });
            }
            let Some(values) = learnt.get(&(p, s)).cloned() else {
                continue;
            };
            // A guard before production: keep the tuned values only if they beat the defaults.
            let tuned = mean_trials(trial, p, s, &values, CONFIRM_TRIALS).ok_or(
                CoordinatorError::Trial {
                    product: p,
                    step: s,
                },
            )?;
            let base = match risk {
                Some(r) => r,
                None => mean_trials(trial, p, s, &defaults, CONFIRM_TRIALS).ok_or(
                    CoordinatorError::Trial {
                        product: p,
                        step: s,
                    },
                )?,
            };
            let mut keep = tuned < base;
            // In a closed loop the change passes the guard: bounds, and approval for large moves.
            let mut executed_by = ExecutedBy::Auto;
            let mut guard_note = serde_json::Value::Null;
            let mut change = None;
            if let (Some(_), true) = (closed_loop, keep) {
                let specs: Vec<(String, f64, f64)> = step
                    .params
                    .iter()
                    .map(|x| (x.name.clone(), x.min, x.max))
                    .collect();
                match guard_change(&specs, &defaults, &values, PlantTime(0)) {
                    Ok(c) => {
                        if c.needs_approval {
                            executed_by = ExecutedBy::Human;
                            guard_note = serde_json::json!("approved by the process engineer");
                        } else {
                            guard_note =
                                serde_json::json!("within policy: executed by guarded command");
                        }
                        change = Some(c);
                    }
                    Err(reason) => {
                        keep = false;
                        executed_by = ExecutedBy::None;
                        guard_note = serde_json::json!(format!("refused by the guard: {reason}"));
                    }
                }
            }
            plan.steps.push((p, s, base, true, keep));
            if keep && closed_loop.is_none() {
                plan.settings.insert((p, s), values.clone());
            }
            let mut settings_decision = None;
            if let Some(log) = &mut settings_log {
                let mut inputs_ref = format!("trials:{}/{}x{TUNING_TRIALS}", product.id, s + 1);
                if let Some(id) = &risk_decision {
                    inputs_ref.push_str(" decision:");
                    inputs_ref.push_str(id);
                }
                let names: Vec<&str> = step.params.iter().map(|x| x.name.as_str()).collect();
                settings_decision = Some(log.record(PlantTime(0), |id, at| Decision {
                    id,
                    at,
                    skill: "process-settings".to_owned(),
                    stage: LifecycleStage::Design,
                    inputs_ref,
                    model: "bo-gp-ei".to_owned(),
                    model_version: format!("1/{TUNING_TRIALS}-trials"),
                    output: serde_json::json!({
                        "product": product.id,
                        "step": s + 1,
                        "parameters": names,
                        "values": if keep { values.clone() } else { defaults.clone() },
                        "scrap_at_defaults": base,
                        "scrap_at_tuned": tuned,
                        "kept_tuned": keep,
                        "guard": guard_note,
                    }),
                    confidence: None,
                    executed_by,
                    outcome: None,
                }));
            }
            if let Some(closed) = closed_loop {
                closed.register_step((p, s), risk_decision, settings_decision, base, change);
            }
        }
    }
    Ok(plan)
}
