//! The projection over random event streams: it never panics, never counts a unit twice when
//! two sources report one operation, and gives the same state when events are duplicated or
//! arrive out of order within the reorder window.

use aifactory_core::{EventKind, Plant, PlantEvent, Timestamp};
use aifactory_plant::projection::{
    Arrival, DecisionPoint, Offered, Projection, ProjectionConfig, ProjectionError, StateCode,
};
use aifactory_plant::{MasterData, PlantTime};
use proptest::prelude::*;
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, OnceLock};

const WINDOW_MS: u64 = 60_000;

fn master() -> Arc<MasterData> {
    static MASTER: OnceLock<Arc<MasterData>> = OnceLock::new();
    MASTER
        .get_or_init(|| {
            let path =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plants/hangzhou-auto-parts.toml");
            Arc::new(MasterData::new(
                Plant::load(&path).unwrap_or_else(|e| panic!("{e}")),
            ))
        })
        .clone()
}

fn start() -> Timestamp {
    master().plant().start().0
}

fn projection() -> Projection {
    Projection::new(
        master(),
        ProjectionConfig {
            reorder_window_ms: WINDOW_MS,
            ..ProjectionConfig::default()
        },
    )
}

fn event(
    at_ms: u64,
    kind: EventKind,
    machine: &str,
    order: &str,
    detail: serde_json::Value,
) -> PlantEvent {
    PlantEvent {
        at: Timestamp(start().0 + at_ms as i64),
        kind,
        machine: (!machine.is_empty()).then(|| machine.to_owned()),
        order: (!order.is_empty()).then(|| order.to_owned()),
        detail,
    }
}

/// A consistent floor: each step picks a machine and what happens to it next.
fn stream(steps: &[(usize, u8, u64, u32, u32)]) -> Vec<Arrival> {
    let master = master();
    let machines: Vec<String> = master.machine_ids().map(str::to_owned).collect();
    let product = master.plant().products[0].id.clone();
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        Idle,
        Busy(u32),
        Down(u32),
        Service,
    }
    let mut state = vec![S::Idle; machines.len()];
    let mut t = 0u64;
    let mut orders = 0u32;
    let mut out = Vec::new();
    let mut push = |t: u64, kind, m: &str, order: &str, detail| {
        let seq = out.len() as u64;
        out.push(Arrival {
            id: format!("e{seq}"),
            source: "machine".to_owned(),
            seq,
            event: event(t, kind, m, order, detail),
        });
    };
    for &(m, action, dt, good, scrapped) in steps {
        let m = m % machines.len();
        t += dt;
        let id = machines[m].as_str();
        state[m] = match (state[m], action % 2) {
            (S::Idle, 0) => {
                orders += 1;
                push(
                    t,
                    EventKind::OperationStarted,
                    id,
                    &format!("WO-{orders}"),
                    json!({"product": product, "step": 0, "quantity": good + scrapped, "setup_s": f64::from(scrapped) * 7.5}),
                );
                S::Busy(orders)
            }
            (S::Idle, _) => {
                push(t, EventKind::MaintenanceStarted, id, "", json!({}));
                S::Service
            }
            (S::Busy(wo), 0) => {
                push(
                    t,
                    EventKind::OperationCompleted,
                    id,
                    &format!("WO-{wo}"),
                    json!({"product": product, "step": 0, "good": good, "scrapped": scrapped}),
                );
                S::Idle
            }
            (S::Busy(wo), _) => {
                push(
                    t,
                    EventKind::MachineFailed,
                    id,
                    &format!("WO-{wo}"),
                    json!({}),
                );
                S::Down(wo)
            }
            (S::Down(wo), _) => {
                push(t, EventKind::RepairCompleted, id, "", json!({}));
                S::Busy(wo)
            }
            (S::Service, _) => {
                push(t, EventKind::MaintenanceCompleted, id, "", json!({}));
                S::Idle
            }
        };
    }
    out
}

fn end_of(arrivals: &[Arrival]) -> PlantTime {
    let last = arrivals
        .iter()
        .map(|a| PlantTime::since(start(), a.event.at).0)
        .max()
        .unwrap_or(0);
    PlantTime(last + 3_600_000)
}

/// Feeds arrivals in the given order, then closes the horizon at `end`.
fn project(arrivals: &[Arrival], end: PlantTime) -> Projection {
    let mut p = projection();
    for a in arrivals {
        p.offer(a.clone()).unwrap_or_else(|e| panic!("{e}"));
    }
    p.advance_to(end);
    p
}

