//! The live view of a plant as the web UI and the API read it, built from the plant-state
//! projection and the master data alone — the same for the twin and for a real plant — and the
//! acknowledgements of commands as plant events for the store.

use aifactory_core::{EventKind, PlantEvent, Timestamp};
use aifactory_plant::projection::{Projection, state_word};
use aifactory_plant::{Ack, Command, PlantTime};
use aifactory_server::live::{MachineNow, OrderNow, ParamRange, ProductInfo, StepInfo};
use std::collections::BTreeMap;

/// Every machine as the projection sees it, `elapsed_h` hours into the run. What only a
/// host with more knowledge can say (anomaly scores, health, planned services) is left empty.
pub(crate) fn machines_now(projection: &Projection, elapsed_h: f64) -> Vec<MachineNow> {
    let elapsed_h = elapsed_h.max(1e-9);
    projection
        .master()
        .plant()
        .machines
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let totals = projection.totals(i).cloned().unwrap_or_default();
            let run_h = totals.run_ms as f64 / 3_600_000.0;
            let code = projection.state(i).map_or(30_000, |s| s.code);
            let running = projection.running(i);
            MachineNow {
                id: spec.id.clone(),
                name: spec.name.clone(),
                group: spec.work_centre.clone(),
                state: state_word(code).to_owned(),
                state_code: code,
                order: running.map(|r| r.work_order.clone()),
                operation: running.map(|r| r.step),
                queue: projection.queue(i),
                utilisation: (run_h / elapsed_h).clamp(0.0, 1.0),
                anomaly_score: None,
                anomaly: false,
                failures: totals.failures,
                maintenances: totals.services,
                age_h: 0.0,
                health: None,
                rul_h: None,
                next_service: None,
            }
        })
        .collect()
}

/// Brings `orders` (every customer order of the run by id) up to what the projection knows
/// at `now`. Orders the projection has forgotten (completed before its dedup horizon) keep
/// their last state, so the list covers the whole run.
pub(crate) fn update_orders(
    projection: &Projection,
    start: Timestamp,
    now: Timestamp,
    orders: &mut BTreeMap<String, OrderNow>,
) {
    let master = projection.master();
    for (id, o) in projection.sales_orders() {
        let at = |t: PlantTime| Timestamp(start.0 + t.0 as i64);
        let received = at(o.received);
        let due = o.due.map_or(received, at);
        let completed = o.completed.map(at);
        orders.insert(
            id.clone(),
            OrderNow {
                id: id.clone(),
                product: master
                    .plant()
                    .products
                    .get(o.product)
                    .map(|p| p.id.clone())
                    .unwrap_or_default(),
                quantity: o.quantity,
                delivered: o.delivered.min(o.quantity),
                received,
                due,
                released: o.released,
                completed,
                status: match (completed, o.released) {
                    (Some(_), _) => "completed",
                    (None, true) => "in_progress",
                    (None, false) => "waiting",
                }
                .to_owned(),
                late: o.due.is_some() && completed.unwrap_or(now) > due,
            },
        );
    }
}

/// The plant's products as the live view carries them.
pub(crate) fn product_infos(plant: &aifactory_core::Plant) -> Vec<ProductInfo> {
    plant
        .products
        .iter()
        .map(|p| ProductInfo {
            id: p.id.clone(),
            name: p.name.clone(),
            name_zh: p.name_zh.clone(),
            steps: p
                .routing
                .iter()
                .map(|s| StepInfo {
                    name: s.name.clone(),
                    minutes_per_unit: s.times.iter().map(|(m, t)| (m.clone(), *t)).collect(),
                    setup_min: s.setup_min,
                    params: s
                        .params
                        .iter()
                        .map(|q| ParamRange {
                            name: q.name.clone(),
                            unit: q.unit.clone(),
                            min: q.min,
                            max: q.max,
                            default: q.default,
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// An acknowledgement as a plant event; `outcome` marks the one that settled its command.
pub(crate) fn ack_event(
    ack: &Ack,
    command: Option<&Command>,
    outcome: bool,
    contradiction: Option<String>,
) -> PlantEvent {
    let mut detail = serde_json::json!({
        "command": ack.command,
        "status": ack.status.as_str(),
        "outcome": outcome,
    });
    if let Some(c) = command {
        detail["decision"] = serde_json::json!(c.decision);
        detail["action"] = serde_json::to_value(&c.action).unwrap_or_default();
    }
    if let Some(reason) = &ack.reason {
        detail["reason"] = serde_json::json!(reason);
    }
    if let Some(v) = ack.read_back {
        detail["read_back"] = serde_json::json!(v);
    }
    if let Some(c) = contradiction {
        detail["contradiction"] = serde_json::json!(c);
    }
    PlantEvent {
        at: ack.at,
        kind: EventKind::CommandAck,
        machine: command.and_then(|c| c.action.machine()).map(str::to_owned),
        order: None,
        detail,
    }
}
