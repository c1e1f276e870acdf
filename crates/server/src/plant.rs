//! Routes over the live plant: the overview, machines, orders, the schedule and its what-ifs,
//! proposals and their approval, telemetry ranges, control charts, forecasts and the live
//! event stream.

use crate::live::{Bar, MachineNow, PlanScore, Snapshot};
use crate::{ApiError, AppState};
use aifactory_core::{Decision, ExecutedBy, LifecycleStage, Timestamp};
use aifactory_plant::Action;
use aifactory_store::ingest::{Resolution, SeriesName};
use aifactory_store::{NewProposal, StoredProposal};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;

fn no_plant() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no live plant is connected to this server yet",
    )
}

fn snapshot(state: &AppState) -> Result<Arc<Snapshot>, ApiError> {
    state.live.latest().ok_or_else(no_plant)
}

fn bad_field(field: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        field: Some(field.to_owned()),
        ..ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

/// A query string the extractor refused, naming the parameter where serde says which.
pub(crate) fn query_error(rejection: &QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let field = text
        .split('`')
        .nth(1)
        .filter(|f| !f.contains(' '))
        .map(str::to_owned);
    ApiError {
        field,
        ..ApiError::new(StatusCode::BAD_REQUEST, text)
    }
}

#[utoipa::path(get, path = "/api/v1/plant", tag = "plant", responses((status = 200, description = "The plant now", body = crate::live::PlantNow), (status = 503, description = "No live plant", body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn plant(
    State(state): State<Arc<AppState>>,
) -> Result<Json<crate::live::PlantNow>, ApiError> {
    Ok(Json(snapshot(&state)?.plant.clone()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MachineDetail {
    machine: MachineNow,
    signals: Vec<String>,
    events: Vec<crate::live::EventNow>,
    anomalies: Vec<crate::live::AnomalyMark>,
}

#[utoipa::path(get, path = "/api/v1/machines/{id}", tag = "plant", params(("id" = String, Path, description = "Machine id")), responses((status = 200, body = MachineDetail), (status = 404, body = ApiError), (status = 503, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn machine(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<MachineDetail>, ApiError> {
    let snap = snapshot(&state)?;
    let machine = snap
        .plant
        .machines
        .iter()
        .find(|m| m.id == id)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no machine `{id}`")))?;
    let signals = state
        .store
        .series_counts()
        .await?
        .into_keys()
        .filter(|s| {
            *s.site == *snap.series_site && *s.node == *snap.series_node && *s.device == *id
        })
        .map(|s| s.metric.to_string())
        .collect();
    let events = snap
        .plant
        .recent_events
        .iter()
        .filter(|e| e.machine.as_deref() == Some(id.as_str()))
        .cloned()
        .collect();
    let anomalies = snap
        .anomalies
        .iter()
        .filter(|a| a.machine == id)
        .take(50)
        .cloned()
        .collect();
    Ok(Json(MachineDetail {
        machine,
        signals,
        events,
        anomalies,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OrdersQuery {
    /// open, completed or all (default).
    status: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/orders", tag = "plant", params(OrdersQuery), responses((status = 200, description = "Sales orders", body = serde_json::Value), (status = 400, body = ApiError), (status = 503, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn orders(
    State(state): State<Arc<AppState>>,
    query: Result<Query<OrdersQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|r| query_error(&r))?;
    let snap = snapshot(&state)?;
    let keep: fn(&crate::live::OrderNow) -> bool = match q.status.as_deref().unwrap_or("all") {
        "all" => |_| true,
        "open" => |o| o.completed.is_none(),
        "completed" => |o| o.completed.is_some(),
        _ => return Err(bad_field("status", "status must be open, completed or all")),
    };
    let orders: Vec<_> = snap.orders.iter().filter(|o| keep(o)).collect();
    Ok(Json(serde_json::json!({ "orders": orders })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MachineName {
    id: String,
    name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ScheduleView {
    #[serde(serialize_with = "ts")]
    #[schema(value_type = String, format = DateTime)]
    at: Timestamp,
    decision: Option<String>,
    machines: Vec<MachineName>,
    bars: Vec<Bar>,
    #[serde(flatten)]
    score: PlanScore,
}

fn ts<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339())
}

fn machine_names(snap: &Snapshot) -> Vec<MachineName> {
    snap.plant
        .machines
        .iter()
        .map(|m| MachineName {
            id: m.id.clone(),
            name: m.name.clone(),
        })
        .collect()
}

fn no_plan() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no plan yet: the scheduling skill plans at the next dispatch (tier 2 and up)",
    )
}

#[utoipa::path(get, path = "/api/v1/schedule", tag = "schedule", responses((status = 200, body = ScheduleView), (status = 404, description = "No plan yet", body = ApiError), (status = 503, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn schedule(
    State(state): State<Arc<AppState>>,
) -> Result<Json<ScheduleView>, ApiError> {
    let snap = snapshot(&state)?;
    let plan = snap.plan.as_ref().ok_or_else(no_plan)?;
    Ok(Json(ScheduleView {
        at: plan.at,
        decision: plan.decision.clone(),
        machines: machine_names(&snap),
        bars: plan.bars(&plan.schedule),
        score: plan.score(&plan.schedule),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhatIf {
    /// The machine to take out.
    machine_down: String,
    /// For how long, from when it is next free (0 < hours <= 336).
    hours: f64,
}

/// A change someone may approve: what it is, who asked, and what became of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Proposal {
    /// `P-<n>`: a number the store never gives twice.
    pub id: String,
    pub kind: String,
    pub machine: String,
    pub hours: f64,
    pub summary: String,
    #[serde(serialize_with = "ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    /// The person (or the program's token) that asked.
    pub by: String,
    pub role: String,
    /// `api`, `web`, `agent (…)`: the path the request came by.
    pub via: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub decided_by: Option<String>,
    /// The ledger entry an approval wrote.
    pub decision: Option<String>,
    /// The plan decision it was computed against.
    pub plan_decision: Option<String>,
}

impl Proposal {
    fn of(p: StoredProposal) -> Proposal {
        Proposal {
            id: format!("P-{}", p.seq),
            kind: p.proposal.kind,
            machine: p.proposal.machine,
            hours: p.proposal.hours,
            summary: p.proposal.summary,
            created: p.proposal.created_at,
            by: p.proposal.requested_by,
            role: p.proposal.role,
            via: p.proposal.via,
            status: p.status,
            decided_by: p.decided_by,
            decision: p.decision,
            plan_decision: p.proposal.plan_decision,
        }
    }
}

/// The number in a proposal id `P-<n>`.
fn proposal_seq(id: &str) -> Result<i64, ApiError> {
    id.strip_prefix("P-")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no proposal `{id}`")))
}

/// How many decided proposals the list shows beside every pending one; older ones stay in the
/// store.
const LISTED_PROPOSALS: u32 = 500;

/// Who asked for a change, and by which path: what a proposal records.
#[derive(Debug, Clone)]
pub(crate) struct Asked {
    pub(crate) user: String,
    pub(crate) role: String,
    pub(crate) via: String,
}

impl Asked {
    fn of(who: &crate::auth::Principal, session: bool) -> Asked {
        Asked {
            user: who.user.clone(),
            role: who.role.as_str().to_owned(),
            via: if session { "web" } else { "api" }.to_owned(),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/schedule/what-if", tag = "schedule", request_body = WhatIf, responses((status = 200, description = "Before and after, the re-planned bars, and the proposal id", body = serde_json::Value), (status = 409, body = ApiError), (status = 422, body = ApiError), (status = 503, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn what_if(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<crate::auth::Principal>,
    session: Option<Extension<crate::SessionId>>,
    body: Result<Json<WhatIf>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body.map_err(|r| crate::body_error(&r))?;
    let asked = Asked::of(&who, session.is_some());
    what_if_core(&state, &asked, body.machine_down, body.hours)
        .await
        .map(Json)
}

/// Re-plans with `machine` down for `hours` and leaves a proposal by `asked`: the what-if
/// route's work, shared with the agent's `schedule_what_if` tool.
pub(crate) async fn what_if_core(
    state: &Arc<AppState>,
    asked: &Asked,
    machine: String,
    hours: f64,
) -> Result<serde_json::Value, ApiError> {
    let body = WhatIf {
        machine_down: machine,
        hours,
    };
    if !(body.hours.is_finite() && body.hours > 0.0 && body.hours <= 24.0 * 14.0) {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            ..bad_field(
                "hours",
                "hours must be more than 0 and at most 336 (two weeks)",
            )
        });
    }
    let snap = snapshot(state)?;
    let plan = snap.plan.clone().ok_or_else(no_plan)?;
    let machine = body.machine_down.clone();
    let hours = body.hours;
    let replanned = {
        let plan = plan.clone();
        let machine = machine.clone();
        // The solver runs for a fraction of a second: off the async workers.
        tokio::task::spawn_blocking(move || plan.without_machine(&machine, hours))
            .await
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "re-planning failed"))?
    };
    let after = match replanned {
        None => {
            return Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                ..bad_field(
                    "machine_down",
                    format!("`{machine}` is not a machine of the plan"),
                )
            });
        }
        Some(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("the plan cannot take this change: {e}"),
            ));
        }
        Some(Ok(s)) => s,
    };
    let before_score = plan.score(&plan.schedule);
    let after_score = plan.score(&after);
    let summary = format!(
        "{machine} down for {hours} h: plan end {:.1} h → {:.1} h, weighted tardiness {:.1} h → {:.1} h",
        before_score.makespan_h,
        after_score.makespan_h,
        before_score.weighted_tardiness_h,
        after_score.weighted_tardiness_h
    );
    let seq = state
        .store
        .add_proposal(&NewProposal {
            created_at: snap.plant.sim_time,
            requested_by: asked.user.clone(),
            role: asked.role.clone(),
            via: asked.via.clone(),
            kind: "machine_down".into(),
            machine: machine.clone(),
            hours,
            summary: summary.clone(),
            plan_decision: plan.decision.clone(),
        })
        .await?;
    Ok(serde_json::json!({
        "proposal": format!("P-{seq}"),
        "before": before_score,
        "after": after_score,
        "bars": plan.bars(&after),
        "machines": machine_names(&snap),
        "summary": summary,
    }))
}

#[utoipa::path(get, path = "/api/v1/proposals", tag = "schedule", responses((status = 200, description = "Proposals, newest first: every pending one and the latest 500", body = serde_json::Value)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn proposals(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Every pending proposal, however old, and the newest decided ones.
    let mut list = state.store.proposals(Some("pending"), u32::MAX).await?;
    let seen: std::collections::HashSet<i64> = list.iter().map(|p| p.seq).collect();
    list.extend(
        state
            .store
            .proposals(None, LISTED_PROPOSALS)
            .await?
            .into_iter()
            .filter(|p| !seen.contains(&p.seq)),
    );
    list.sort_by_key(|p| std::cmp::Reverse(p.seq));
    let list: Vec<Proposal> = list.into_iter().map(Proposal::of).collect();
    Ok(Json(serde_json::json!({ "proposals": list })))
}

