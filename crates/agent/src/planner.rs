//! The offline planner: with no language model configured, maps plant requests in English and
//! Chinese to tool calls. A small intent model built into the binary ([`intent`], character
//! n-grams and a softmax regression trained at first use on the paraphrases of
//! `data/intents.tsv`) chooses the tool; the request's own names — the plant's machines,
//! products, parameters and signals, its durations and numbers (`slots`) — fill the
//! arguments. It is not a language model and says so in every answer; it only ever proposes
//! calls, which pass the same policy as a model's.

pub mod intent;
mod slots;

use crate::tools::{self, Vocabulary};
use intent::{Intent, IntentModel};
use serde::Serialize;
use serde_json::{Value, json};
use slots::Reading;

/// The language of a request, and so of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn of(text: &str) -> Lang {
        if text.chars().any(|c| matches!(c as u32, 0x4E00..=0x9FFF)) {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    /// The text in this language.
    pub fn pick<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}

/// What the planner makes of a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "plan", rename_all = "snake_case")]
pub enum Plan {
    /// Call these tools in order.
    Calls { calls: Vec<(String, Value)> },
    /// The request names a task but not what it needs (say, which machine).
    Ask { question: String },
    /// Nothing it knows.
    Unknown,
}

/// Said at the start of every planner answer.
pub fn disclaimer(lang: Lang) -> &'static str {
    lang.pick(
        "Offline planner (not a language model; no model is configured): it matched your request to tools with a small built-in intent model.",
        "离线规划器（不是大语言模型；未配置模型）：用内置的小型意图模型把您的请求匹配到工具。",
    )
}

/// What the planner can do, for requests it does not know.
pub fn help(lang: Lang) -> &'static str {
    lang.pick(
        "I can: show the plant status, KPIs (OEE, scrap, on-time), a machine's telemetry, orders (open or late), the schedule, explain a machine's anomalies, run a what-if (\"what if TURN-02 is down for 6 hours\"), quote a delivery date (\"when can we deliver 500 P-GEAR-PLN\"), search the manuals and SOPs (\"how do I replace a spindle bearing\"), draft a shift report, and propose a maintenance work order or a set-point change (held for a person's approval).",
        "我可以：查看工厂状态、指标（OEE、报废率、准时交付）、设备遥测数据、订单（未完成或延期）、排产计划，解释设备异常，做假设分析（“如果 TURN-02 停机 6 小时”），报交期（“500 件 P-GEAR-PLN 什么时候能交货”），检索手册和作业规程（“如何更换主轴轴承”），起草班报，以及提出维修工单或设定值变更（需经人工审批）。",
    )
}

/// Finds a machine id in `text`: its id (any case, with or without the hyphen or leading
/// zeros), its name, or a description such as 2号磨床, 三号车床, 加工中心2, 1#炉 or lathe 3.
pub fn find_machine(text: &str, vocab: &Vocabulary) -> Option<String> {
    Reading::new(text, vocab).machine()
}

/// Finds a product by id, English name or Chinese name (or a short form no other product
/// shares, such as 输入轴 or "input shafts").
pub fn find_product(text: &str, vocab: &Vocabulary) -> Option<String> {
    Reading::new(text, vocab).product()
}

/// The model's best tool is taken when it is at least this likely.
const CONFIDENT: f32 = 0.45;

/// Words of the plant's work that make a request worth a tool even when the model is unsure.
const PLANT_WORDS: &[&str] = &[
    "machine",
    "lathe",
    "grinder",
    "furnace",
    "hobber",
    "machining cent",
    "plant",
    "line",
    "shop",
    "floor",
    "order",
    "schedule",
    "plan",
    "oee",
    "kpi",
    "scrap",
    "yield",
    "output",
    "deliver",
    "quote",
    "lead time",
    "shift",
    "report",
    "maintenance",
    "repair",
    "service",
    "work order",
    "spindle",
    "alarm",
    "anomal",
    "sensor",
    "reading",
    "manual",
    "procedure",
    "sop",
    "set-point",
    "setpoint",
    "parameter",
    "设备",
    "车床",
    "磨床",
    "炉",
    "加工中心",
    "机台",
    "机床",
    "车间",
    "工厂",
    "产线",
    "订单",
    "排产",
    "计划",
    "产量",
    "良率",
    "报废",
    "交期",
    "交货",
    "班",
    "保养",
    "维修",
    "工单",
    "主轴",
    "报警",
    "异常",
    "传感器",
    "数据",
    "规程",
    "手册",
    "参数",
    "设定",
];

