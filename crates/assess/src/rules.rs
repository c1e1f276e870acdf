//! The tier rules (documented for people in `docs/TIERS.md`; this file is the one definition):
//! per lifecycle stage the depth reached, the typical scenarios with live AI, the links that
//! make decisions coordinated, and the plant's tier with the evidence behind it and what is
//! missing for the next one.

use crate::ledger::{LedgerEntry, Record};
use aifactory_core::{Decision, ExecutedBy, LifecycleStage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One typical scenario of the catalogue, and the skills whose decisions make it live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub id: &'static str,
    pub stage: LifecycleStage,
    pub skills: &'static [&'static str],
}

/// The typical scenarios, five stages (the programme's and the national smart-factory levels
/// count the share of these with AI in use).
pub const CATALOGUE: &[Scenario] = &[
    Scenario {
        id: "process-parameter-optimisation",
        stage: LifecycleStage::Design,
        skills: &["process-settings", "bo"],
    },
    Scenario {
        id: "statistical-process-control",
        stage: LifecycleStage::Testing,
        skills: &["spc"],
    },
    Scenario {
        id: "defect-risk-prediction",
        stage: LifecycleStage::Testing,
        skills: &["defect-risk"],
    },
    Scenario {
        id: "adaptive-inspection",
        stage: LifecycleStage::Testing,
        skills: &["inspection"],
    },
    Scenario {
        id: "advanced-scheduling",
        stage: LifecycleStage::Production,
        skills: &["scheduling"],
    },
    Scenario {
        id: "predictive-maintenance",
        stage: LifecycleStage::Production,
        skills: &["maintenance", "rul"],
    },
    Scenario {
        id: "anomaly-detection",
        stage: LifecycleStage::Production,
        skills: &["anomaly"],
    },
    Scenario {
        id: "inventory-replenishment",
        stage: LifecycleStage::Management,
        skills: &["replenishment"],
    },
    Scenario {
        id: "oee-loss-analysis",
        stage: LifecycleStage::Management,
        skills: &["oee-loss"],
    },
    Scenario {
        id: "demand-forecasting",
        stage: LifecycleStage::Sales,
        skills: &["forecast"],
    },
    Scenario {
        id: "capable-to-promise",
        stage: LifecycleStage::Sales,
        skills: &["ctp"],
    },
];

/// A link of the shared plan: decisions of `consumers` that cite decisions of `producers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub id: &'static str,
    pub description: &'static str,
    pub producers: &'static [&'static str],
    pub consumers: &'static [&'static str],
}

/// The links tier 2 needs, all of them.
pub const LINKS: &[Link] = &[
    Link {
        id: "maintenance-to-schedule",
        description: "RUL and anomalies become maintenance windows in the schedule",
        producers: &["maintenance", "rul", "anomaly"],
        consumers: &["scheduling"],
    },
    Link {
        id: "forecast-to-plan",
        description: "forecasts drive the production plan and purchasing",
        producers: &["forecast"],
        consumers: &["replenishment", "scheduling"],
    },
    Link {
        id: "quality-to-process",
        description: "quality risk drives set-points and inspection rates",
        producers: &["defect-risk", "spc"],
        consumers: &["inspection", "process-settings"],
    },
    Link {
        id: "schedule-to-quote",
        description: "capable-to-promise quotes from the live schedule",
        producers: &["scheduling"],
        consumers: &["ctp"],
    },
];

/// What the plant streams: the data half of the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub machines: u32,
    /// Machines with telemetry in the assessed period.
    pub machines_streaming: u32,
    /// Days the evidence spans.
    pub days: f64,
}

impl Coverage {
    pub fn streaming_share(&self) -> f64 {
        if self.machines == 0 {
            0.0
        } else {
            f64::from(self.machines_streaming.min(self.machines)) / f64::from(self.machines)
        }
    }
}