fn same_floor(a: &Projection, b: &Projection) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.kpi_inputs(), b.kpi_inputs());
    for m in 0..master().machine_ids().count() {
        prop_assert_eq!(a.totals(m), b.totals(m));
        prop_assert_eq!(a.state(m), b.state(m));
        prop_assert_eq!(a.running(m), b.running(m));
    }
    prop_assert_eq!(a.work_orders(), b.work_orders());
    Ok(())
}

fn steps() -> impl Strategy<Value = Vec<(usize, u8, u64, u32, u32)>> {
    prop::collection::vec(
        (0usize..8, 0u8..4, 0u64..900_000, 0u32..50, 0u32..5),
        1..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every event offered again (same id) changes nothing and is counted as a duplicate.
    #[test]
    fn duplicates_change_nothing(steps in steps(), picks in prop::collection::vec(any::<prop::sample::Index>(), 0..40)) {
        let arrivals = stream(&steps);
        let end = end_of(&arrivals);
        let mut with_copies = arrivals.clone();
        for pick in &picks {
            let i = pick.index(arrivals.len());
            // The copy arrives right after the original or one or two arrivals later.
            let original = with_copies
                .iter()
                .position(|a| a.id == arrivals[i].id)
                .unwrap_or(0);
            let at = (original + 1 + pick.index(3)).min(with_copies.len());
            with_copies.insert(at, arrivals[i].clone());
        }
        let once = project(&arrivals, end);
        let twice = project(&with_copies, end);
        same_floor(&once, &twice)?;
        prop_assert_eq!(twice.intake().duplicates, picks.len() as u64);
        prop_assert_eq!(twice.intake().applied, once.intake().applied);
    }

    /// Events delivered out of order, each by less than the reorder window, give the state of
    /// the events in order.
    #[test]
    fn reordering_within_the_window_changes_nothing(steps in steps(), delays in prop::collection::vec(0u64..WINDOW_MS, 120)) {
        let arrivals = stream(&steps);
        let end = end_of(&arrivals);
        let mut shuffled: Vec<(u64, usize, Arrival)> = arrivals
            .iter()
            .enumerate()
            .map(|(i, a)| (PlantTime::since(start(), a.event.at).0 + delays[i % delays.len()], i, a.clone()))
            .collect();
        shuffled.sort_by_key(|(delivered, i, _)| (*delivered, *i));
        let shuffled: Vec<Arrival> = shuffled.into_iter().map(|(_, _, a)| a).collect();
        let mut p = projection();
        for a in &shuffled {
            let (offered, _) = p.offer(a.clone()).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(offered, Offered::Accepted);
        }
        p.advance_to(end);
        same_floor(&project(&arrivals, end), &p)?;
        prop_assert_eq!(p.intake().late, 0);
    }

    /// An operator terminal reporting every completion the machine reports (before or after
    /// it, under its own ids) adds no unit.
    #[test]
    fn two_sources_never_count_a_unit_twice(steps in steps(), terminal_first in any::<bool>()) {
        let arrivals = stream(&steps);
        let end = end_of(&arrivals);
        let source = if terminal_first { "a-terminal" } else { "operator-terminal" };
        let mut both = arrivals.clone();
        let mut copies = 0;
        for a in &arrivals {
            if a.event.kind == EventKind::OperationCompleted {
                copies += 1;
                both.push(Arrival {
                    id: format!("terminal-{}", a.id),
                    source: source.to_owned(),
                    seq: a.seq,
                    event: a.event.clone(),
                });
            }
        }
        // Sorted by time, so both sources' reports land inside the window.
        both.sort_by_key(|a| a.event.at);
        let single = project(&arrivals, end);
        let double = project(&both, end);
        prop_assert_eq!(single.kpi_inputs().op_units_processed, double.kpi_inputs().op_units_processed);
        prop_assert_eq!(single.kpi_inputs().op_units_good, double.kpi_inputs().op_units_good);
        same_floor(&single, &double)?;
        prop_assert_eq!(double.intake().double_reports, copies);
    }

    /// Arbitrary events — unknown machines, wrong field types, any detail — never panic: each
    /// is applied or refused with a reason, and the KPIs stay finite.
    #[test]
    fn arbitrary_events_never_panic(
        events in prop::collection::vec(
            (0usize..16, prop::option::of("[A-Z]{4}-0[0-9]|TURN-01|MILL-01|[a-z]{0,3}"), prop::option::of("[A-Z]{2}-[0-9]{1,3}"), any::<i64>(), prop::collection::vec(("product|step|quantity|good|scrapped|setup_s|ideal_s|code|raw|material|due|[a-z_]{1,9}", prop_oneof![
                any::<i64>().prop_map(|v| json!(v)),
                any::<f64>().prop_map(|v| json!(v)),
                "[A-Z0-9-]{0,8}".prop_map(|v| json!(v)),
                Just(json!(null)),
                Just(json!("P-SHAFT-IN")),
                (1u32..24).prop_map(|c| json!(c * 10_000)),
                (0u32..5).prop_map(|c| json!(c)),
            ]), 0..6)),
            0..60,
        )
    ) {
        let kinds = [
            EventKind::OrderReceived, EventKind::OrderReleased, EventKind::OrderCompleted,
            EventKind::OperationStarted, EventKind::OperationCompleted, EventKind::MachineFailed,
            EventKind::RepairCompleted, EventKind::MaintenanceStarted,
            EventKind::MaintenanceCompleted, EventKind::Stockout, EventKind::PurchasePlaced,
            EventKind::PurchaseReceived, EventKind::UnitsScrapped, EventKind::MachineState,
            EventKind::CommandAck, EventKind::WorkOrderReleased,
        ];
        let mut p = projection();
        for (i, (kind, machine, order, at, fields)) in events.into_iter().enumerate() {
            let mut detail = serde_json::Map::new();
            for (k, v) in fields {
                detail.insert(k, v);
            }
            let arrival = Arrival {
                id: format!("x{i}"),
                source: "fuzz".to_owned(),
                seq: i as u64,
                event: PlantEvent {
                    // Mostly within a few hours, now and then anywhere up to centuries ahead.
                    at: Timestamp(start().0.saturating_add(if at % 7 == 0 { at } else { at % 10_000_000 })),
                    kind: kinds[kind],
                    machine,
                    order,
                    detail: serde_json::Value::Object(detail),
                },
            };
            if let Err(e) = p.offer(arrival) {
                prop_assert!(e.to_string().starts_with(&format!("event x{i} (")), "{}", e);
            }
        }
        p.advance_to(PlantTime(20_000_000_000));
        let k = p.kpis();
        prop_assert!(k.oee.is_finite() && (0.0..=1.0).contains(&k.oee), "{}", k.oee);
    }
}

#[test]
fn refusals_name_the_event_and_what_is_wrong() {
    let mut p = projection();
    let cases = [
        (
            event(0, EventKind::MachineFailed, "PRESS-99", "", json!({})),
            "event r (machine_failed): machine `PRESS-99` is not in the plant file",
        ),
        (
            event(0, EventKind::MachineFailed, "", "", json!({})),
            "event r (machine_failed): machine is missing",
        ),
        (
            event(
                0,
                EventKind::OperationStarted,
                "TURN-01",
                "WO-1",
                json!({"product": "NOPE", "step": 0, "quantity": 1}),
            ),
            "event r (operation_started): product `NOPE` is not in the plant file",
        ),
        (
            event(
                0,
                EventKind::OperationStarted,
                "TURN-01",
                "WO-1",
                json!({"product": "P-SHAFT-IN", "step": 99, "quantity": 1}),
            ),
            "event r (operation_started): step is past the product's routing",
        ),
        (
            event(
                0,
                EventKind::OperationStarted,
                "TURN-01",
                "WO-1",
                json!({"product": "P-SHAFT-IN", "step": 0, "quantity": 1, "setup_s": -5}),
            ),
            "event r (operation_started): setup_s is missing or not a finite number ≥ 0",
        ),
        (
            event(
                0,
                EventKind::OperationCompleted,
                "TURN-01",
                "WO-1",
                json!({"step": 0, "good": "ten"}),
            ),
            "event r (operation_completed): good is missing or not a whole number of at most 4294967295",
        ),
        (
            event(
                0,
                EventKind::OrderReceived,
                "",
                "SO-1",
                json!({"product": "P-SHAFT-IN", "quantity": 5, "due": "next week"}),
            ),
            "event r (order_received): due is not an RFC 3339 time",
        ),
        (
            event(
                0,
                EventKind::PurchaseReceived,
                "",
                "PO-1",
                json!({"material": "UNOBTAINIUM", "quantity": 5}),
            ),
            "event r (purchase_received): material `UNOBTAINIUM` is not in the plant file",
        ),
        (
            event(
                0,
                EventKind::WorkOrderReleased,
                "",
                "WO-1",
                json!({"product": "P-SHAFT-IN"}),
            ),
            "event r (work_order_released): quantity is missing or not a whole number of at most 4294967295",
        ),
        (
            event(
                0,
                EventKind::WorkOrderReleased,
                "",
                "WO-1",
                json!({"product": "P-SHAFT-IN", "quantity": 5, "sales_order": 7}),
            ),
            "event r (work_order_released): sales_order is missing or not text",
        ),
        (
            event(
                0,
                EventKind::WorkOrderReleased,
                "",
                "",
                json!({"product": "P-SHAFT-IN", "quantity": 5}),
            ),
            "event r (work_order_released): order is missing",
        ),
    ];
    for (e, expected) in cases {
        let refused = p
            .offer(Arrival {
                id: "r".to_owned(),
                source: "test".to_owned(),
                seq: 0,
                event: e,
            })
            .map(|_| "accepted".to_owned())
            .unwrap_or_else(|e| e.to_string());
        assert_eq!(refused, expected);
    }
    let early = p.offer(Arrival {
        id: "early".to_owned(),
        source: "test".to_owned(),
        seq: 0,
        event: PlantEvent {
            at: Timestamp(start().0 - 1),
            ..event(0, EventKind::MachineFailed, "TURN-01", "", json!({}))
        },
    });
    assert!(
        matches!(early, Err(ProjectionError::BeforeStart { .. })),
        "{early:?}"
    );
    // Nothing refused was applied or remembered.
    assert_eq!(p.intake().applied, 0);
    assert_eq!(p.derived_state(0), Some(StateCode::NoOrder));
}

#[test]
fn decision_points_follow_the_floor() {
    let mut p = projection();
    let turn = master().machine_index("TURN-01").expect("TURN-01");
    let product = master().plant().products[0].id.clone();
    let arrivals = [
        event(
            1_000,
            EventKind::OrderReceived,
            "",
            "SO-1",
            json!({"product": product, "quantity": 10, "due": "2026-03-09T00:00:00Z"}),
        ),
        event(
            2_000,
            EventKind::OrderReleased,
            "",
            "SO-1",
            json!({"quantity": 10}),
        ),
        event(
            3_000,
            EventKind::OperationStarted,
            "TURN-01",
            "WO-1",
            json!({"product": product, "step": 0, "quantity": 10, "setup_s": 60}),
        ),
        event(
            600_000,
            EventKind::MachineFailed,
            "TURN-01",
            "WO-1",
            json!({}),
        ),
        event(
            900_000,
            EventKind::RepairCompleted,
            "TURN-01",
            "",
            json!({}),
        ),
        event(
            1_200_000,
            EventKind::OperationCompleted,
            "TURN-01",
            "WO-1",
            json!({"product": product, "step": 0, "good": 9, "scrapped": 1}),
        ),
    ];
    let mut points = Vec::new();
    for (i, e) in arrivals.into_iter().enumerate() {
        let (_, mut got) = p
            .offer(Arrival {
                id: format!("d{i}"),
                source: "mes".to_owned(),
                seq: i as u64,
                event: e,
            })
            .unwrap_or_else(|e| panic!("{e}"));
        points.append(&mut got);
    }
    points.append(&mut p.advance_to(PlantTime(1_200_000)));
    let kinds: Vec<&str> = points
        .iter()
        .map(|d| match d {
            DecisionPoint::OrderReceived { .. } => "received",
            DecisionPoint::OrderReleased { .. } => "released",
            DecisionPoint::Breakdown { .. } => "breakdown",
            DecisionPoint::Repaired { .. } => "repaired",
            DecisionPoint::MachineFree { .. } => "free",
            DecisionPoint::MaterialReceived { .. } => "material",
            DecisionPoint::WorkReady { .. } => "ready",
        })
        .collect();
    // The operation's end frees the machine and readies the work order's next step.
    assert_eq!(
        kinds,
        [
            "received",
            "released",
            "breakdown",
            "repaired",
            "free",
            "ready"
        ]
    );
    let totals = p.totals(turn).expect("TURN-01");
    assert_eq!(totals.setup_ms, 60_000);
    assert_eq!(totals.breakdown_ms, 300_000);
    assert_eq!(totals.run_ms, 1_200_000 - 3_000 - 60_000 - 300_000);
    assert_eq!((totals.units_processed, totals.units_good), (10, 9));
    // No ideal time sent: the routing's standard time of the units made stands in.
    assert!(totals.ideal_run_s > 0.0);
    assert_eq!(p.derived_state(turn), Some(StateCode::NoOrder));
    assert_eq!(p.work_orders()["WO-1"].next_step, 1);
    assert!(p.sales_orders()["SO-1"].released);
}

#[test]
fn a_reported_state_keeps_its_source_words_and_drives_the_time_model() {
    let mut p = projection();
    let turn = master().machine_index("TURN-01").expect("TURN-01");
    let reports = [
        (0, 10_000, "Execute"),
        (600_000, 180_000, "Held: spindle alarm 2041"),
        (900_000, 100_000, "MTConnect FunctionalMode SETUP"),
        (960_000, 10_000, "Execute"),
        (1_560_000, 160_000, "no shift"),
    ];
    let mut points = Vec::new();
    for (i, (at, code, raw)) in reports.into_iter().enumerate() {
        let (_, mut got) = p
            .offer(Arrival {
                id: format!("s{i}"),
                source: "plc".to_owned(),
                seq: i as u64,
                event: event(
                    at,
                    EventKind::MachineState,
                    "TURN-01",
                    "",
                    json!({"code": code, "raw": raw}),
                ),
            })
            .unwrap_or_else(|e| panic!("{e}"));
        points.append(&mut got);
        if i == 1 {
            points.append(&mut p.advance_to(PlantTime(at)));
            assert_eq!(
                p.state(turn).map(|s| (s.code, s.raw)),
                Some((180_000, Some("Held: spindle alarm 2041".to_owned())))
            );
        }
    }
    points.append(&mut p.advance_to(PlantTime(1_800_000)));
    let t = p.totals(turn).expect("TURN-01");
    assert_eq!(
        (t.run_ms, t.breakdown_ms, t.setup_ms, t.idle_ms),
        (600_000 + 600_000, 300_000, 60_000, 240_000)
    );
    assert_eq!(t.failures, 1);
    assert!(points.contains(&DecisionPoint::Breakdown {
        machine: turn,
        at: PlantTime(600_000)
    }));
    assert!(points.contains(&DecisionPoint::Repaired {
        machine: turn,
        at: PlantTime(900_000)
    }));
    assert!(points.contains(&DecisionPoint::MachineFree {
        machine: turn,
        at: PlantTime(1_560_000)
    }));
    let refused = p.offer(Arrival {
        id: "bad".to_owned(),
        source: "plc".to_owned(),
        seq: 9,
        event: event(
            1_900_000,
            EventKind::MachineState,
            "TURN-01",
            "",
            json!({"code": 12_345}),
        ),
    });
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.to_string()),
        Err(
            "event bad (machine_state): code is not a UMH state code (10000, 20000, … 220000)"
                .to_owned()
        )
    );
}

