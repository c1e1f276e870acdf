//! The agent platform on the server: the plant's tools over the live plant and the store
//! ([`PlantAccess`]), and the routes through which people and programs ask the agent, call
//! tools, and approve or reject held actions. MCP over streamable HTTP is mounted at `/mcp`
//! behind the same authorisation layer.

use crate::live::Snapshot;
use crate::{ApiError, AppState};
use aifactory_agent::tools::{
    self, MachineArgs, OrderFilter, OrdersArgs, QuoteArgs, ScheduleArgs, SetPointArgs,
    ShiftReportArgs, TelemetryArgs, ToolFailure, Vocabulary, WhatIfArgs, WorkOrderArgs, parse_args,
};
use aifactory_agent::{AgentError, Caller};
use aifactory_core::{Decision, ExecutedBy, LifecycleStage, Timestamp};
use aifactory_store::ingest::{Resolution, SeriesName};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, Weak};

/// Bilingual summary of a tool's result, for the planner and for people.
fn say(en: String, zh: String) -> Value {
    json!({ "en": en, "zh": zh })
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// The plant's tools over the server's live plant and store.
#[derive(Debug)]
pub struct PlantAccess {
    state: Weak<AppState>,
}

impl PlantAccess {
    pub fn new(state: &Arc<AppState>) -> PlantAccess {
        PlantAccess {
            state: Arc::downgrade(state),
        }
    }

    fn state(&self) -> Result<Arc<AppState>, ToolFailure> {
        self.state
            .upgrade()
            .ok_or_else(|| ToolFailure::new("the server is shutting down"))
    }

    fn snapshot(state: &AppState) -> Result<Arc<Snapshot>, ToolFailure> {
        state
            .live
            .latest()
            .ok_or_else(|| ToolFailure::new("no live plant is connected to this server yet"))
    }
}

fn machine_of<'a>(
    snap: &'a Snapshot,
    id: &str,
) -> Result<&'a crate::live::MachineNow, ToolFailure> {
    snap.plant
        .machines
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(|| {
            let ids: Vec<&str> = snap.plant.machines.iter().map(|m| m.id.as_str()).collect();
            ToolFailure(format!(
                "no machine `{id}`; the machines are {}",
                ids.join(", ")
            ))
        })
}

fn store_failure(e: aifactory_store::StoreError) -> ToolFailure {
    ToolFailure(format!("the store could not answer: {e}"))
}

fn api_failure(e: ApiError) -> ToolFailure {
    ToolFailure(e.error)
}

/// Min, mean, max and last of one series over a window, from hourly roll-ups and raw tails.
async fn series_stats(
    state: &AppState,
    series: &SeriesName,
    from: i64,
    to: i64,
) -> Result<Option<Value>, ToolFailure> {
    let buckets = state
        .store
        .aggregate(series, Resolution::Minute, from, to)
        .await
        .map_err(store_failure)?;
    let count: u64 = buckets.iter().map(|b| b.count).sum();
    if count == 0 {
        return Ok(None);
    }
    let min = buckets.iter().map(|b| b.min).fold(f64::INFINITY, f64::min);
    let max = buckets
        .iter()
        .map(|b| b.max)
        .fold(f64::NEG_INFINITY, f64::max);
    let mean = buckets.iter().map(|b| b.mean * b.count as f64).sum::<f64>() / count as f64;
    let last = buckets.last().map(|b| b.mean);
    Ok(Some(json!({
        "signal": series.metric, "samples": count,
        "min": min, "mean": mean, "max": max, "last_minute_mean": last,
    })))
}

async fn machine_series(
    state: &AppState,
    snap: &Snapshot,
    machine: &str,
) -> Result<Vec<SeriesName>, ToolFailure> {
    Ok(state
        .store
        .series_counts()
        .await
        .map_err(store_failure)?
        .into_keys()
        .filter(|s| {
            *s.site == *snap.series_site && *s.node == *snap.series_node && &*s.device == machine
        })
        .collect())
}

#[async_trait::async_trait]
impl tools::PlantTools for PlantAccess {
    fn authorise(&self, tool: &str, role: &str) -> Result<(), String> {
        crate::auth::tool_access(tool, role)
    }

