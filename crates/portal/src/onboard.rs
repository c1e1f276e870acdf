//! SME onboarding: a small plant without sensors sends the CSV exports it has — machines,
//! routings, orders (columns in docs/IMPORT.md) — and gets on day one a schedule with a promised
//! completion per order, the planned loading of every machine (the ceiling its OEE can reach
//! until run time and good counts are measured), and a first assessment: the tier its imported
//! decisions would earn and what it lacks for the next. The record is kept; it never sets the
//! plant's verified tier, which only signed evidence does.

use crate::error::PortalError;
use crate::model::Caller;
use crate::portal::{Named, Portal, audit, require};
use aifactory_assess::Ledger;
use aifactory_assess::rules::Coverage;
use aifactory_core::{Decision, ExecutedBy, LedgerRecord, LifecycleStage, Timestamp};
use aifactory_schedule::{Objective, SolveOptions, solve};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use std::collections::BTreeMap;
use std::time::Duration;

/// The CSV files, by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnboardRequest {
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPromise {
    pub order: String,
    pub product: String,
    pub quantity: u32,
    pub due: String,
    pub completes: String,
    pub late_minutes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineLoad {
    pub machine: String,
    pub name: String,
    pub work_centre: String,
    pub busy_minutes: i64,
    /// Busy time over the plan's span (0–1): the planned loading.
    pub loading: f64,
}

/// What onboarding made of the files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnboardingPlan {
    pub machines: usize,
    pub work_centres: usize,
    pub products: usize,
    pub orders: usize,
    /// Where the plan's minute 0 is (plant-local time, as the files give it).
    pub start: String,
    pub makespan_minutes: i64,
    pub weighted_tardiness: f64,
    pub on_time: usize,
    pub late: usize,
    pub promises: Vec<OrderPromise>,
    pub loading: Vec<MachineLoad>,
    /// Mean planned loading: availability × performance at standard rates with no losses yet
    /// measured, the most the plant's OEE can be on this plan.
    pub planned_oee_ceiling: f64,
    pub tier: u8,
    pub missing_for_next_tier: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OnboardingRecord {
    pub id: i64,
    pub plant: String,
    pub at_ms: i64,
    pub actor: String,
    pub plan: OnboardingPlan,
}

fn local(start: Timestamp, minutes: i64) -> String {
    let t = Timestamp(start.0 + minutes * 60_000).to_rfc3339();
    t.get(..16).unwrap_or(&t).replace('T', " ")
}

/// The plan, pure: import, schedule (a fixed number of solver iterations, so the same files
/// give the same plan), loading, first assessment.
pub fn plan(plant: &str, files: &BTreeMap<String, String>) -> Result<OnboardingPlan, PortalError> {
    if files.is_empty() {
        return Err(PortalError::invalid(
            "files: send the machines, routings and orders CSV files as {\"name.csv\": \"text\"}",
        ));
    }
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|(name, text)| (name.clone(), text.clone()))
        .collect();
    let imported = aifactory_core::import::import(&texts).map_err(|errors| {
        PortalError::Invalid(format!(
            "{} problem(s) in the CSV files, nothing imported:\n{errors}",
            errors.0.len()
        ))
    })?;
    let (problem, start) = aifactory_schedule::import::from_import(&imported);
    aifactory_schedule::formats::validate(&problem).map_err(|e| {
        PortalError::invalid(format!("the imported orders cannot be scheduled: {e}"))
    })?;
    let solution = solve(
        &problem,
        &SolveOptions {
            objective: Objective::WeightedTardiness,
            time_limit: Some(Duration::from_secs(20)),
            max_iterations: Some(20_000),
            threads: 1,
            seed: 1,
        },
    );
    let mut busy = vec![0i64; problem.machines];
    for ops in &solution.schedule.placements {
        for p in ops {
            if let Some(b) = busy.get_mut(p.machine) {
                *b += p.end - p.start;
            }
        }
    }
    let span = solution.makespan.max(1);
    let loading: Vec<MachineLoad> = imported
        .machines
        .iter()
        .zip(&busy)
        .map(|(m, &b)| MachineLoad {
            machine: m.id.clone(),
            name: m.name.clone(),
            work_centre: m.work_centre.clone(),
            busy_minutes: b,
            loading: b as f64 / span as f64,
        })
        .collect();
    let mut promises = Vec::new();
    for ((order, job), ops) in imported
        .orders
        .iter()
        .zip(&problem.jobs)
        .zip(&solution.schedule.placements)
    {
        let end = ops.last().map_or(0, |p| p.end);
        let due = job.due.unwrap_or(end);
        promises.push(OrderPromise {
            order: order.id.clone(),
            product: order.product.clone(),
            quantity: order.quantity,
            due: local(start, due),
            completes: local(start, end),
            late_minutes: (end - due).max(0),
        });
    }
    // The first assessment: each promise is a scheduling decision (advice until the plant acts
    // on it); nothing streams yet.
    let mut ledger = Ledger::new();
    for p in &promises {
        ledger
            .append(LedgerRecord::Decision(Decision {
                id: format!("{plant}-onboard-{}", p.order),
                at: start,
                skill: "scheduling".into(),
                stage: LifecycleStage::Production,
                inputs_ref: "import:orders".into(),
                model: "tabu".into(),
                model_version: "onboarding".into(),
                output: json!({"order": p.order, "completes": p.completes}),
                confidence: None,
                executed_by: ExecutedBy::None,
                outcome: None,
            }))
            .map_err(|e| PortalError::invalid(format!("order ids: {e}")))?;
    }
    let assessment = aifactory_assess::assess(
        ledger.entries(),
        &Coverage {
            machines: imported.machines.len() as u32,
            machines_streaming: 0,
            days: (span as f64 / 1440.0).max(1.0),
        },
    );
    let on_time = promises.iter().filter(|p| p.late_minutes == 0).count();
    Ok(OnboardingPlan {
        machines: imported.machines.len(),
        work_centres: imported.work_centres().len(),
        products: imported.routings.len(),
        orders: imported.orders.len(),
        start: local(start, 0),
        makespan_minutes: solution.makespan,
        weighted_tardiness: solution.objective,
        on_time,
        late: promises.len() - on_time,
        planned_oee_ceiling: if loading.is_empty() {
            0.0
        } else {
            loading.iter().map(|l| l.loading).sum::<f64>() / loading.len() as f64
        },
        promises,
        loading,
        tier: assessment.tier,
        missing_for_next_tier: assessment.missing_for_next_tier,
    })
}

