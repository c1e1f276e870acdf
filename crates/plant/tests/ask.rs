//! A plant that asks for its decisions: what a policy answers, turned into commands by
//! `Ask::put` and read back by `Ask::answer`, is what the plant's own loop would have got from
//! the policy directly; requests survive JSON bit for bit; bad requests are refused naming what
//! is wrong.

use aifactory_core::{Plant, Timestamp};
use aifactory_plant::ask::{Answer, AnswerError, Ask};
use aifactory_plant::{
    Action, DispatchJob, Floor, Lot, MachineId, MachineView, MasterData, MaterialView, OrderView,
    ParamSpec, PlantTime, Policy, PurchaseRequest, QueuedOp,
};
use proptest::prelude::*;
use std::path::Path;

fn master() -> MasterData {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plants/hangzhou-auto-parts.toml");
    MasterData::new(Plant::load(&path).unwrap_or_else(|e| panic!("{e}")))
}

/// Answers what it was told to, and remembers the floors it was shown.
#[derive(Default)]
struct Scripted {
    pick: usize,
    maintain: bool,
    hold: Option<PlantTime>,
    values: Vec<f64>,
    release: Vec<usize>,
    /// Lots for every order it opens, where set.
    lots: Option<Vec<Lot>>,
    purchase: Vec<PurchaseRequest>,
    floors: usize,
}

impl Policy for Scripted {
    fn name(&self) -> String {
        "scripted".into()
    }
    fn dispatch(&mut self, _: PlantTime, _: MachineId, _: &[QueuedOp]) -> usize {
        self.pick
    }
    fn start_maintenance(&mut self, _: &MachineView) -> bool {
        self.maintain
    }
    fn process_params(&mut self, _: MachineId, _: usize, _: usize, _: &[ParamSpec]) -> Vec<f64> {
        self.values.clone()
    }
    fn release(&mut self, _: PlantTime, _: &[OrderView]) -> Vec<usize> {
        self.release.clone()
    }
    fn lots(&mut self, _: PlantTime, order: &OrderView, lot_size: u32) -> Vec<Lot> {
        self.lots
            .clone()
            .unwrap_or_else(|| aifactory_plant::standard_lots(order.quantity, lot_size))
    }
    fn purchase(&mut self, _: PlantTime, _: &[MaterialView]) -> Vec<PurchaseRequest> {
        self.purchase.clone()
    }
    fn wants_floor(&self) -> bool {
        true
    }
    fn plan(&mut self, _: &Floor) {
        self.floors += 1;
    }
    fn hold_until(&mut self, _: PlantTime, _: MachineId, _: &[QueuedOp]) -> Option<PlantTime> {
        self.hold
    }
}

fn op(job: u32, step: usize) -> QueuedOp {
    QueuedOp {
        job,
        product: 0,
        step,
        quantity: 10,
        due: PlantTime(86_400_000),
        released: PlantTime(1_000),
        ready_since: PlantTime(2_000),
        processing_s: 1234.5,
    }
}

fn candidates() -> (Vec<QueuedOp>, Vec<String>) {
    let ops = vec![op(3, 0), op(7, 1), op(9, 0)];
    let ids = ops.iter().map(|o| format!("WO-{:06}", o.job)).collect();
    (ops, ids)
}

fn round_trip(ask: &Ask, policy: &mut Scripted) -> Result<Answer, AnswerError> {
    let master = master();
    let start = master.plant().start().0;
    let actions = ask.put(policy, &master, start);
    // Over the wire, in JSON.
    let json = serde_json::to_string(&actions).unwrap_or_else(|e| panic!("{e}"));
    let actions: Vec<Action> = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    ask.answer(&actions, &master, start)
}