/// Which intent a request is taken for: the model's best when it is confident; when it is not,
/// its likeliest tool if the request names something of the plant's or speaks of its work;
/// otherwise nothing.
fn choose(ranked: &[(Intent, f32)], reading: &Reading) -> Intent {
    // Punctuation and digits alone ask for nothing.
    if !reading
        .folded
        .chars()
        .any(|c| c.is_alphabetic() || slots::is_cjk(c))
    {
        return Intent::Other;
    }
    let (best, p) = ranked[0];
    if best != Intent::Other && p >= CONFIDENT {
        return best;
    }
    let Some(&(tool, _)) = ranked.iter().find(|(i, _)| *i != Intent::Other) else {
        return Intent::Other;
    };
    let evidence = reading.names_something() || reading.has_any(PLANT_WORDS);
    if best != Intent::Other && evidence {
        return tool;
    }
    if best == Intent::Other && p < CONFIDENT && reading.names_something() {
        return tool;
    }
    Intent::Other
}

/// What the model makes of a request: each intent with its probability, most likely first,
/// and the normalised text it read. For tracing and tests.
pub fn intents(request: &str, vocab: &Vocabulary) -> (String, Vec<(Intent, f32)>) {
    let reading = Reading::new(request, vocab);
    let normalised = reading.normalised();
    let ranked = IntentModel::builtin().classify(&normalised);
    (normalised, ranked)
}

/// Trains the built-in intent model on a thread of its own (once per process), so that the
/// first request does not wait for it; a request that comes sooner waits for the same training.
pub fn warm_up() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            let _ = IntentModel::builtin();
        });
    });
}