/// Depth 0 none, 1 AI scenario, 2 coordinated, 3 closed loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageAssessment {
    pub stage: LifecycleStage,
    pub depth: u8,
    pub decisions: u64,
    /// Decisions carried out (by a person, an agent or a guarded command).
    pub executed: u64,
    pub executed_auto: u64,
    /// Executed decisions with a measured outcome.
    pub with_outcome: u64,
    pub model_updates: u64,
    pub live_scenarios: Vec<String>,
    pub links: Vec<String>,
    /// Why the stage is at its depth, one line per fact.
    pub evidence: Vec<String>,
    /// What the stage lacks for the next depth.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkStatus {
    pub id: String,
    pub description: String,
    /// Decisions that cite a producer's decision.
    pub citations: u64,
    /// Skills whose decisions took part: consumers that cited, producers that were cited.
    #[serde(default)]
    pub skills: Vec<String>,
}

/// The verdict and everything behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// 0 (none) to 3; the programme's tiers 1–3.
    pub tier: u8,
    pub stages: Vec<StageAssessment>,
    pub scenarios_total: usize,
    pub scenarios_live: usize,
    pub scenario_share: f64,
    pub streaming_share: f64,
    pub links: Vec<LinkStatus>,
    /// What must change to reach the next tier (empty at tier 3).
    pub missing_for_next_tier: Vec<String>,
}

/// Decision ids cited in an `inputs_ref`: tokens `decision:ID` separated by `;`, `,` or spaces.
pub fn cited_decisions(inputs_ref: &str) -> impl Iterator<Item = &str> {
    inputs_ref
        .split([';', ',', ' '])
        .filter_map(|t| t.strip_prefix("decision:"))
        .filter(|id| !id.is_empty())
}

/// Share thresholds of the closed loop (depth 3) in a stage.
const EXECUTED_SHARE: f64 = 0.5;
const AUTO_SHARE: f64 = 0.5;
const OUTCOME_SHARE: f64 = 0.5;

/// Assesses a ledger (already verified) against the rules.
pub fn assess(ledger: &[LedgerEntry], coverage: &Coverage) -> Assessment {
    let decisions: Vec<&Decision> = ledger
        .iter()
        .filter_map(|e| match &e.record {
            Record::Decision(d) => Some(d),
            _ => None,
        })
        .collect();
    let skill_of: HashMap<&str, &str> = decisions
        .iter()
        .map(|d| (d.id.as_str(), d.skill.as_str()))
        .collect();
    let measured: BTreeSet<&str> = ledger
        .iter()
        .filter_map(|e| match &e.record {
            Record::Outcome { decision, .. } => Some(decision.as_str()),
            _ => None,
        })
        .collect();
    let mut updates_by_skill: BTreeMap<&str, u64> = BTreeMap::new();
    for e in ledger {
        if let Record::ModelUpdate { skill, .. } = &e.record {
            *updates_by_skill.entry(skill.as_str()).or_default() += 1;
        }
    }
    let links: Vec<LinkStatus> = LINKS
        .iter()
        .map(|link| {
            let mut citations = 0;
            let mut skills = BTreeSet::new();
            for d in decisions
                .iter()
                .filter(|d| link.consumers.contains(&d.skill.as_str()))
            {
                let cited: Vec<&str> = cited_decisions(&d.inputs_ref)
                    .filter_map(|id| skill_of.get(id).copied())
                    .filter(|s| link.producers.contains(s))
                    .collect();
                if !cited.is_empty() {
                    citations += 1;
                    skills.insert(d.skill.as_str());
                    skills.extend(cited);
                }
            }
            LinkStatus {
                id: link.id.to_owned(),
                description: link.description.to_owned(),
                citations,
                skills: skills.into_iter().map(str::to_owned).collect(),
            }
        })
        .collect();
    let live: BTreeSet<&str> = CATALOGUE
        .iter()
        .filter(|s| {
            decisions
                .iter()
                .any(|d| s.skills.contains(&d.skill.as_str()))
        })
        .map(|s| s.id)
        .collect();
    let stages: Vec<StageAssessment> = LifecycleStage::ALL
        .into_iter()
        .map(|stage| {
            assess_stage(
                stage,
                &decisions,
                &measured,
                &updates_by_skill,
                &links,
                &live,
            )
        })
        .collect();
    let scenario_share = live.len() as f64 / CATALOGUE.len() as f64;
    let streaming_share = coverage.streaming_share();
    let (tier, missing_for_next_tier) =
        plant_tier(&stages, &links, scenario_share, streaming_share);
    Assessment {
        tier,
        stages,
        scenarios_total: CATALOGUE.len(),
        scenarios_live: live.len(),
        scenario_share,
        streaming_share,
        links,
        missing_for_next_tier,
    }
}