impl Portal {
    /// Onboards a plant from its CSV exports (the plant itself, or an officer for it).
    pub async fn onboard(
        &self,
        caller: &Caller,
        plant: &str,
        request: OnboardRequest,
    ) -> Result<OnboardingRecord, PortalError> {
        if !(caller.role.is_officer() || caller.plant.as_deref() == Some(plant)) {
            return Err(PortalError::Forbidden(format!(
                "only plant {plant} and programme officers onboard it"
            )));
        }
        let id = plant.to_owned();
        let made = tokio::task::spawn_blocking(move || plan(&id, &request.files))
            .await
            .map_err(|e| PortalError::invalid(format!("planning failed: {e}")))??;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        require(&mut tx, Named::Plant, plant).await?;
        let summary = serde_json::to_string(&made)
            .map_err(|e| PortalError::invalid(format!("encoding the plan: {e}")))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO onboardings (plant_id, at_ms, actor, machines, orders, summary) \
             VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id",
        )
        .bind(plant)
        .bind(now)
        .bind(&caller.user)
        .bind(made.machines as i32)
        .bind(made.orders as i32)
        .bind(summary)
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            caller,
            now,
            "plant.onboard",
            plant,
            json!({"onboarding": id, "machines": made.machines, "orders": made.orders, "tier": made.tier}),
        )
        .await?;
        tx.commit().await?;
        Ok(OnboardingRecord {
            id,
            plant: plant.to_owned(),
            at_ms: now,
            actor: caller.user.clone(),
            plan: made,
        })
    }

    /// The plant's latest onboarding (`None`: never onboarded from CSV).
    pub async fn latest_onboarding(
        &self,
        caller: &Caller,
        plant: &str,
    ) -> Result<Option<OnboardingRecord>, PortalError> {
        if !caller.owns_plant(plant) {
            return Err(PortalError::Forbidden(format!(
                "plant {plant}'s onboarding is not yours to read"
            )));
        }
        let mut tx = self.begin(caller).await?;
        require(&mut tx, Named::Plant, plant).await?;
        let row = sqlx::query(
            "SELECT id, plant_id, at_ms, actor, summary::text AS summary FROM onboardings \
             WHERE plant_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(plant)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let summary: String = row.try_get("summary")?;
        Ok(Some(OnboardingRecord {
            id: row.try_get("id")?,
            plant: row.try_get("plant_id")?,
            at_ms: row.try_get("at_ms")?,
            actor: row.try_get("actor")?,
            plan: serde_json::from_str(&summary)
                .map_err(|e| PortalError::invalid(format!("stored onboarding: {e}")))?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> BTreeMap<String, String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/sme-csv");
        ["machines.csv", "routings.csv", "orders.csv"]
            .iter()
            .map(|f| {
                (
                    (*f).to_owned(),
                    std::fs::read_to_string(format!("{dir}/{f}")).expect("example CSV"),
                )
            })
            .collect()
    }

    #[test]
    fn the_example_sme_gets_a_plan_and_a_first_assessment() {
        let p = plan("SME-1", &example()).expect("plans");
        assert!(p.machines >= 4 && p.orders >= 4, "{p:?}");
        assert_eq!(p.promises.len(), p.orders);
        assert_eq!(p.on_time + p.late, p.orders);
        assert!(p.loading.iter().all(|l| (0.0..=1.0).contains(&l.loading)));
        assert!(p.planned_oee_ceiling > 0.0 && p.planned_oee_ceiling <= 1.0);
        // Nothing streams yet: tier 0, and the assessment says so.
        assert_eq!(p.tier, 0);
        assert!(
            p.missing_for_next_tier
                .iter()
                .any(|m| m.contains("streaming")),
            "{:?}",
            p.missing_for_next_tier
        );
        // The same files give the same plan.
        assert_eq!(plan("SME-1", &example()).unwrap(), p);
    }

    #[test]
    fn bad_files_are_refused_with_where_and_what() {
        let mut files = example();
        let orders = files.get_mut("orders.csv").unwrap();
        orders.push_str("SO-BAD,NO-SUCH-PRODUCT,5,2026-12-09 12:00,,1\n");
        let err = plan("SME-1", &files).unwrap_err().to_string();
        assert!(
            err.contains("orders.csv") && err.contains("NO-SUCH-PRODUCT"),
            "{err}"
        );
        assert!(plan("SME-1", &BTreeMap::new()).is_err());
    }
}