    async fn call(
        &self,
        caller: &Caller,
        via: &str,
        tool: &str,
        args: &Value,
        approved_by: Option<&str>,
        action: Option<&str>,
    ) -> Result<Value, ToolFailure> {
        let state = self.state()?;
        let snap = Self::snapshot(&state)?;
        match tool {
            tools::PLANT_STATUS => Ok(plant_status(&snap)),
            tools::QUERY_KPIS => Ok(kpis(&snap)),
            tools::QUERY_TELEMETRY => telemetry(&state, &snap, parse_args(args)?).await,
            tools::LIST_ORDERS => Ok(orders(&snap, parse_args(args)?)),
            tools::SHOW_SCHEDULE => schedule(&snap, parse_args(args)?),
            tools::EXPLAIN_ANOMALY => explain(&state, &snap, parse_args(args)?).await,
            tools::SCHEDULE_WHAT_IF => {
                let a: WhatIfArgs = parse_args(args)?;
                let asked = crate::plant::Asked {
                    user: caller.user.clone(),
                    role: caller.role.clone(),
                    via: format!("agent ({via})"),
                };
                let mut v = crate::plant::what_if_core(&state, &asked, a.machine, a.hours)
                    .await
                    .map_err(api_failure)?;
                v.as_object_mut().map(|m| m.remove("bars"));
                let en = v["summary"].as_str().unwrap_or("").to_owned();
                let zh = format!(
                    "假设分析：{}；已生成提案 {}，可在排产页面由人员批准。",
                    en,
                    v["proposal"].as_str().unwrap_or("")
                );
                v["summary"] = say(
                    format!(
                        "{en}; proposal {} awaits a person's approval on the schedule page.",
                        v["proposal"].as_str().unwrap_or("")
                    ),
                    zh,
                );
                Ok(v)
            }
            tools::QUOTE_DELIVERY => quote(&snap, parse_args(args)?).await,
            tools::DRAFT_SHIFT_REPORT => shift_report(&state, &snap, parse_args(args)?).await,
            tools::CREATE_WORK_ORDER | tools::CHANGE_SET_POINT => {
                // Only the runtime reaches here, after the policy or a person let it through.
                execute(&state, &snap, tool, args, approved_by, action).await
            }
            other => Err(ToolFailure(format!(
                "no tool named `{other}` on this plant"
            ))),
        }
    }

    async fn check_act(&self, tool: &str, args: &Value) -> Result<f64, ToolFailure> {
        let state = self.state()?;
        let snap = Self::snapshot(&state)?;
        match tool {
            tools::CREATE_WORK_ORDER => {
                let a: WorkOrderArgs = parse_args(args)?;
                machine_of(&snap, &a.machine)?;
                if a.reason.trim().is_empty() {
                    return Err(ToolFailure::new("reason: say why, in a sentence"));
                }
                Ok(0.0)
            }
            tools::CHANGE_SET_POINT => {
                let a: SetPointArgs = parse_args(args)?;
                machine_of(&snap, &a.machine)?;
                let range = snap.param_range(&a.machine, &a.param).ok_or_else(|| {
                    ToolFailure(format!(
                        "machine `{}` has no parameter `{}`",
                        a.machine, a.param
                    ))
                })?;
                if !(a.value.is_finite() && a.value >= range.min && a.value <= range.max) {
                    return Err(ToolFailure(format!(
                        "value {} is outside the bounds of `{}` ({} to {} {})",
                        a.value, a.param, range.min, range.max, range.unit
                    )));
                }
                let span = (range.max - range.min).max(f64::EPSILON);
                Ok((a.value - range.default).abs() / span)
            }
            other => Err(ToolFailure(format!("`{other}` does not act"))),
        }
    }

    fn vocabulary(&self) -> Vocabulary {
        let Some(snap) = self.state().ok().and_then(|s| s.live.latest()) else {
            return Vocabulary::default();
        };
        let mut params: Vec<String> = snap
            .products
            .iter()
            .flat_map(|p| &p.steps)
            .flat_map(|s| s.params.iter().map(|q| q.name.clone()))
            .collect();
        params.sort();
        params.dedup();
        Vocabulary {
            machines: snap
                .plant
                .machines
                .iter()
                .map(|m| (m.id.clone(), m.name.clone(), None))
                .collect(),
            products: snap
                .products
                .iter()
                .map(|p| (p.id.clone(), p.name.clone(), p.name_zh.clone()))
                .collect(),
            params,
            signals: vec![
                "vibration_mm_s".to_owned(),
                "temperature_rise_c".to_owned(),
                "current_a".to_owned(),
            ],
        }
    }
}

fn plant_status(snap: &Snapshot) -> Value {
    let count = |s: &str| snap.plant.machines.iter().filter(|m| m.state == s).count();
    let flagged: Vec<&str> = snap
        .plant
        .machines
        .iter()
        .filter(|m| m.anomaly)
        .map(|m| m.id.as_str())
        .collect();
    let o = snap.plant.orders;
    let (busy, idle, down, maint) = (
        count("busy"),
        count("idle"),
        count("down"),
        count("maintenance"),
    );
    let machines: Vec<Value> = snap
        .plant
        .machines
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "name": m.name, "state": m.state, "order": m.order, "queue": m.queue,
                "utilisation": m.utilisation, "anomaly_score": m.anomaly_score, "anomaly": m.anomaly,
                "health": m.health, "rul_h": m.rul_h,
            })
        })
        .collect();
    let flagged_en = if flagged.is_empty() {
        "no anomalies flagged".to_owned()
    } else {
        format!("anomalies flagged on {}", flagged.join(", "))
    };
    let flagged_zh = if flagged.is_empty() {
        "无异常报警".to_owned()
    } else {
        format!("{} 有异常报警", flagged.join("、"))
    };
    json!({
        "at": snap.plant.sim_time.to_rfc3339(),
        "machines": machines,
        "orders": o,
        "summary": say(
            format!("At {}: {} machines — {busy} busy, {idle} idle, {down} down, {maint} in maintenance; {flagged_en}. Orders: {} open ({} released), {} late, {} completed.",
                snap.plant.sim_time.to_rfc3339(), snap.plant.machines.len(), o.open, o.released, o.late, o.completed),
            format!("{}：共 {} 台设备，{busy} 台加工中，{idle} 台空闲，{down} 台停机，{maint} 台保养中；{flagged_zh}。订单：未完成 {}（已下达 {}），延期 {}，已完成 {}。",
                snap.plant.sim_time.to_rfc3339(), snap.plant.machines.len(), o.open, o.released, o.late, o.completed),
        ),
    })
}