#[utoipa::path(post, path = "/api/v1/proposals/{id}/approve", tag = "schedule", params(("id" = String, Path)), responses((status = 200, description = "Approved: a person's decision in the ledger, the change sent to the plant", body = serde_json::Value), (status = 404, body = ApiError), (status = 409, description = "Already decided", body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn approve(
    state: State<Arc<AppState>>,
    who: Extension<crate::auth::Principal>,
    id: Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(state, who, id, true).await
}

#[utoipa::path(post, path = "/api/v1/proposals/{id}/reject", tag = "schedule", params(("id" = String, Path)), responses((status = 200, body = serde_json::Value), (status = 404, body = ApiError), (status = 409, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn reject(
    state: State<Arc<AppState>>,
    who: Extension<crate::auth::Principal>,
    id: Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(state, who, id, false).await
}

fn already(id: &str, status: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!("proposal {id} is already {status}"),
    )
}

async fn decide(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<crate::auth::Principal>,
    Path(id): Path<String>,
    approve: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    let seq = proposal_seq(&id)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, format!("no proposal `{id}`"));
    let stored = state.store.proposal(seq).await?.ok_or_else(not_found)?;
    if stored.status != "pending" {
        return Err(already(&id, &stored.status));
    }
    let at = state
        .live
        .latest()
        .map_or(stored.proposal.created_at, |s| s.plant.sim_time);
    let decision_id = approve.then(|| {
        let number = state
            .human_decisions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        format!("H-{}-{number:04}", state.started_ms)
    });
    // Claim the proposal in the store first (compare-and-set), so of two approvals of the same
    // proposal exactly one acts, and an id always names the proposal it was given to.
    let to = if approve { "approved" } else { "rejected" };
    let won = state
        .store
        .transition_proposal(
            seq,
            "pending",
            to,
            Some(&who.user),
            Some(at),
            decision_id.as_deref(),
        )
        .await?;
    if !won {
        let now = state.store.proposal(seq).await?.ok_or_else(not_found)?;
        return Err(already(&id, &now.status));
    }
    let Some(decision_id) = decision_id else {
        let proposal = state.store.proposal(seq).await?.ok_or_else(not_found)?;
        return Ok(Json(
            serde_json::json!({ "proposal": Proposal::of(proposal), "decision": null }),
        ));
    };
    let proposal = stored.proposal;
    let mut inputs_ref = format!("proposal:{id}");
    if let Some(plan) = &proposal.plan_decision {
        inputs_ref.push_str(" decision:");
        inputs_ref.push_str(plan);
    }
    let decision = Decision {
        id: decision_id,
        at,
        skill: "what_if".to_owned(),
        stage: LifecycleStage::Production,
        inputs_ref,
        model: format!("approved-by:{}", who.user),
        model_version: "1".to_owned(),
        output: serde_json::json!({
            "machine": proposal.machine,
            "action": "preventive_maintenance",
            "planned_hours": proposal.hours,
            "summary": proposal.summary,
            "requested_by": proposal.requested_by,
        }),
        confidence: None,
        executed_by: ExecutedBy::Human,
        outcome: None,
    };
    if let Err(e) = state.store.record_decision(&decision).await {
        // Nothing was executed: the proposal waits again rather than claim an approval.
        let _ = state
            .store
            .transition_proposal(seq, "approved", "pending", None, None, None)
            .await;
        return Err(e.into());
    }
    let sent = state.live.command(
        &decision,
        Action::StartMaintenance {
            machine: proposal.machine.clone(),
        },
    );
    state.live.announce(decision.clone());
    let proposal = state.store.proposal(seq).await?.ok_or_else(not_found)?;
    Ok(Json(serde_json::json!({
        "proposal": Proposal::of(proposal),
        "decision": decision.id,
        "sent_to_plant": sent.is_ok(),
        "command": sent.as_ref().ok(),
        "command_error": sent.err().map(|e| e.to_string()),
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TelemetryQuery {
    /// Machine id, e.g. TURN-01.
    machine: String,
    /// Signal, e.g. vibration_mm_s.
    signal: String,
    /// RFC 3339 start [default: six hours before `to`].
    from: Option<String>,
    /// RFC 3339 end [default: the plant's now].
    to: Option<String>,
    /// raw (default), minute or hour.
    bucket: Option<String>,
}

/// Raw samples are capped so a wide range cannot make a huge answer; roll-ups cover the rest.
const MAX_RAW_POINTS: usize = 20_000;
/// The widest range each resolution answers: raw 7 days, minute buckets 92 days, hours 10 years.
const MAX_RAW_SPAN_MS: i64 = 7 * 86_400_000;
const MAX_MINUTE_SPAN_MS: i64 = 92 * 86_400_000;
const MAX_HOUR_SPAN_MS: i64 = 10 * 366 * 86_400_000;

fn parse_time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| Timestamp(t.timestamp_millis()))
        .map_err(|_| {
            bad_field(
                field,
                format!(
                    "{field} must be an RFC 3339 time such as 2026-03-02T08:00:00Z, not `{text}`"
                ),
            )
        })
}

#[utoipa::path(get, path = "/api/v1/telemetry", tag = "telemetry", params(TelemetryQuery), responses((status = 200, description = "Raw points [[t_ms, value]] or minute/hour buckets", body = serde_json::Value), (status = 400, body = ApiError), (status = 404, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn telemetry(
    State(state): State<Arc<AppState>>,
    query: Result<Query<TelemetryQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|r| query_error(&r))?;
    let snap = state.live.latest();
    let now = snap.as_ref().map_or(Timestamp(0), |s| s.plant.sim_time);
    let to = match &q.to {
        Some(t) => parse_time("to", t)?,
        None => now,
    };
    let from = match &q.from {
        Some(t) => parse_time("from", t)?,
        None => Timestamp(to.0 - 6 * 3_600_000),
    };
    if from.0 > to.0 {
        return Err(bad_field("from", "from must not be after to"));
    }
    let bucket = q.bucket.as_deref().unwrap_or("raw");
    let resolution = match bucket {
        "raw" => None,
        "minute" => Some(Resolution::Minute),
        "hour" => Some(Resolution::Hour),
        _ => return Err(bad_field("bucket", "bucket must be raw, minute or hour")),
    };
    // The range is bounded before anything is read, so no request makes the server hold more
    // than a window's worth of points.
    let (widest, name) = match resolution {
        None => (
            MAX_RAW_SPAN_MS,
            "a raw range is at most 7 days; ask for bucket=minute or hour for more",
        ),
        Some(Resolution::Minute) => (
            MAX_MINUTE_SPAN_MS,
            "a range of minute buckets is at most 92 days; ask for bucket=hour for more",
        ),
        Some(Resolution::Hour) => (
            MAX_HOUR_SPAN_MS,
            "a range of hour buckets is at most 10 years",
        ),
    };
    if to.0.saturating_sub(from.0) > widest {
        return Err(bad_field("from", name));
    }
    // The series is found by machine and signal among those stored; a live plant names its site.
    let series: Vec<SeriesName> = state
        .store
        .series_counts()
        .await?
        .into_keys()
        .filter(|s| *s.device == *q.machine && *s.metric == *q.signal)
        .filter(|s| {
            snap.as_ref()
                .is_none_or(|p| *s.site == *p.series_site && *s.node == *p.series_node)
        })
        .collect();
    let Some(series) = series.into_iter().next() else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            ..bad_field(
                "signal",
                format!("no telemetry `{}` of machine `{}`", q.signal, q.machine),
            )
        });
    };
    let body = match resolution {
        None => {
            let mut points = state.store.samples(&series, from.0, to.0).await?;
            let truncated = points.len() > MAX_RAW_POINTS;
            if truncated {
                points.drain(..points.len() - MAX_RAW_POINTS);
            }
            serde_json::json!({
                "machine": q.machine, "signal": q.signal, "bucket": bucket,
                "points": points, "truncated": truncated,
            })
        }
        Some(r) => {
            let buckets: Vec<serde_json::Value> = state
                .store
                .aggregate(&series, r, from.0, to.0)
                .await?
                .into_iter()
                .map(|b| {
                    serde_json::json!({
                        "start_ms": b.start_ms, "count": b.count,
                        "min": b.min, "max": b.max, "mean": b.mean,
                    })
                })
                .collect();
            serde_json::json!({
                "machine": q.machine, "signal": q.signal, "bucket": bucket, "buckets": buckets,
            })
        }
    };
    Ok(Json(body))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SpcQuery {
    /// Only this machine's charts.
    machine: Option<String>,
    /// Only this signal's charts.
    signal: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/quality/spc", tag = "quality", params(SpcQuery), responses((status = 200, description = "X-bar/R control charts", body = serde_json::Value), (status = 404, body = ApiError), (status = 503, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn spc(
    State(state): State<Arc<AppState>>,
    query: Result<Query<SpcQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|r| query_error(&r))?;
    let snap = snapshot(&state)?;
    let charts: Vec<&crate::live::SpcChart> = snap
        .spc
        .iter()
        .filter(|c| q.machine.as_ref().is_none_or(|m| *m == c.machine))
        .filter(|c| q.signal.as_ref().is_none_or(|s| *s == c.signal))
        .collect();
    if charts.is_empty() && (q.machine.is_some() || q.signal.is_some()) {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            ..bad_field("machine", "no control chart for that machine and signal")
        });
    }
    Ok(Json(serde_json::json!({ "charts": charts })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ForecastQuery {
    /// Product id [default: the first].
    product: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/forecast", tag = "plant", params(ForecastQuery), responses((status = 200, body = crate::live::ProductForecast), (status = 404, body = ApiError), (status = 503, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn forecast(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ForecastQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|r| query_error(&r))?;
    let snap = snapshot(&state)?;
    let products: Vec<&str> = snap.forecasts.iter().map(|f| f.product.as_str()).collect();
    let chosen = match &q.product {
        Some(p) => snap
            .forecasts
            .iter()
            .find(|f| f.product == *p)
            .ok_or_else(|| ApiError {
                status: StatusCode::NOT_FOUND,
                ..bad_field("product", format!("no forecast for product `{p}`"))
            })?,
        None => snap.forecasts.first().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no forecast yet: the first is made after the first simulated day",
            )
        })?,
    };
    let mut body = serde_json::to_value(chosen).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the forecast could not be encoded",
        )
    })?;
    body["products"] = serde_json::json!(products);
    Ok(Json(body))
}