#[test]
fn each_answer_read_back_from_its_commands_is_the_policys_own() {
    let (ops, ids) = candidates();
    let mut policy = Scripted {
        pick: 1,
        ..Scripted::default()
    };
    let dispatch = Ask::Dispatch {
        now: PlantTime(5_000),
        machine: 2,
        candidates: ops.clone(),
        orders: ids.clone(),
    };
    assert_eq!(round_trip(&dispatch, &mut policy), Ok(Answer::Dispatch(1)));
    // A pick past the end is the last candidate, as the twin takes it.
    policy.pick = 99;
    assert_eq!(round_trip(&dispatch, &mut policy), Ok(Answer::Dispatch(2)));

    let hold = Ask::HoldUntil {
        now: PlantTime(5_000),
        machine: 2,
        candidates: ops,
        orders: ids,
    };
    assert_eq!(round_trip(&hold, &mut policy), Ok(Answer::HoldUntil(None)));
    policy.hold = Some(PlantTime(7_200_000));
    assert_eq!(
        round_trip(&hold, &mut policy),
        Ok(Answer::HoldUntil(Some(PlantTime(7_200_000))))
    );

    let view = MachineView {
        machine: 1,
        now: PlantTime(9_000),
        run_h_since_maintenance: 401.25,
        recommended_interval_h: 400.0,
        last_vibration_mm_s: 3.1,
        last_temperature_c: 61.7,
        last_current_a: 12.9,
        queue_len: 2,
    };
    let maintain = Ask::StartMaintenance { view };
    assert_eq!(
        round_trip(&maintain, &mut policy),
        Ok(Answer::StartMaintenance(false))
    );
    policy.maintain = true;
    assert_eq!(
        round_trip(&maintain, &mut policy),
        Ok(Answer::StartMaintenance(true))
    );

    let pending: Vec<OrderView> = (0..4)
        .map(|order| OrderView {
            order,
            product: 0,
            quantity: 5,
            received: PlantTime(0),
            due: PlantTime(1),
        })
        .collect();
    let release = Ask::Release {
        now: PlantTime(0),
        orders: pending
            .iter()
            .map(|o| format!("SO-{:06}", o.order + 1))
            .collect(),
        pending,
    };
    // Out of range and repeated indices drop out, the rest in order, as the twin takes them.
    policy.release = vec![3, 1, 3, 17];
    assert_eq!(
        round_trip(&release, &mut policy),
        Ok(Answer::Release {
            chosen: vec![1, 3],
            lots: Default::default()
        })
    );
    // Lots the policy sized travel with the release, by order; lots that do not open the
    // order's quantity do not (the plant keeps its own rule for it).
    let sized = vec![
        Lot {
            required: 3,
            planned: 4,
        },
        Lot {
            required: 2,
            planned: 2,
        },
    ];
    policy.lots = Some(sized.clone());
    assert_eq!(
        round_trip(&release, &mut policy),
        Ok(Answer::Release {
            chosen: vec![1, 3],
            lots: [(1, sized.clone()), (3, sized)].into_iter().collect()
        })
    );
    policy.lots = Some(vec![Lot {
        required: 4,
        planned: 9,
    }]);
    assert_eq!(
        round_trip(&release, &mut policy),
        Ok(Answer::Release {
            chosen: vec![1, 3],
            lots: Default::default()
        })
    );
    policy.lots = None;

    let purchase = Ask::Purchase {
        now: PlantTime(0),
        stock: Vec::new(),
    };
    policy.purchase = vec![
        PurchaseRequest {
            material: 1,
            quantity: 250.5,
        },
        // Nothing to buy, and a material the plant does not have: no command.
        PurchaseRequest {
            material: 0,
            quantity: 0.0,
        },
        PurchaseRequest {
            material: 999,
            quantity: 5.0,
        },
    ];
    assert_eq!(
        round_trip(&purchase, &mut policy),
        Ok(Answer::Purchase(vec![PurchaseRequest {
            material: 1,
            quantity: 250.5
        }]))
    );

    let plan = Ask::Plan {
        floor: Floor {
            now: PlantTime(0),
            jobs: Vec::new(),
            machines: Vec::new(),
        },
    };
    assert_eq!(round_trip(&plan, &mut policy), Ok(Answer::Planned));
    assert_eq!(policy.floors, 1);
}