fn kpis(snap: &Snapshot) -> Value {
    let k = &snap.plant.kpis;
    json!({
        "at": snap.plant.sim_time.to_rfc3339(),
        "kpis": k,
        "summary": say(
            format!("KPIs so far: OEE {} (availability {}, performance {}, quality {}); throughput {:.0} good units/day; scrap {}; on-time delivery {}; downtime {:.1} h; energy {:.2} kWh per good unit.",
                pct(k.oee), pct(k.availability), pct(k.performance), pct(k.quality), k.throughput, pct(k.scrap_rate), pct(k.on_time_delivery), k.downtime_h, k.energy_kwh_per_good_unit),
            format!("当前指标：OEE {}（可用率 {}，性能率 {}，质量率 {}）；产出 {:.0} 件合格品/天；报废率 {}；准时交付率 {}；停机 {:.1} 小时；单件能耗 {:.2} kWh。",
                pct(k.oee), pct(k.availability), pct(k.performance), pct(k.quality), k.throughput, pct(k.scrap_rate), pct(k.on_time_delivery), k.downtime_h, k.energy_kwh_per_good_unit),
        ),
    })
}

async fn telemetry(
    state: &AppState,
    snap: &Snapshot,
    a: TelemetryArgs,
) -> Result<Value, ToolFailure> {
    machine_of(snap, &a.machine)?;
    let hours = a.hours.unwrap_or(8.0);
    if !(hours.is_finite() && hours > 0.0 && hours <= 168.0) {
        return Err(ToolFailure::new(
            "hours must be more than 0 and at most 168",
        ));
    }
    let to = snap.plant.sim_time.0;
    let from = to - (hours * 3_600_000.0) as i64;
    let mut series = machine_series(state, snap, &a.machine).await?;
    if let Some(signal) = &a.signal {
        let known: Vec<String> = series.iter().map(|s| s.metric.to_string()).collect();
        series.retain(|s| *s.metric == **signal);
        if series.is_empty() {
            return Err(ToolFailure(format!(
                "machine `{}` has no signal `{signal}`; its signals are {}",
                a.machine,
                known.join(", ")
            )));
        }
    }
    let mut signals = Vec::new();
    for s in &series {
        if let Some(v) = series_stats(state, s, from, to).await? {
            signals.push(v);
        }
    }
    let line = |v: &Value| {
        format!(
            "{} min {:.2} / mean {:.2} / max {:.2} (last minute {:.2})",
            v["signal"].as_str().unwrap_or(""),
            v["min"].as_f64().unwrap_or(f64::NAN),
            v["mean"].as_f64().unwrap_or(f64::NAN),
            v["max"].as_f64().unwrap_or(f64::NAN),
            v["last_minute_mean"].as_f64().unwrap_or(f64::NAN)
        )
    };
    let lines: Vec<String> = signals.iter().map(line).collect();
    let body = if lines.is_empty() {
        "no readings".to_owned()
    } else {
        lines.join("; ")
    };
    Ok(json!({
        "machine": a.machine, "hours": hours, "signals": signals,
        "summary": say(
            format!("{} over the last {hours} h: {body}.", a.machine),
            format!("{} 最近 {hours} 小时：{body}。", a.machine),
        ),
    }))
}