fn arrival(id: &str, source: &str, seq: u64, e: PlantEvent) -> Arrival {
    Arrival {
        id: id.to_owned(),
        source: source.to_owned(),
        seq,
        event: e,
    }
}

#[test]
fn events_past_the_dedup_horizon_or_ahead_of_their_receipt_are_refused() {
    let mut p = Projection::new(
        master(),
        ProjectionConfig {
            reorder_window_ms: WINDOW_MS,
            dedup_horizon_ms: 3_600_000,
            max_ahead_ms: 60_000,
        },
    );
    let failed = |at| event(at, EventKind::MachineFailed, "TURN-01", "", json!({}));
    p.offer(arrival("a", "plc", 0, failed(10_000_000)))
        .unwrap_or_else(|e| panic!("{e}"));
    p.advance_to(PlantTime(10_000_000));
    let old = p.offer(arrival("b", "plc", 1, failed(10_000_000 - 3_600_001)));
    assert_eq!(
        old.map(|_| ()).map_err(|e| e.to_string()),
        Err("event b (machine_failed): 3600001 ms behind what is applied, past the dedup horizon: a duplicate could not be told apart".to_owned())
    );
    // A clock a day fast is refused against the host's receive time, and changes nothing.
    let fast = p.offer_received(
        arrival("c", "plc", 2, failed(96_400_000)),
        PlantTime(10_000_000),
    );
    assert!(
        matches!(
            fast,
            Err(ProjectionError::AheadOfReceipt {
                ahead_ms: 86_400_000,
                ..
            })
        ),
        "{fast:?}"
    );
    assert_eq!(p.applied_to(), PlantTime(10_000_000));
    let on_time = p.offer_received(
        arrival("d", "plc", 3, failed(10_030_000)),
        PlantTime(10_000_000),
    );
    assert!(matches!(on_time, Ok((Offered::Accepted, _))), "{on_time:?}");
}