#[test]
fn set_points_come_back_per_parameter_and_a_missing_one_is_the_default() {
    let master = master();
    let (product, step, params) = master
        .plant()
        .products
        .iter()
        .enumerate()
        .find_map(|(p, prod)| {
            prod.routing
                .iter()
                .position(|s| s.params.len() >= 2)
                .map(|s| (p, s, prod.routing[s].params.len()))
        })
        .unwrap_or_else(|| panic!("the reference plant has a step with two parameters"));
    let specs: Vec<ParamSpec> = (0..params)
        .map(|i| ParamSpec {
            min: 0.0,
            max: 1000.0,
            default: 100.0 + i as f64,
        })
        .collect();
    let ask = Ask::ProcessParams {
        machine: 0,
        product,
        step,
        specs,
    };
    // The first is a real value, the second not a number: the plant keeps its default.
    let mut values = vec![0.1 + 0.2, f64::NAN];
    values.resize(params, 42.0);
    let mut policy = Scripted {
        values: values.clone(),
        ..Scripted::default()
    };
    let mut expected = values;
    expected[1] = 101.0;
    assert_eq!(
        round_trip(&ask, &mut policy),
        Ok(Answer::ProcessParams(expected))
    );
}

#[test]
fn requests_that_do_not_fit_the_plant_are_refused_naming_the_field() {
    let master = master();
    let (ops, ids) = candidates();
    let cases = [
        (
            Ask::Dispatch {
                now: PlantTime(0),
                machine: 500,
                candidates: ops.clone(),
                orders: ids.clone(),
            },
            "machine 500",
        ),
        (
            Ask::Dispatch {
                now: PlantTime(0),
                machine: 0,
                candidates: ops.clone(),
                orders: ids[..1].to_vec(),
            },
            "orders has 1 ids for 3 candidates",
        ),
        (
            Ask::HoldUntil {
                now: PlantTime(0),
                machine: 0,
                candidates: Vec::new(),
                orders: Vec::new(),
            },
            "candidates is empty",
        ),
        (
            Ask::ProcessParams {
                machine: 0,
                product: 77,
                step: 0,
                specs: Vec::new(),
            },
            "product 77",
        ),
    ];
    for (ask, expected) in cases {
        let why = ask
            .refusal(&master)
            .unwrap_or_else(|| panic!("{ask:?} was not refused"));
        assert!(why.contains(expected), "{why}");
    }
    let fine = Ask::Dispatch {
        now: PlantTime(0),
        machine: 0,
        candidates: ops.clone(),
        orders: ids.clone(),
    };
    assert_eq!(fine.refusal(&master), None);
    // A dispatch list that names no waiting job answers nothing.
    let start: Timestamp = master.plant().start().0;
    let stray = [Action::DispatchList {
        machine: master.machine_id(0).unwrap_or_default().to_owned(),
        jobs: vec![DispatchJob {
            order: "WO-999999".into(),
            step: 0,
        }],
    }];
    assert!(matches!(
        fine.answer(&stray, &master, start),
        Err(AnswerError::NoDispatch { .. })
    ));
}

proptest! {
    /// What the plant sees crosses the wire bit for bit: the same views, the same decisions.
    #[test]
    fn requests_survive_json_exactly(
        run_h in 0.0f64..1e6,
        vib in -1e3f64..1e3,
        temp in -300.0f64..3e3,
        amps in 0.0f64..1e4,
        secs in 0.0f64..1e7,
        now in 0u64..10_000_000_000,
    ) {
        let asks = [
            Ask::StartMaintenance { view: MachineView {
                machine: 3, now: PlantTime(now), run_h_since_maintenance: run_h,
                recommended_interval_h: 400.0, last_vibration_mm_s: vib,
                last_temperature_c: temp, last_current_a: amps, queue_len: 4,
            }},
            Ask::Dispatch {
                now: PlantTime(now), machine: 1,
                candidates: vec![QueuedOp { processing_s: secs, ..op(1, 0) }],
                orders: vec!["WO-000001".into()],
            },
        ];
        for ask in asks {
            let text = serde_json::to_string(&ask).unwrap_or_else(|e| panic!("{e}"));
            let back: Ask = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(back, ask);
        }
    }
}