fn orders(snap: &Snapshot, a: OrdersArgs) -> Value {
    let limit = a.limit.unwrap_or(20).clamp(1, 200) as usize;
    let keep = |o: &&crate::live::OrderNow| {
        let status = match a.status {
            OrderFilter::Open => o.completed.is_none(),
            OrderFilter::Late => o.late,
            OrderFilter::Completed => o.completed.is_some(),
            OrderFilter::All => true,
        };
        status && a.product.as_ref().is_none_or(|p| *p == o.product)
    };
    let all: Vec<&crate::live::OrderNow> = snap.orders.iter().filter(keep).collect();
    let shown: Vec<&&crate::live::OrderNow> = all.iter().take(limit).collect();
    let list: Vec<String> = shown
        .iter()
        .take(5)
        .map(|o| {
            format!(
                "{} {}×{} due {}",
                o.id,
                o.quantity,
                o.product,
                o.due.to_rfc3339()
            )
        })
        .collect();
    let filter = serde_json::to_value(a.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let filter_zh = match a.status {
        OrderFilter::Open => "未完成",
        OrderFilter::Late => "延期",
        OrderFilter::Completed => "已完成",
        OrderFilter::All => "全部",
    };
    json!({
        "count": all.len(),
        "orders": shown,
        "summary": say(
            format!("{} {filter} orders{}{}", all.len(), if list.is_empty() { "." } else { ", e.g. " }, list.join("; ")),
            format!("{filter_zh}订单 {} 个{}{}", all.len(), if list.is_empty() { "。" } else { "，例如：" }, list.join("；")),
        ),
    })
}

fn schedule(snap: &Snapshot, a: ScheduleArgs) -> Result<Value, ToolFailure> {
    let plan = snap.plan.as_ref().ok_or_else(|| {
        ToolFailure::new(
            "no plan yet: the scheduling skill plans at the next dispatch (tier 2 and up)",
        )
    })?;
    if let Some(m) = &a.machine {
        machine_of(snap, m)?;
    }
    let score = plan.score(&plan.schedule);
    let now = snap.plant.sim_time;
    let mut bars: Vec<crate::live::Bar> = plan
        .bars(&plan.schedule)
        .into_iter()
        .filter(|b| a.machine.as_ref().is_none_or(|m| *m == b.machine))
        .collect();
    bars.sort_by_key(|b| b.start);
    let next: Vec<String> = bars
        .iter()
        .filter(|b| b.end >= now)
        .take(5)
        .map(|b| {
            format!(
                "{} on {} {} to {}",
                b.job,
                b.machine,
                b.start.to_rfc3339(),
                b.end.to_rfc3339()
            )
        })
        .collect();
    let shown: Vec<&crate::live::Bar> = bars.iter().take(100).collect();
    Ok(json!({
        "at": plan.at.to_rfc3339(), "decision": plan.decision, "score": score, "bars": shown,
        "summary": say(
            format!("Plan made at {} ({}): {} jobs, ends {:.1} h after it was made, weighted tardiness {:.1} h. Next: {}.",
                plan.at.to_rfc3339(), plan.decision.as_deref().unwrap_or("-"), plan.jobs.len(), score.makespan_h, score.weighted_tardiness_h, next.join("; ")),
            format!("计划生成于 {}（{}）：{} 个任务，计划完工 {:.1} 小时，加权拖期 {:.1} 小时。接下来：{}。",
                plan.at.to_rfc3339(), plan.decision.as_deref().unwrap_or("-"), plan.jobs.len(), score.makespan_h, score.weighted_tardiness_h, next.join("；")),
        ),
    }))
}

async fn explain(state: &AppState, snap: &Snapshot, a: MachineArgs) -> Result<Value, ToolFailure> {
    let m = machine_of(snap, &a.machine)?;
    let now = snap.plant.sim_time.0;
    let flagged: Vec<&crate::live::AnomalyMark> = snap
        .anomalies
        .iter()
        .filter(|x| x.machine == m.id)
        .take(20)
        .collect();
    let day = now - 86_400_000;
    let mut signals = Vec::new();
    for s in machine_series(state, snap, &m.id).await? {
        let recent = series_stats(state, &s, now - 3_600_000, now).await?;
        let baseline = series_stats(state, &s, day, now - 3_600_000).await?;
        if let (Some(r), Some(b)) = (recent, baseline) {
            let (rm, bm) = (
                r["mean"].as_f64().unwrap_or(0.0),
                b["mean"].as_f64().unwrap_or(0.0),
            );
            let change = if bm.abs() > f64::EPSILON {
                (rm - bm) / bm.abs()
            } else {
                0.0
            };
            signals.push(json!({ "signal": s.metric, "last_hour_mean": rm, "day_mean": bm, "change": change }));
        }
    }
    let events: Vec<&crate::live::EventNow> = snap
        .plant
        .recent_events
        .iter()
        .filter(|e| e.machine.as_deref() == Some(m.id.as_str()))
        .take(10)
        .collect();
    let decisions: Vec<Decision> = state
        .store
        .decisions(500)
        .await
        .map_err(store_failure)?
        .into_iter()
        .filter(|d| d.output.to_string().contains(&format!("\"{}\"", m.id)))
        .take(5)
        .collect();
    let biggest = signals.iter().max_by(|x, y| {
        x["change"]
            .as_f64()
            .unwrap_or(0.0)
            .abs()
            .total_cmp(&y["change"].as_f64().unwrap_or(0.0).abs())
    });
    let shift = biggest.map_or_else(String::new, |b| {
        format!(
            "{} last hour {:.2} vs {:.2} over the day ({:+.0} %)",
            b["signal"].as_str().unwrap_or(""),
            b["last_hour_mean"].as_f64().unwrap_or(0.0),
            b["day_mean"].as_f64().unwrap_or(0.0),
            b["change"].as_f64().unwrap_or(0.0) * 100.0
        )
    });
    let score = m
        .anomaly_score
        .map_or_else(|| "warming up".to_owned(), |s| format!("{s:.2}"));
    let health = m.health.map_or_else(|| "unknown".to_owned(), pct);
    let rul = m
        .rul_h
        .map_or_else(|| "unknown".to_owned(), |r| format!("{r:.0} h"));
    let last = flagged
        .first()
        .map(|f| f.at.to_rfc3339())
        .unwrap_or_else(|| "-".to_owned());
    Ok(json!({
        "machine": m.id, "state": m.state, "anomaly_score": m.anomaly_score, "anomaly": m.anomaly,
        "flagged": flagged, "signals": signals, "events": events, "decisions": decisions,
        "health": m.health, "rul_h": m.rul_h, "age_h": m.age_h, "failures": m.failures,
        "summary": say(
            format!("{}: anomaly score {score}{}; {} points flagged recently (last at {last}); {shift}; health (no failure in the next 24 running hours) {health}, median remaining life {rul}, {:.0} running hours since the last renewal, {} failures so far; {} ledger decisions mention it.",
                m.id, if m.anomaly { " (flagged now)" } else { "" }, flagged.len(), m.age_h, m.failures, decisions.len()),
            format!("{}：异常分数 {score}{}；近期标记 {} 个异常点（最近一次 {last}）；{shift}；健康度（未来 24 运行小时内不故障的概率）{health}，剩余寿命中位数 {rul}，距上次修复已运行 {:.0} 小时，累计故障 {} 次；台账中有 {} 条相关决策。",
                m.id, if m.anomaly { "（当前报警）" } else { "" }, flagged.len(), m.age_h, m.failures, decisions.len()),
        ),
    }))
}

async fn quote(snap: &Snapshot, a: QuoteArgs) -> Result<Value, ToolFailure> {
    if !(1..=100_000).contains(&a.quantity) {
        return Err(ToolFailure::new("quantity must be 1 to 100000"));
    }
    let product = snap
        .products
        .iter()
        .find(|p| p.id == a.product)
        .ok_or_else(|| {
            let ids: Vec<&str> = snap.products.iter().map(|p| p.id.as_str()).collect();
            ToolFailure(format!(
                "no product `{}`; the products are {}",
                a.product,
                ids.join(", ")
            ))
        })?;
    let plan = snap
        .plan
        .clone()
        .ok_or_else(|| ToolFailure::new("no plan yet to quote against"))?;
    let release = ((snap.plant.sim_time.0 - plan.at.0) / 1000).max(0);
    let mut operations = Vec::new();
    for step in &product.steps {
        let alternatives: Vec<aifactory_schedule::Alternative> = step
            .minutes_per_unit
            .iter()
            .filter_map(|(m, minutes)| {
                let machine = plan.machines.iter().position(|x| x == m)?;
                let seconds = (step.setup_min + minutes * f64::from(a.quantity)) * 60.0;
                Some(aifactory_schedule::Alternative {
                    machine,
                    duration: seconds.round().max(1.0) as i64,
                })
            })
            .collect();
        if alternatives.is_empty() {
            return Err(ToolFailure(format!(
                "step `{}` of {} has no machine in the plan",
                step.name, product.id
            )));
        }
        operations.push(aifactory_schedule::Operation {
            alternatives,
            frozen: None,
        });
    }
    let job = aifactory_schedule::Job {
        release,
        due: None,
        weight: 1.0,
        family: None,
        operations,
    };
    let problem = plan.problem.clone();
    let quoted =
        tokio::task::spawn_blocking(move || aifactory_skills::ctp::quote(&problem, &job, 2_000, 7))
            .await
            .map_err(|_| ToolFailure::new("quoting failed"))?
            .map_err(|e| ToolFailure(e.to_string()))?;
    let done = Timestamp(plan.at.0 + quoted.completion * 1000);
    let days = (done.0 - snap.plant.sim_time.0) as f64 / 86_400_000.0;
    Ok(json!({
        "product": product.id, "quantity": a.quantity, "completion": done.to_rfc3339(),
        "days_from_now": days, "added_tardiness_h": quoted.added_tardiness / 3600.0,
        "summary": say(
            format!("{} × {} ({}) could be finished by {} ({days:.1} days from now), fitted around the orders already promised (they would take on {:.1} h more weighted tardiness).",
                a.quantity, product.id, product.name, done.to_rfc3339(), quoted.added_tardiness / 3600.0),
            format!("{} 件 {}（{}）最早可于 {} 完成（距今 {days:.1} 天），已避让已承诺订单（其加权拖期增加 {:.1} 小时）。",
                a.quantity, product.id, product.name_zh.as_deref().unwrap_or(&product.name), done.to_rfc3339(), quoted.added_tardiness / 3600.0),
        ),
    }))
}

async fn shift_report(
    state: &AppState,
    snap: &Snapshot,
    a: ShiftReportArgs,
) -> Result<Value, ToolFailure> {
    let hours = a.hours.unwrap_or(8.0);
    if !(hours.is_finite() && hours > 0.0 && hours <= 24.0) {
        return Err(ToolFailure::new("hours must be more than 0 and at most 24"));
    }
    let now = snap.plant.sim_time.0;
    let from = now - (hours * 3_600_000.0) as i64;
    let in_shift = |t: Timestamp| t.0 >= from && t.0 <= now;
    let completed: Vec<&crate::live::OrderNow> = snap
        .orders
        .iter()
        .filter(|o| o.completed.is_some_and(in_shift))
        .collect();
    let units: u32 = completed.iter().map(|o| o.quantity).sum();
    let stoppages: Vec<String> = snap
        .plant
        .recent_events
        .iter()
        .filter(|e| in_shift(e.at))
        .filter(|e| {
            matches!(
                name_of(&e.kind).as_str(),
                "failure" | "repair_started" | "maintenance_started" | "machine_down"
            )
        })
        .map(|e| {
            format!(
                "{} {} {}",
                e.at.to_rfc3339(),
                e.machine.as_deref().unwrap_or("-"),
                name_of(&e.kind)
            )
        })
        .collect();
    let anomalies: Vec<String> = snap
        .anomalies
        .iter()
        .filter(|x| in_shift(x.at))
        .map(|x| format!("{} {}", x.machine, x.signal))
        .collect();
    let late: Vec<&str> = snap
        .orders
        .iter()
        .filter(|o| o.late && o.completed.is_none())
        .map(|o| o.id.as_str())
        .collect();
    let pending = state
        .store
        .actions(Some("pending"), 50)
        .await
        .map_err(store_failure)?;
    let k = &snap.plant.kpis;
    let en = format!(
        "Shift report (draft), {hours} h to {}:\n- Output: {} orders completed, {units} units.\n- KPIs so far: OEE {}, scrap {}, on-time {}.\n- Stoppages: {}.\n- Anomalies flagged: {}.\n- Late open orders: {}.\n- Actions awaiting approval: {}.",
        snap.plant.sim_time.to_rfc3339(),
        completed.len(),
        pct(k.oee),
        pct(k.scrap_rate),
        pct(k.on_time_delivery),
        if stoppages.is_empty() {
            "none".to_owned()
        } else {
            stoppages.join("; ")
        },
        if anomalies.is_empty() {
            "none".to_owned()
        } else {
            format!(
                "{} ({})",
                anomalies.len(),
                anomalies
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        if late.is_empty() {
            "none".to_owned()
        } else {
            late.join(", ")
        },
        if pending.is_empty() {
            "none".to_owned()
        } else {
            pending
                .iter()
                .map(|p| format!("{} {}", p.id, p.tool))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    let zh = format!(
        "班报（草稿），截至 {} 的 {hours} 小时：\n- 产出：完成订单 {} 个，共 {units} 件。\n- 当前指标：OEE {}，报废率 {}，准时交付率 {}。\n- 停机：{}。\n- 异常报警：{}。\n- 延期未完成订单：{}。\n- 待审批操作：{}。",
        snap.plant.sim_time.to_rfc3339(),
        completed.len(),
        pct(k.oee),
        pct(k.scrap_rate),
        pct(k.on_time_delivery),
        if stoppages.is_empty() {
            "无".to_owned()
        } else {
            stoppages.join("；")
        },
        if anomalies.is_empty() {
            "无".to_owned()
        } else {
            format!(
                "{} 次（{}）",
                anomalies.len(),
                anomalies
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("、")
            )
        },
        if late.is_empty() {
            "无".to_owned()
        } else {
            late.join("、")
        },
        if pending.is_empty() {
            "无".to_owned()
        } else {
            pending
                .iter()
                .map(|p| format!("{} {}", p.id, p.tool))
                .collect::<Vec<_>>()
                .join("、")
        },
    );
    Ok(json!({
        "from": Timestamp(from).to_rfc3339(), "to": snap.plant.sim_time.to_rfc3339(),
        "orders_completed": completed.len(), "units": units, "stoppages": stoppages,
        "anomalies": anomalies.len(), "late_orders": late, "pending_actions": pending.len(),
        "summary": say(en, zh),
    }))
}

fn name_of<T: serde::Serialize>(value: &T) -> String {
    crate::name_of(value)
}

/// Carries out an acting tool: the decision goes into the ledger first, then the command to
/// the plant.
async fn execute(
    state: &AppState,
    snap: &Snapshot,
    tool: &str,
    args: &Value,
    approved_by: Option<&str>,
    action: Option<&str>,
) -> Result<Value, ToolFailure> {
    let number = state
        .human_decisions
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    let (prefix, executed_by, model) = match approved_by {
        Some(person) => ("H", ExecutedBy::Human, format!("approved-by:{person}")),
        None => ("G", ExecutedBy::Agent, "agent-policy".to_owned()),
    };
    let (skill, output, command, en, zh) = match tool {
        tools::CREATE_WORK_ORDER => {
            let a: WorkOrderArgs = parse_args(args)?;
            machine_of(snap, &a.machine)?;
            let kind = serde_json::to_value(a.kind).unwrap_or(Value::Null);
            (
                "maintenance_work_order",
                json!({ "machine": a.machine, "action": "maintenance", "kind": kind, "reason": a.reason }),
                aifactory_plant::Action::StartMaintenance {
                    machine: a.machine.clone(),
                },
                format!(
                    "Work order created: {} is taken out for service when it is next free.",
                    a.machine
                ),
                format!("已创建工单：{} 将在下一次空闲时停机保养。", a.machine),
            )
        }
        tools::CHANGE_SET_POINT => {
            let a: SetPointArgs = parse_args(args)?;
            let range = snap.param_range(&a.machine, &a.param).ok_or_else(|| {
                ToolFailure(format!(
                    "machine `{}` has no parameter `{}`",
                    a.machine, a.param
                ))
            })?;
            if !(a.value.is_finite() && a.value >= range.min && a.value <= range.max) {
                return Err(ToolFailure(format!(
                    "value {} is outside {}..{}",
                    a.value, range.min, range.max
                )));
            }
            (
                "set_point_change",
                json!({ "machine": a.machine, "param": a.param, "value": a.value, "unit": range.unit, "reason": a.reason }),
                aifactory_plant::Action::SetPoint {
                    machine: a.machine.clone(),
                    param: a.param.clone(),
                    value: a.value,
                },
                format!(
                    "Set-point changed: {} {} = {} {} from its next operation on.",
                    a.machine, a.param, a.value, range.unit
                ),
                format!(
                    "设定值已变更：{} 的 {} 自下一道工序起为 {} {}。",
                    a.machine, a.param, a.value, range.unit
                ),
            )
        }
        other => return Err(ToolFailure(format!("`{other}` does not act"))),
    };
    let decision = Decision {
        id: format!("{prefix}-{}-{number:04}", state.started_ms),
        at: snap.plant.sim_time,
        skill: skill.to_owned(),
        stage: LifecycleStage::Production,
        inputs_ref: action.map_or_else(|| "agent".to_owned(), |a| format!("action:{a}")),
        model,
        model_version: "1".to_owned(),
        output,
        confidence: None,
        executed_by,
        outcome: None,
    };
    state
        .store
        .record_decision(&decision)
        .await
        .map_err(store_failure)?;
    let sent = state.live.command(&decision, command);
    state.live.announce(decision.clone());
    Ok(json!({
        "decision": decision.id, "sent_to_plant": sent.is_ok(), "command": sent.as_ref().ok(),
        "command_error": sent.err().map(|e| e.to_string()),
        "summary": say(format!("{en} Ledger entry {}.", decision.id), format!("{zh}台账记录 {}。", decision.id)),
    }))
}

// ---- routes ----

fn agent_of(state: &AppState) -> Result<Arc<aifactory_agent::Agent>, ApiError> {
    state.agent.get().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is not configured on this server",
        )
    })
}

fn agent_error(e: AgentError) -> ApiError {
    match e {
        AgentError::Store(e) => e.into(),
        AgentError::UnknownTool(_) | AgentError::NoAction(_) => {
            ApiError::new(StatusCode::NOT_FOUND, e.to_string())
        }
        AgentError::AlreadyDecided { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        AgentError::NotApprover { .. } => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
        AgentError::BadRequest(_) => ApiError {
            field: Some("question".to_owned()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        },
    }
}

/// The web UI's requests count as `web`, a bearer token's as `api`.
fn via(session: Option<&Extension<crate::SessionId>>) -> &'static str {
    if session.is_some() { "web" } else { "api" }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AskBody {
    /// The request, in English or Chinese (at most 4,000 bytes).
    question: String,
}

#[utoipa::path(post, path = "/api/v1/agent/ask", tag = "agent", request_body = AskBody, responses((status = 200, description = "The answer, its tool calls and what became of them", body = serde_json::Value), (status = 422, body = ApiError), (status = 503, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn ask(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    session: Option<Extension<crate::SessionId>>,
    body: Result<Json<AskBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|r| crate::body_error(&r))?;
    let agent = agent_of(&state)?;
    let answer = agent
        .ask(&caller, via(session.as_ref()), &body.question)
        .await
        .map_err(agent_error)?;
    Ok(Json(serde_json::to_value(answer).unwrap_or(Value::Null)))
}

#[utoipa::path(get, path = "/api/v1/agent/tools", tag = "agent", responses((status = 200, description = "Every tool with its JSON Schema and read/act class", body = serde_json::Value)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn list_tools() -> Json<Value> {
    Json(json!({ "tools": tools::catalogue() }))
}

#[utoipa::path(post, path = "/api/v1/agent/tools/{name}", tag = "agent", params(("name" = String, Path, description = "Tool name")), request_body(content = serde_json::Value, description = "The tool's arguments object"), responses((status = 200, description = "done, queued (held for approval), refused or failed", body = serde_json::Value), (status = 404, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn call_tool(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    session: Option<Extension<crate::SessionId>>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(arguments) = body.map_err(|r| crate::body_error(&r))?;
    let agent = agent_of(&state)?;
    let (conversation, outcome) = agent
        .call_tool(&caller, via(session.as_ref()), &name, arguments)
        .await
        .map_err(agent_error)?;
    let mut body = serde_json::to_value(outcome).unwrap_or(Value::Null);
    body["conversation"] = Value::from(conversation);
    Ok(Json(body))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ActionsQuery {
    /// pending, approved, rejected, executed or failed [default: all].
    status: Option<String>,
    /// At most this many, newest first (1 to 1000; default 100).
    limit: Option<u32>,
}

/// An action as the API and the CLI show it.
pub fn action_json(a: &aifactory_store::StoredAction) -> Value {
    json!({
        "id": a.id, "created_at": a.created_at.to_rfc3339(), "conversation": a.conversation,
        "tool": a.tool, "arguments": serde_json::from_str::<Value>(&a.arguments).unwrap_or(Value::Null),
        "requested_by": a.requested_by, "role": a.role, "via": a.via, "status": a.status,
        "decided_by": a.decided_by, "decided_at": a.decided_at.map(|t| t.to_rfc3339()),
        "result": a.result.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()),
    })
}