#[test]
fn one_failure_reported_twice_or_by_two_paths_is_one_failure() {
    let mut p = projection();
    let turn = master().machine_index("TURN-01").expect("TURN-01");
    let events = [
        (
            "plc",
            event(
                1_000,
                EventKind::MachineState,
                "TURN-01",
                "",
                json!({"code": 180_000, "raw": "alarm"}),
            ),
        ),
        (
            "mes",
            event(2_000, EventKind::MachineFailed, "TURN-01", "", json!({})),
        ),
        (
            "plc",
            event(3_000, EventKind::MachineFailed, "TURN-01", "", json!({})),
        ),
        (
            "mes",
            event(60_000, EventKind::RepairCompleted, "TURN-01", "", json!({})),
        ),
        (
            "plc",
            event(61_000, EventKind::RepairCompleted, "TURN-01", "", json!({})),
        ),
        (
            "mes",
            event(
                62_000,
                EventKind::MaintenanceCompleted,
                "TURN-01",
                "",
                json!({}),
            ),
        ),
    ];
    let mut points = Vec::new();
    for (i, (source, e)) in events.into_iter().enumerate() {
        points.append(
            &mut p
                .offer(arrival(&format!("f{i}"), source, i as u64, e))
                .unwrap_or_else(|e| panic!("{e}"))
                .1,
        );
    }
    points.append(&mut p.advance_to(PlantTime(100_000)));
    let t = p.totals(turn).expect("TURN-01");
    assert_eq!((t.failures, t.breakdown_ms, t.services), (1, 59_000, 0));
    let count = |f: fn(&DecisionPoint) -> bool| points.iter().filter(|d| f(d)).count();
    assert_eq!(count(|d| matches!(d, DecisionPoint::Breakdown { .. })), 1);
    assert_eq!(count(|d| matches!(d, DecisionPoint::Repaired { .. })), 1);
    assert_eq!(count(|d| matches!(d, DecisionPoint::MachineFree { .. })), 1);
}