/// What each coordinated stage lacks for the closed loop, production first, so that a plant
/// one step short of tier 3 reads which evidence (outcomes, model updates, …) to add.
fn short_of_closed_loop(stages: &[StageAssessment]) -> String {
    let mut short: Vec<&StageAssessment> = stages.iter().filter(|s| s.depth == 2).collect();
    short.sort_by_key(|s| s.stage != LifecycleStage::Production);
    let lines: Vec<String> = short
        .iter()
        .filter(|s| !s.missing.is_empty())
        .map(|s| format!("{}: {}", s.stage.as_str(), s.missing.join(" and ")))
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!(" ({})", lines.join("; "))
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn assess_stage(
    stage: LifecycleStage,
    decisions: &[&Decision],
    measured: &BTreeSet<&str>,
    updates_by_skill: &BTreeMap<&str, u64>,
    links: &[LinkStatus],
    live: &BTreeSet<&str>,
) -> StageAssessment {
    let mine: Vec<&&Decision> = decisions.iter().filter(|d| d.stage == stage).collect();
    let skills: BTreeSet<&str> = mine.iter().map(|d| d.skill.as_str()).collect();
    let executed: Vec<&&&Decision> = mine
        .iter()
        .filter(|d| d.executed_by != ExecutedBy::None)
        .collect();
    let executed_auto = executed
        .iter()
        .filter(|d| d.executed_by == ExecutedBy::Auto)
        .count() as u64;
    let with_outcome = executed
        .iter()
        .filter(|d| measured.contains(d.id.as_str()))
        .count() as u64;
    let model_updates: u64 = skills
        .iter()
        .map(|s| updates_by_skill.get(s).copied().unwrap_or(0))
        .sum();
    let live_scenarios: Vec<String> = CATALOGUE
        .iter()
        .filter(|s| s.stage == stage && live.contains(s.id))
        .map(|s| s.id.to_owned())
        .collect();
    // A stage takes part in a link only through its own decisions: one that cites, or one
    // that is cited.
    let stage_links: Vec<String> = links
        .iter()
        .filter(|status| {
            status.citations > 0 && status.skills.iter().any(|s| skills.contains(s.as_str()))
        })
        .map(|status| status.id.clone())
        .collect();
    let (n, ex) = (mine.len() as u64, executed.len() as u64);
    let mut evidence = Vec::new();
    let mut missing = Vec::new();
    let mut depth = 0;
    if live_scenarios.is_empty() {
        missing.push(format!(
            "no {stage} scenario has AI decisions in the ledger"
        ));
    } else {
        depth = 1;
        evidence.push(format!(
            "{n} decisions from {} ({})",
            skills.iter().copied().collect::<Vec<_>>().join(", "),
            live_scenarios.join(", ")
        ));
        if stage_links.is_empty() {
            missing.push(format!(
                "no {stage} decision takes part in a link of the shared plan"
            ));
        } else {
            depth = 2;
            evidence.push(format!("linked: {}", stage_links.join(", ")));
            let loop_checks = [
                (
                    share(ex, n) >= EXECUTED_SHARE,
                    format!(
                        "{:.0} % of decisions executed (need 50 %)",
                        100.0 * share(ex, n)
                    ),
                ),
                (
                    share(executed_auto, ex) >= AUTO_SHARE,
                    format!(
                        "{:.0} % of executed decisions by guarded command (need 50 %)",
                        100.0 * share(executed_auto, ex)
                    ),
                ),
                (
                    share(with_outcome, ex) >= OUTCOME_SHARE,
                    format!(
                        "{:.0} % of executed decisions with a measured outcome (need 50 %)",
                        100.0 * share(with_outcome, ex)
                    ),
                ),
                (
                    model_updates > 0,
                    format!("{model_updates} model updates from outcomes (need 1)"),
                ),
            ];
            for (ok, line) in loop_checks {
                if ok {
                    evidence.push(line);
                } else {
                    missing.push(line);
                }
            }
            if missing.is_empty() {
                depth = 3;
            }
        }
    }
    StageAssessment {
        stage,
        depth,
        decisions: n,
        executed: ex,
        executed_auto,
        with_outcome,
        model_updates,
        live_scenarios,
        links: stage_links,
        evidence,
        missing,
    }
}

/// Tier 2 needs this share of typical scenarios live (the national level's 20 %).
const TIER2_SCENARIOS: f64 = 0.2;
/// Tier 3 needs this share (the national level's 60 %).
const TIER3_SCENARIOS: f64 = 0.6;

fn plant_tier(
    stages: &[StageAssessment],
    links: &[LinkStatus],
    scenario_share: f64,
    streaming_share: f64,
) -> (u8, Vec<String>) {
    let at_least = |d: u8| stages.iter().filter(|s| s.depth >= d).count();
    let production = |d: u8| {
        stages
            .iter()
            .any(|s| s.stage == LifecycleStage::Production && s.depth >= d)
    };
    let tier1 = [
        (
            at_least(1) >= 1,
            "AI decisions in at least one stage".to_owned(),
        ),
        (
            streaming_share > 0.0,
            "at least one machine streaming data".to_owned(),
        ),
    ];
    let mut tier2: Vec<(bool, String)> = links
        .iter()
        .map(|l| (l.citations > 0, format!("link {}: {}", l.id, l.description)))
        .collect();
    tier2.extend([
        (
            at_least(2) >= 3,
            format!("3 stages coordinated (depth ≥ 2), have {}", at_least(2)),
        ),
        (
            scenario_share >= TIER2_SCENARIOS,
            format!(
                "≥ 20 % of typical scenarios with live AI, have {:.0} %",
                100.0 * scenario_share
            ),
        ),
        (
            streaming_share >= 0.5,
            format!(
                "≥ 50 % of machines streaming, have {:.0} %",
                100.0 * streaming_share
            ),
        ),
    ]);
    let tier3 = [
        (
            at_least(2) == stages.len(),
            format!("all 5 stages coordinated (depth ≥ 2), have {}", at_least(2)),
        ),
        (
            at_least(3) >= 3 && production(3),
            format!(
                "3 stages in closed loop (depth 3) including production, have {}{}",
                at_least(3),
                short_of_closed_loop(stages)
            ),
        ),
        (
            scenario_share >= TIER3_SCENARIOS,
            format!(
                "≥ 60 % of typical scenarios with live AI, have {:.0} %",
                100.0 * scenario_share
            ),
        ),
        (
            streaming_share >= 0.9,
            format!(
                "≥ 90 % of machines streaming, have {:.0} %",
                100.0 * streaming_share
            ),
        ),
    ];
    let unmet = |checks: &[(bool, String)]| -> Vec<String> {
        checks
            .iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, why)| why.clone())
            .collect()
    };
    let levels = [unmet(&tier1), unmet(&tier2), unmet(&tier3)];
    for (tier, missing) in levels.into_iter().enumerate() {
        if !missing.is_empty() {
            return (tier as u8, missing);
        }
    }
    (3, Vec::new())
}