#[utoipa::path(get, path = "/api/v1/agent/actions", tag = "agent", params(ActionsQuery), responses((status = 200, description = "Acting tool calls and their status, newest first", body = serde_json::Value), (status = 400, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn actions(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ActionsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|r| crate::plant::query_error(&r))?;
    const STATUSES: [&str; 5] = ["pending", "approved", "rejected", "executed", "failed"];
    if let Some(s) = &q.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError {
            field: Some("status".into()),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "status must be pending, approved, rejected, executed or failed",
            )
        });
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError {
            field: Some("limit".into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "limit must be between 1 and 1000")
        });
    }
    let agent = agent_of(&state)?;
    let list = agent
        .actions(q.status.as_deref(), limit)
        .await
        .map_err(agent_error)?;
    let approvers: Value = tools::catalogue()
        .iter()
        .filter(|t| t.kind == tools::ToolKind::Act)
        .map(|t| (t.name.to_owned(), json!(agent.policy().approvers(t.name))))
        .collect::<serde_json::Map<String, Value>>()
        .into();
    Ok(Json(
        json!({ "actions": list.iter().map(action_json).collect::<Vec<_>>(), "approvers": approvers }),
    ))
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    via: &str,
    id: &str,
    approve: bool,
) -> Result<Json<Value>, ApiError> {
    let agent = agent_of(state)?;
    let action = agent
        .decide(caller, via, id, approve)
        .await
        .map_err(agent_error)?;
    Ok(Json(json!({ "action": action_json(&action) })))
}