#[test]
fn no_shift_does_not_end_a_stop_and_a_start_reported_twice_is_set_up_once() {
    let mut p = projection();
    let turn = master().machine_index("TURN-01").expect("TURN-01");
    let product = master().plant().products[0].id.clone();
    let start = json!({"product": product, "step": 0, "quantity": 5, "setup_s": 100});
    let events = [
        (
            "plc",
            event(
                0,
                EventKind::MachineState,
                "TURN-01",
                "",
                json!({"code": 60_000, "raw": "starved"}),
            ),
        ),
        (
            "plc",
            event(
                10_000,
                EventKind::MachineState,
                "TURN-01",
                "",
                json!({"code": 160_000, "raw": "no shift"}),
            ),
        ),
        (
            "mes",
            event(
                20_000,
                EventKind::OperationStarted,
                "TURN-01",
                "WO-9",
                start.clone(),
            ),
        ),
        (
            "terminal",
            event(
                50_000,
                EventKind::OperationStarted,
                "TURN-01",
                "WO-9",
                start,
            ),
        ),
    ];
    for (i, (source, e)) in events.into_iter().enumerate() {
        p.offer(arrival(&format!("n{i}"), source, i as u64, e))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    p.advance_to(PlantTime(220_000));
    let t = p.totals(turn).expect("TURN-01");
    // 20 s stopped (the stop outlives "no shift"), then 100 s of set-up, once, then running.
    assert_eq!(
        (t.breakdown_ms, t.setup_ms, t.run_ms, t.idle_ms),
        (20_000, 100_000, 100_000, 0)
    );
    assert_eq!(t.failures, 0);
}

#[test]
fn finished_orders_and_old_ids_are_forgotten_after_the_horizon() {
    let mut p = Projection::new(
        master(),
        ProjectionConfig {
            reorder_window_ms: WINDOW_MS,
            dedup_horizon_ms: 3_600_000,
            max_ahead_ms: 60_000,
        },
    );
    let turn = master().machine_index("TURN-01").expect("TURN-01");
    let product = master().plant().products[0].id.clone();
    // 500 work orders, each ending with its lot scrapped at the first step, 10 minutes apart.
    for n in 0..500u64 {
        let t = n * 600_000;
        let wo = format!("WO-{n}");
        let events = [
            event(
                t,
                EventKind::OperationStarted,
                "TURN-01",
                &wo,
                json!({"product": product, "step": 0, "quantity": 1}),
            ),
            event(
                t + 300_000,
                EventKind::OperationCompleted,
                "TURN-01",
                &wo,
                json!({"product": product, "step": 0, "good": 0, "scrapped": 1}),
            ),
        ];
        for (i, e) in events.into_iter().enumerate() {
            p.offer(arrival(&format!("{wo}/{i}"), "mes", 2 * n + i as u64, e))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    p.advance_to(PlantTime(500 * 600_000));
    // 83 hours went by: only orders finished within the last hour (and the sweep's hour) stay.
    assert!(
        p.work_orders().len() <= 13,
        "{} work orders kept",
        p.work_orders().len()
    );
    assert!(p.work_orders().values().all(|w| w.finished.is_some()));
    assert_eq!(p.totals(turn).map(|t| t.units_processed), Some(500));
}

/// A work order released to the floor waits in the queue of every machine that can run its next
/// step until it starts; finished, its good units count as delivered to its customer order (and a
/// component's units do not).
#[test]
fn a_released_work_order_queues_then_delivers_to_its_customer_order() {
    let master = master();
    let product = master.plant().products[0].id.clone();
    let steps = master.steps(0);
    let eligible = |step: usize| -> Vec<usize> {
        master
            .step(0, step)
            .map(|alts| alts.iter().map(|(m, _, _)| *m).collect())
            .unwrap_or_default()
    };
    let mut p = projection();
    let mut seq = 0;
    let mut offer = |p: &mut Projection, e: PlantEvent| {
        seq += 1;
        p.offer(arrival(&format!("e{seq}"), "mes", seq, e))
            .unwrap_or_else(|e| panic!("{e}"));
    };
    offer(
        &mut p,
        event(
            0,
            EventKind::OrderReceived,
            "",
            "SO-1",
            json!({"product": product, "quantity": 10}),
        ),
    );
    offer(
        &mut p,
        event(
            1_000,
            EventKind::WorkOrderReleased,
            "",
            "WO-1",
            json!({"product": product, "quantity": 10, "sales_order": "SO-1"}),
        ),
    );
    offer(
        &mut p,
        event(
            1_000,
            EventKind::WorkOrderReleased,
            "",
            "WO-2",
            json!({"product": product, "quantity": 4, "sales_order": "SO-1", "parent": "WO-1"}),
        ),
    );
    p.advance_to(PlantTime(2 * WINDOW_MS));
    let first = eligible(0);
    assert!(!first.is_empty());
    for &m in &first {
        assert_eq!(p.queue(m), 2, "both wait at machine {m}");
    }
    // WO-1 runs every step on the first eligible machine; WO-2 (a component) finishes too.
    let mut t = 2 * WINDOW_MS;
    for step in 0..steps {
        let m = eligible(step)[0];
        let id = master.machine_id(m).unwrap_or_default().to_owned();
        for wo in ["WO-1", "WO-2"] {
            t += 1_000;
            offer(
                &mut p,
                event(
                    t,
                    EventKind::OperationStarted,
                    &id,
                    wo,
                    json!({"product": product, "step": step, "quantity": 10}),
                ),
            );
            t += 1_000;
            offer(
                &mut p,
                event(
                    t,
                    EventKind::OperationCompleted,
                    &id,
                    wo,
                    json!({"step": step, "good": 9, "scrapped": 1}),
                ),
            );
        }
    }
    p.advance_to(PlantTime(t + 2 * WINDOW_MS));
    for m in 0..master.machine_ids().count() {
        assert_eq!(p.queue(m), 0, "nothing waits at machine {m}");
    }
    let order = &p.sales_orders()["SO-1"];
    assert_eq!(order.delivered, 9, "WO-1's good units; WO-2 is a component");
    assert!(p.work_orders()["WO-1"].finished.is_some());
}

#[test]
fn a_due_date_in_milliseconds_is_the_same_as_in_rfc_3339() {
    let product = master().plant().products[0].id.clone();
    let due = Timestamp(start().0 + 86_400_000);
    let mut by_ms = projection();
    let mut by_text = projection();
    for (p, value) in [
        (&mut by_ms, json!(due.0)),
        (&mut by_text, json!(due.to_rfc3339())),
    ] {
        p.offer(arrival(
            "o",
            "erp",
            1,
            event(
                0,
                EventKind::OrderReceived,
                "",
                "SO-1",
                json!({"product": product, "quantity": 3, "due": value}),
            ),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        p.advance_to(PlantTime(2 * WINDOW_MS));
    }
    assert_eq!(
        by_ms.sales_orders()["SO-1"].due,
        Some(PlantTime(86_400_000))
    );
    assert_eq!(by_ms.sales_orders(), by_text.sales_orders());
    let mut p = projection();
    for bad in [json!(-5), json!(1.5), json!(true)] {
        let refused = p.offer(arrival(
            "b",
            "erp",
            1,
            event(
                0,
                EventKind::OrderReceived,
                "",
                "SO-2",
                json!({"product": product, "quantity": 3, "due": bad}),
            ),
        ));
        assert!(
            matches!(&refused, Err(ProjectionError::Field { field: "due", .. })),
            "{bad}: {refused:?}"
        );
    }
}

#[test]
fn released_and_advanced_work_waits_where_its_next_step_can_run() {
    let master = master();
    let product = master.plant().products[0].id.clone();
    let eligible = |step: usize| -> Vec<usize> {
        master
            .step(0, step)
            .map(|alts| alts.iter().map(|(m, _, _)| *m).collect())
            .unwrap_or_default()
    };
    let due = Timestamp(start().0 + 7_200_000);
    let mut p = projection();
    let mut points = Vec::new();
    let mut seq = 0;
    let mut offer = |p: &mut Projection, e: PlantEvent, points: &mut Vec<DecisionPoint>| {
        seq += 1;
        let (_, got) = p
            .offer(arrival(&format!("e{seq}"), "mes", seq, e))
            .unwrap_or_else(|e| panic!("{e}"));
        points.extend(got);
    };
    offer(
        &mut p,
        event(
            0,
            EventKind::OrderReceived,
            "",
            "SO-1",
            json!({"product": product, "quantity": 10, "due": due.0}),
        ),
        &mut points,
    );
    offer(
        &mut p,
        event(
            1_000,
            EventKind::WorkOrderReleased,
            "",
            "WO-7",
            json!({"product": product, "quantity": 10, "sales_order": "SO-1"}),
        ),
        &mut points,
    );
    points.extend(p.advance_to(PlantTime(2 * WINDOW_MS)));
    assert!(
        points.contains(&DecisionPoint::WorkReady {
            work_order: "WO-7".into(),
            step: 0,
            at: PlantTime(1_000),
        }),
        "{points:?}"
    );
    let m0 = eligible(0)[0];
    let waiting = p.waiting_for(m0);
    assert_eq!(waiting.len(), 1);
    let (id, wo) = waiting[0];
    assert_eq!(id, "WO-7");
    assert_eq!(
        wo.due,
        Some(PlantTime(7_200_000)),
        "the customer order's due date"
    );
    assert_eq!(
        (wo.released, wo.ready_since),
        (PlantTime(1_000), PlantTime(1_000))
    );
    assert!(p.is_free(m0));
    assert_eq!(p.last_product(m0), None);
    // Its first step runs and ends: it is ready for step 1 where that step can run.
    let machine = master.machine_id(m0).unwrap_or_default().to_owned();
    let t = 3 * WINDOW_MS;
    offer(
        &mut p,
        event(
            t,
            EventKind::OperationStarted,
            &machine,
            "WO-7",
            json!({"product": product, "step": 0, "quantity": 10}),
        ),
        &mut points,
    );
    points.clear();
    offer(
        &mut p,
        event(
            t + 60_000,
            EventKind::OperationCompleted,
            &machine,
            "WO-7",
            json!({"step": 0, "good": 10}),
        ),
        &mut points,
    );
    points.extend(p.advance_to(PlantTime(t + 60_000 + 2 * WINDOW_MS)));
    assert_eq!(p.last_product(m0), Some(0));
    if master.steps(0) > 1 {
        assert!(
            points.contains(&DecisionPoint::WorkReady {
                work_order: "WO-7".into(),
                step: 1,
                at: PlantTime(t + 60_000),
            }),
            "{points:?}"
        );
        let m1 = eligible(1)[0];
        let waiting = p.waiting_for(m1);
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].1.ready_since, PlantTime(t + 60_000));
        assert_eq!(waiting[0].1.next_step, 1);
    }
}