/// Plans the tool calls for `request`.
pub fn plan(request: &str, vocab: &Vocabulary) -> Plan {
    let lang = Lang::of(request);
    let reading = Reading::new(request, vocab);
    let ranked = IntentModel::builtin().classify(&reading.normalised());
    let intent = choose(&ranked, &reading);
    let machine = reading.machine();
    let need_machine = |example: &str| Plan::Ask {
        question: match lang {
            Lang::En => format!("Which machine? Name it by id, e.g. {example}."),
            Lang::Zh => format!("请指明哪台设备，例如 {example}。"),
        },
    };
    let call = |tool: &str, args: Value| Plan::Calls {
        calls: vec![(tool.to_owned(), args)],
    };
    match intent {
        Intent::ChangeSetPoint => {
            let Some(param) = reading.param() else {
                let known = vocab.params.join(", ");
                return Plan::Ask {
                    question: match lang {
                        Lang::En => format!(
                            "Which parameter? e.g. \"set cutting_speed on TURN-01 to 200\"; this plant has: {known}."
                        ),
                        Lang::Zh => {
                            format!(
                                "改哪个参数？例如“把 TURN-01 的 cutting_speed 改为 200”；本厂参数：{known}。"
                            )
                        }
                    },
                };
            };
            let Some(machine) = machine else {
                return need_machine("TURN-01");
            };
            let Some(value) = reading.target() else {
                return Plan::Ask {
                    question: lang
                        .pick(
                            "To what value? e.g. \"set cutting_speed on TURN-01 to 200\".",
                            "设定为多少？例如“把 TURN-01 的 cutting_speed 改为 200”。",
                        )
                        .to_owned(),
                };
            };
            call(
                tools::CHANGE_SET_POINT,
                json!({ "machine": machine, "param": param, "value": value, "reason": request }),
            )
        }
        Intent::CreateWorkOrder => {
            let Some(machine) = machine else {
                return need_machine("GRIND-02");
            };
            call(
                tools::CREATE_WORK_ORDER,
                json!({ "machine": machine, "reason": request, "kind": reading.work_kind() }),
            )
        }
        Intent::ScheduleWhatIf => {
            let Some(machine) = machine else {
                return need_machine("TURN-02");
            };
            let hours = reading
                .hours()
                .filter(|h| *h > 0.0)
                .unwrap_or(8.0)
                .min(336.0);
            call(
                tools::SCHEDULE_WHAT_IF,
                json!({ "machine": machine, "hours": hours }),
            )
        }
        Intent::QuoteDelivery => {
            let Some(product) = reading.product() else {
                return Plan::Ask {
                    question: lang
                        .pick(
                            "Which product? e.g. \"when can we deliver 500 P-GEAR-PLN\".",
                            "哪个产品？例如“500 件 P-GEAR-PLN 什么时候能交货”。",
                        )
                        .to_owned(),
                };
            };
            let quantity = reading.quantity().unwrap_or(100).clamp(1, 100_000);
            call(
                tools::QUOTE_DELIVERY,
                json!({ "product": product, "quantity": quantity }),
            )
        }
        Intent::ExplainAnomaly => {
            let Some(machine) = machine else {
                return need_machine("MILL-02");
            };
            call(tools::EXPLAIN_ANOMALY, json!({ "machine": machine }))
        }
        Intent::SearchManuals => call(
            tools::SEARCH_MANUALS,
            json!({ "query": request, "limit": 3 }),
        ),
        Intent::DraftShiftReport => {
            let mut args = json!({});
            if let Some(h) = reading.hours().filter(|h| *h > 0.0 && *h <= 24.0) {
                args["hours"] = Value::from(h);
            }
            call(tools::DRAFT_SHIFT_REPORT, args)
        }
        Intent::ShowSchedule => call(
            tools::SHOW_SCHEDULE,
            match &machine {
                Some(m) => json!({ "machine": m }),
                None => json!({}),
            },
        ),
        Intent::ListOrders => {
            let mut args = json!({ "status": reading.order_filter() });
            if let Some(p) = reading.product() {
                args["product"] = Value::from(p);
            }
            call(tools::LIST_ORDERS, args)
        }
        Intent::QueryKpis => call(tools::QUERY_KPIS, json!({})),
        Intent::QueryTelemetry => {
            let Some(machine) = machine else {
                return need_machine("MILL-01");
            };
            let mut args = json!({ "machine": machine });
            if let Some(s) = reading.signal() {
                args["signal"] = Value::from(s);
            }
            if let Some(h) = reading.hours().filter(|h| *h > 0.0) {
                args["hours"] = Value::from(h.min(168.0));
            }
            call(tools::QUERY_TELEMETRY, args)
        }
        Intent::PlantStatus => call(tools::PLANT_STATUS, json!({})),
        Intent::Other => Plan::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        let m = |id: &str, name: &str| (id.to_owned(), name.to_owned(), None);
        Vocabulary {
            machines: vec![
                m("TURN-01", "CNC lathe 1"),
                m("TURN-02", "CNC lathe 2"),
                m("MILL-03", "Gear hobber"),
                m("GRIND-02", "CNC cylindrical grinder 2"),
                m("HT-01", "Sealed-quench furnace 1"),
            ],
            products: vec![
                (
                    "P-GEAR-PLN".into(),
                    "Planetary gear".into(),
                    Some("行星齿轮".into()),
                ),
                (
                    "P-SHAFT-IN".into(),
                    "Gearbox input shaft".into(),
                    Some("变速箱输入轴".into()),
                ),
            ],
            params: vec![
                "cutting_speed".into(),
                "feed".into(),
                "axial_feed".into(),
                "carbon_potential".into(),
            ],
            signals: vec!["vibration_mm_s".into(), "current_a".into()],
        }
    }

    fn tool_of(request: &str) -> (String, Value) {
        match plan(request, &vocab()) {
            Plan::Calls { calls } => calls[0].clone(),
            other => panic!("{request}: {other:?}"),
        }
    }

    #[test]
    fn machines_are_found_by_id_name_and_chinese_description() {
        let v = vocab();
        assert_eq!(find_machine("is turn 2 ok", &v).as_deref(), Some("TURN-02"));
        assert_eq!(
            find_machine("GRIND-02 vibration", &v).as_deref(),
            Some("GRIND-02")
        );
        assert_eq!(
            find_machine("the gear hobber", &v).as_deref(),
            Some("MILL-03")
        );
        assert_eq!(
            find_machine("2号磨床振动大", &v).as_deref(),
            Some("GRIND-02")
        );
        assert_eq!(find_machine("车床1温度", &v).as_deref(), Some("TURN-01"));
        assert_eq!(find_machine("nothing here 42", &v), None);
    }

    #[test]
    fn requests_map_to_tools_with_their_arguments() {
        let (t, a) = tool_of("What if TURN-02 is down for 6 hours?");
        assert_eq!(
            (t.as_str(), a["machine"].as_str(), a["hours"].as_f64()),
            ("schedule_what_if", Some("TURN-02"), Some(6.0))
        );
        let (t, a) = tool_of("如果 2号磨床 停机 4 小时会怎样");
        assert_eq!(
            (t.as_str(), a["machine"].as_str(), a["hours"].as_f64()),
            ("schedule_what_if", Some("GRIND-02"), Some(4.0))
        );
        let (t, a) = tool_of("Set cutting_speed on TURN-01 to 210");
        assert_eq!(
            (t.as_str(), a["param"].as_str(), a["value"].as_f64()),
            ("change_set_point", Some("cutting_speed"), Some(210.0))
        );
        let (t, a) = tool_of("把 HT-01 的碳势调到 0.9");
        assert_eq!(
            (t.as_str(), a["param"].as_str(), a["value"].as_f64()),
            ("change_set_point", Some("carbon_potential"), Some(0.9))
        );
        let (t, a) = tool_of("when can we deliver 500 planetary gears");
        assert_eq!(
            (t.as_str(), a["product"].as_str(), a["quantity"].as_u64()),
            ("quote_delivery", Some("P-GEAR-PLN"), Some(500))
        );
        let (t, a) = tool_of("Create a work order to repair GRIND-02");
        assert_eq!(
            (t.as_str(), a["kind"].as_str()),
            ("create_work_order", Some("corrective"))
        );
        assert_eq!(tool_of("为 TURN-01 创建保养工单").0, "create_work_order");
        assert_eq!(
            tool_of("How do I replace a spindle bearing?").0,
            "search_manuals"
        );
        assert_eq!(tool_of("主轴振动过大怎么办").0, "search_manuals");
        assert_eq!(
            tool_of("Why is MILL-03 showing anomalies?").0,
            "explain_anomaly"
        );
        assert_eq!(tool_of("Which orders are late?").1["status"], "late");
        assert_eq!(tool_of("What's our OEE today?").0, "query_kpis");
        assert_eq!(
            tool_of("vibration of TURN-01 over the last 12 hours").1["hours"],
            12.0
        );
        assert_eq!(tool_of("起草本班班报").0, "draft_shift_report");
        assert_eq!(
            tool_of("show the schedule for MILL-03").1["machine"],
            "MILL-03"
        );
        assert_eq!(tool_of("工厂现在的状态").0, "plant_status");
        assert_eq!(tool_of("plant status").0, "plant_status");
        assert_eq!(tool_of("工厂现在的状态怎么样？").0, "plant_status");
        assert_eq!(tool_of("今天的产量怎么样？").0, "query_kpis");
        assert_eq!(
            tool_of("What is the scrap rate and on-time delivery?").0,
            "query_kpis"
        );
        assert_eq!(tool_of("what is the plan for today").0, "show_schedule");
    }

    #[test]
    fn a_task_missing_its_machine_asks_for_it_and_nonsense_is_unknown() {
        assert!(matches!(
            plan("what if the lathe is down for 3 hours", &vocab()),
            Plan::Ask { .. }
        ));
        assert!(matches!(
            plan("create a work order", &vocab()),
            Plan::Ask { .. }
        ));
        assert_eq!(plan("tell me a joke", &vocab()), Plan::Unknown);
        assert!(disclaimer(Lang::Zh).contains("不是大语言模型"));
        assert!(disclaimer(Lang::En).contains("not a language model"));
    }

    /// Requests in words the keyword rules before issue 24 did not know (each one they sent
    /// to the wrong tool, to "unknown" or to a question back, on the reference plant's names),
    /// one or more per tool and language, with the tool and the machine they name.
    const PARAPHRASES: &[(&str, &str, Option<&str>)] = &[
        ("Which machine is going to fail next?", "plant_status", None),
        (
            "Is anything stuck or broken on the floor?",
            "plant_status",
            None,
        ),
        ("哪台设备最可能先坏？", "plant_status", None),
        ("车间里有没有趴窝的机器？", "plant_status", None),
        (
            "How many good parts have we made this shift?",
            "query_kpis",
            None,
        ),
        ("这个班合格率多少？", "query_kpis", None),
        (
            "Plot the spindle load of lathe 2 for the past two hours",
            "query_telemetry",
            Some("TURN-02"),
        ),
        (
            "二号车床的振动趋势给我看看",
            "query_telemetry",
            Some("TURN-02"),
        ),
        (
            "把二号车床最近两个小时的电流曲线调出来",
            "query_telemetry",
            Some("TURN-02"),
        ),
        ("What do we still owe customers?", "list_orders", None),
        ("哪些单子要拖了？", "list_orders", None),
        (
            "What will TURN-02 work on next?",
            "show_schedule",
            Some("TURN-02"),
        ),
        ("滚齿机接下来干什么活？", "show_schedule", Some("MILL-03")),
        (
            "GRIND-02 keeps tripping, what's going on?",
            "explain_anomaly",
            Some("GRIND-02"),
        ),
        (
            "一号车床声音不对，帮我看看什么原因",
            "explain_anomaly",
            Some("TURN-01"),
        ),
        (
            "If we take grinder 2 offline for half a day, how late do the orders get?",
            "schedule_what_if",
            Some("GRIND-02"),
        ),
        (
            "要是二号车床修一个班，交期会不会受影响？",
            "schedule_what_if",
            Some("TURN-02"),
        ),
        (
            "How soon could 800 planetary gears be ready?",
            "quote_delivery",
            None,
        ),
        (
            "客户要两千件输入轴，最快哪天能发货？",
            "quote_delivery",
            None,
        ),
        (
            "What do I need to check before firing up the furnace?",
            "search_manuals",
            None,
        ),
        ("开炉前要检查哪些东西？", "search_manuals", None),
        (
            "Summarise what happened on my shift for the next crew",
            "draft_shift_report",
            None,
        ),
        (
            "这个班都发生了些什么，给下一班写个总结",
            "draft_shift_report",
            None,
        ),
        (
            "Book a PM on the hobber for next week",
            "create_work_order",
            Some("MILL-03"),
        ),
        (
            "计划下周给二号车床做一次预防性保养",
            "create_work_order",
            Some("TURN-02"),
        ),
        (
            "Bump up the feed on TURN-01 to 0.3",
            "change_set_point",
            Some("TURN-01"),
        ),
        (
            "一号车床的进给量改到0.3",
            "change_set_point",
            Some("TURN-01"),
        ),
    ];

    #[test]
    fn paraphrases_the_keyword_rules_missed_reach_their_tool() {
        let mut wrong = Vec::new();
        for (request, tool, machine) in PARAPHRASES {
            let (chosen, args) = match plan(request, &vocab()) {
                Plan::Calls { calls } => calls[0].clone(),
                other => (format!("{other:?}"), Value::Null),
            };
            if chosen != *tool || args["machine"].as_str() != *machine {
                wrong.push(format!("{request}: {chosen} {args}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        for lang in [Lang::En, Lang::Zh] {
            for t in tools::catalogue() {
                assert!(
                    PARAPHRASES
                        .iter()
                        .any(|(r, tool, _)| *tool == t.name && Lang::of(r) == lang),
                    "a {lang:?} paraphrase for {}",
                    t.name
                );
            }
        }
    }

    #[test]
    fn arguments_come_from_paraphrased_slots() {
        let (_, a) = tool_of("如果2号磨床维修半天，会影响交期吗？");
        assert_eq!(a["hours"], 12.0);
        let (_, a) = tool_of("要是二号车床停一个班，计划会推迟多少？");
        assert_eq!(
            (a["machine"].as_str(), a["hours"].as_f64()),
            (Some("TURN-02"), Some(8.0))
        );
        let (_, a) = tool_of("What if lathe 1 is out for two hours?");
        assert_eq!(
            (a["machine"].as_str(), a["hours"].as_f64()),
            (Some("TURN-01"), Some(2.0))
        );
        let (_, a) = tool_of("客户要两千件输入轴，最快哪天能发货？");
        assert_eq!(
            (a["product"].as_str(), a["quantity"].as_u64()),
            (Some("P-SHAFT-IN"), Some(2000))
        );
        let (_, a) = tool_of("把二号车床最近两个小时的电流曲线调出来");
        assert_eq!(
            (a["signal"].as_str(), a["hours"].as_f64()),
            (Some("current_a"), Some(2.0))
        );
        let (_, a) = tool_of("一号车床的进给量改到0.3");
        assert_eq!(
            (a["param"].as_str(), a["value"].as_f64()),
            (Some("feed"), Some(0.3))
        );
        let (_, a) = tool_of("1号炉坏了，找人修一下");
        assert_eq!(
            (a["machine"].as_str(), a["kind"].as_str()),
            (Some("HT-01"), Some("corrective"))
        );
        let (_, a) = tool_of("Which orders have shipped?");
        assert_eq!(a["status"], "completed");
    }

    #[test]
    fn chinese_and_english_machine_descriptions_resolve() {
        let v = vocab();
        for (text, id) in [
            ("三号车床", None),
            ("二号车床的温度", Some("TURN-02")),
            ("车床2", Some("TURN-02")),
            ("车床二号", Some("TURN-02")),
            ("车床一直报警", None),
            ("2#磨床", Some("GRIND-02")),
            ("1#炉", Some("HT-01")),
            ("第二台车床", Some("TURN-02")),
            ("滚齿机", Some("MILL-03")),
            ("ＴＵＲＮ－０１的振动", Some("TURN-01")),
            ("TURN-01最近", Some("TURN-01")),
            ("lathe #2", Some("TURN-02")),
            ("the second lathe", Some("TURN-02")),
            ("grinder no. 2", Some("GRIND-02")),
            ("furnace one", Some("HT-01")),
            ("the lathe", None),
        ] {
            assert_eq!(find_machine(text, &v).as_deref(), id, "{text}");
        }
        let reference = intent::reference_vocabulary();
        for (text, id) in [
            ("the old lathe", Some("TURN-04")),
            ("老磨床", Some("GRIND-03")),
            ("VMC-2", Some("MILL-02")),
            ("#2磨床", Some("GRIND-02")),
            ("三号车床", Some("TURN-03")),
            ("三坐标", Some("QC-01")),
            ("the furnace", None),
        ] {
            assert_eq!(find_machine(text, &reference).as_deref(), id, "{text}");
        }
    }

    #[test]
    fn the_same_request_always_gets_the_same_plan() {
        let corpus = intent::Corpus::builtin();
        let training = intent::Training::default();
        let examples = corpus.examples(training.per_template);
        let a = IntentModel::fit(&examples, &training);
        let b = IntentModel::fit(&examples, &training);
        assert!(a == b, "training is deterministic");
        assert_eq!(&a, IntentModel::builtin());
        for (request, _, _) in PARAPHRASES {
            assert_eq!(plan(request, &vocab()), plan(request, &vocab()));
        }
    }

    /// The 50 questions of `bench agent`, on the reference plant's names: the benchmark runs
    /// them through the runtime on a live twin; this checks the planner's part in a second.
    #[test]
    fn the_benchmark_questions_still_plan_right() {
        let v = intent::reference_vocabulary();
        let mut wrong = Vec::new();
        for line in include_str!("../../../bench/agent_questions.tsv").lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let (tool, machine, text) = (cols[1], cols[2], cols[3]);
            let chosen = match plan(text, &v) {
                Plan::Calls { calls } => calls[0].clone(),
                other => (format!("{other:?}"), Value::Null),
            };
            let machine_right = machine == "-" || chosen.1["machine"].as_str() == Some(machine);
            if chosen.0 != tool || !machine_right {
                wrong.push(format!("{text}: {} {}", chosen.0, chosen.1));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn nonsense_and_small_talk_stay_unknown() {
        for text in [
            "tell me a joke",
            "你好",
            "asdkjh qwpoe",
            "",
            "???",
            "今天天气怎么样",
            "what's the capital of France",
        ] {
            assert_eq!(plan(text, &vocab()), Plan::Unknown, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_request_plans_without_panicking(text in "\\PC{0,200}") {
            let _ = plan(&text, &vocab());
        }
    }
}