#[utoipa::path(post, path = "/api/v1/agent/actions/{id}/approve", tag = "agent", params(("id" = String, Path)), responses((status = 200, description = "Approved and executed (or failed): the action as it now stands", body = serde_json::Value), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn approve(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    session: Option<Extension<crate::SessionId>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(&state, &caller, via(session.as_ref()), &id, true).await
}

#[utoipa::path(post, path = "/api/v1/agent/actions/{id}/reject", tag = "agent", params(("id" = String, Path)), responses((status = 200, body = serde_json::Value), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn reject(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    session: Option<Extension<crate::SessionId>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(&state, &caller, via(session.as_ref()), &id, false).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// One conversation's steps.
    conversation: Option<String>,
    /// The most recent steps (1 to 10000; default 500).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/agent/audit", tag = "agent", params(AuditQuery), responses((status = 200, description = "Audit log steps in order", body = serde_json::Value), (status = 400, body = ApiError)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn audit(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|r| crate::plant::query_error(&r))?;
    let limit = q.limit.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError {
            field: Some("limit".into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "limit must be between 1 and 10000")
        });
    }
    let steps = state.store.audit(q.conversation.as_deref(), limit).await?;
    let steps: Vec<Value> = steps
        .into_iter()
        .map(|e| {
            json!({
                "conversation": e.conversation, "step": e.step, "at": e.at.to_rfc3339(), "user": e.user,
                "role": e.role, "via": e.via, "kind": e.kind,
                "content": serde_json::from_str::<Value>(&e.content).unwrap_or(Value::String(e.content)),
            })
        })
        .collect();
    Ok(Json(json!({ "steps": steps })))
}

#[utoipa::path(get, path = "/api/v1/agent/usage", tag = "agent", responses((status = 200, description = "Model tokens and time per user, skill and model", body = serde_json::Value)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn usage(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let totals = state.store.usage_totals().await?;
    let rows: Vec<Value> = totals
        .into_iter()
        .map(|t| {
            json!({
                "user": t.user, "skill": t.skill, "model": t.model, "calls": t.calls,
                "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens, "elapsed_ms": t.elapsed_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "usage": rows })))
}