/// What the event stream holds between events.
struct Feed {
    snapshots: tokio::sync::watch::Receiver<Option<Arc<Snapshot>>>,
    decisions: tokio::sync::broadcast::Receiver<Arc<Decision>>,
    first: bool,
}

impl Feed {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.first {
                // The current state first, so a page has something to show at once.
                self.first = false;
                let s = self.snapshots.borrow_and_update().clone();
                if let Some(e) =
                    s.and_then(|s| Event::default().event("plant").json_data(&s.plant).ok())
                {
                    return Some(e);
                }
            }
            tokio::select! {
                changed = self.snapshots.changed() => {
                    changed.ok()?;
                    // At most one overview a second, however fast the plant publishes.
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    let s = self.snapshots.borrow_and_update().clone();
                    if let Some(e) = s.and_then(|s| Event::default().event("plant").json_data(&s.plant).ok()) {
                        return Some(e);
                    }
                }
                d = self.decisions.recv() => match d {
                    Ok(d) => {
                        if let Ok(e) = Event::default().event("decision").json_data(&*d) {
                            return Some(e);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

/// Server-sent events: `plant` (the overview, at most once per second) and `decision` (each
/// decision as it is made).
#[utoipa::path(get, path = "/api/v1/events", tag = "plant", responses((status = 200, description = "Server-sent events: `plant` (the overview) and `decision`", content_type = "text/event-stream")), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let feed = Feed {
        snapshots: state.live.watch(),
        decisions: state.live.subscribe_decisions(),
        first: true,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
