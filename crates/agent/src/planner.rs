//! The offline planner: with no model configured, maps common requests in English and Chinese
//! to tool calls by keywords and the plant's own names (machines, products, parameters). It is
//! not a language model and says so in every answer; it only ever proposes calls, which pass
//! the same policy as a model's.

use crate::tools::{self, OrderFilter, Vocabulary, WorkKind};
use regex::Regex;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::LazyLock;

/// The language of a request, and so of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
        "Offline planner (not a language model; no model is configured): it matched your request to tools by keywords.",
        "离线规划器（不是大语言模型；未配置模型）：按关键词把您的请求匹配到工具。",
    )
}

/// What the planner can do, for requests it does not know.
pub fn help(lang: Lang) -> &'static str {
    lang.pick(
        "I can: show the plant status, KPIs (OEE, scrap, on-time), a machine's telemetry, orders (open or late), the schedule, explain a machine's anomalies, run a what-if (\"what if TURN-02 is down for 6 hours\"), quote a delivery date (\"when can we deliver 500 P-GEAR-PLN\"), search the manuals and SOPs (\"how do I replace a spindle bearing\"), draft a shift report, and propose a maintenance work order or a set-point change (held for a person's approval).",
        "我可以：查看工厂状态、指标（OEE、报废率、准时交付）、设备遥测数据、订单（未完成或延期）、排产计划，解释设备异常，做假设分析（“如果 TURN-02 停机 6 小时”），报交期（“500 件 P-GEAR-PLN 什么时候能交货”），检索手册和作业规程（“如何更换主轴轴承”），起草班报，以及提出维修工单或设定值变更（需经人工审批）。",
    )
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this file; a typo fails every test at once.
    Regex::new(pattern).unwrap_or_else(|e| panic!("planner pattern {pattern}: {e}"))
}

static HOURS: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)(\d+(?:\.\d+)?)\s*(?:h\b|hours?\b|hrs?\b|个小时|小时|钟头)"));
static QUANTITY: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)(\d+)\s*(?:units?\b|pcs\b|pieces?\b|parts?\b|件|个|套|只)"));
static NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"-?\d+(?:\.\d+)?"));
static TARGET: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:\bto\b|=|改为|改成|调到|调至|调整为|设为|设置为|设定为|提高到|降低到|降到|升到)\s*(-?\d+(?:\.\d+)?)",
    )
});
static ID: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b([a-z]+)[\s_-]?0*(\d{1,3})\b"));
static ZH_MACHINE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:(\d+)\s*号\s*(车床|磨床|加工中心|滚齿机|热处理炉|渗碳炉|炉)|(车床|磨床|加工中心|滚齿机|热处理炉|渗碳炉|炉)\s*(\d+)\s*号?)",
    )
});

fn has(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}

/// Finds a machine id in `text`: its id (any case, with or without the hyphen or leading
/// zeros), its name, or a Chinese description such as 2号磨床.
pub fn find_machine(text: &str, vocab: &Vocabulary) -> Option<String> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
            .to_lowercase()
    };
    for cap in ID.captures_iter(text) {
        let prefix = cap[1].to_lowercase();
        let number: u32 = cap[2].parse().unwrap_or(0);
        for (id, _, _) in &vocab.machines {
            let n = norm(id);
            let digits: String = n.chars().filter(char::is_ascii_digit).collect();
            let letters: String = n.chars().filter(|c| !c.is_ascii_digit()).collect();
            if letters == prefix && digits.parse::<u32>().ok() == Some(number) {
                return Some(id.clone());
            }
        }
    }
    let lower = text.to_lowercase();
    for (id, name, zh) in &vocab.machines {
        if lower.contains(&name.to_lowercase()) || zh.as_deref().is_some_and(|z| text.contains(z)) {
            return Some(id.clone());
        }
    }
    if let Some(cap) = ZH_MACHINE.captures(text) {
        let (number, kind) = match (cap.get(1), cap.get(2), cap.get(3), cap.get(4)) {
            (Some(n), Some(k), _, _) | (_, _, Some(k), Some(n)) => (n.as_str(), k.as_str()),
            _ => return None,
        };
        let prefix = match kind {
            "车床" => "TURN",
            "磨床" => "GRIND",
            "加工中心" | "滚齿机" => "MILL",
            _ => "HT",
        };
        let number: u32 = number.parse().ok()?;
        return vocab
            .machines
            .iter()
            .find(|(id, _, _)| {
                id.starts_with(prefix)
                    && id
                        .chars()
                        .filter(char::is_ascii_digit)
                        .collect::<String>()
                        .parse::<u32>()
                        .ok()
                        == Some(number)
            })
            .map(|(id, _, _)| id.clone());
    }
    None
}

/// Finds a product by id, English name or Chinese name.
pub fn find_product(text: &str, vocab: &Vocabulary) -> Option<String> {
    let lower = text.to_lowercase();
    vocab
        .products
        .iter()
        .find(|(id, _, _)| lower.contains(&id.to_lowercase()))
        .or_else(|| {
            vocab.products.iter().find(|(_, name, zh)| {
                lower.contains(&name.to_lowercase())
                    || zh.as_deref().is_some_and(|z| text.contains(z))
            })
        })
        .map(|(id, _, _)| id.clone())
}

/// Words people use for the reference plant's parameters and signals, in both languages.
const PARAM_WORDS: &[(&str, &[&str])] = &[
    ("cutting_speed", &["cutting speed", "切削速度", "线速度"]),
    ("feed", &["feed rate", "feed", "进给"]),
    ("hob_speed", &["hob speed", "滚刀速度", "滚刀转速"]),
    ("axial_feed", &["axial feed", "轴向进给"]),
    ("wheel_speed", &["wheel speed", "砂轮速度", "砂轮线速度"]),
    ("plunge_infeed", &["plunge infeed", "infeed", "切入进给"]),
    (
        "carburising_temp",
        &["carburising temp", "carburizing temp", "渗碳温度"],
    ),
    ("carbon_potential", &["carbon potential", "碳势"]),
    ("tempering_temp", &["tempering temp", "回火温度"]),
];

const SIGNAL_WORDS: &[(&str, &[&str])] = &[
    ("vibration_mm_s", &["vibration", "振动"]),
    (
        "temperature_rise_c",
        &["temperature", "temp rise", "温度", "温升"],
    ),
    ("current_a", &["current", "amps", "电流"]),
];

fn find_param(text: &str, vocab: &Vocabulary) -> Option<String> {
    let lower = text.to_lowercase();
    // Exact names first (`axial_feed` before `feed`), longest first.
    let mut names: Vec<&String> = vocab.params.iter().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    if let Some(n) = names.iter().find(|n| lower.contains(n.as_str())) {
        return Some((*n).clone());
    }
    PARAM_WORDS
        .iter()
        .filter(|(name, _)| vocab.params.iter().any(|p| p == name))
        .find(|(_, words)| words.iter().any(|w| lower.contains(w)))
        .map(|(name, _)| (*name).to_owned())
}

fn find_signal(text: &str, vocab: &Vocabulary) -> Option<String> {
    let lower = text.to_lowercase();
    if let Some(n) = vocab.signals.iter().find(|n| lower.contains(n.as_str())) {
        return Some(n.clone());
    }
    SIGNAL_WORDS
        .iter()
        .find(|(_, words)| words.iter().any(|w| lower.contains(w)))
        .map(|(name, _)| (*name).to_owned())
}

fn hours_in(text: &str) -> Option<f64> {
    HOURS.captures(text).and_then(|c| c[1].parse().ok())
}

/// Plans the tool calls for `request`.
pub fn plan(request: &str, vocab: &Vocabulary) -> Plan {
    let lang = Lang::of(request);
    // "怎么样" asks how something is, not how to do it; "on-time delivery" is a KPI, not a
    // delivery date.
    let lower = request
        .to_lowercase()
        .replace("怎么样", "情况")
        .replace("on-time delivery", "on-time")
        .replace("on time delivery", "on-time");
    let t = lower.as_str();
    let machine = find_machine(request, vocab);
    let product = find_product(request, vocab);
    let need_machine = |example: &str| Plan::Ask {
        question: match lang {
            Lang::En => format!("Which machine? Name it by id, e.g. {example}."),
            Lang::Zh => format!("请指明哪台设备，例如 {example}。"),
        },
    };
    let call = |tool: &str, args: Value| Plan::Calls {
        calls: vec![(tool.to_owned(), args)],
    };

    let how = has(
        t,
        &[
            "how do",
            "how to",
            "how should",
            "procedure",
            "sop",
            "manual",
            "instruction",
            "steps",
            "what does the",
            "如何",
            "怎么",
            "怎样",
            "步骤",
            "规程",
            "手册",
            "作业指导",
            "应该",
        ],
    );
    let set_words = t.starts_with("set ")
        || has(
            t,
            &[
                " set ",
                "set-point",
                "setpoint",
                "set point",
                "change ",
                "adjust",
                "increase",
                "decrease",
                "raise",
                "lower",
                "reduce",
                "设定",
                "改为",
                "改成",
                "调到",
                "调至",
                "调整",
                "设为",
                "设置为",
                "提高到",
                "降低到",
                "降到",
            ],
        );

    // Acting requests first: they must never fall through to a reading tool by accident.
    if set_words
        && !how
        && let Some(param) = find_param(request, vocab)
    {
        let Some(machine) = machine else {
            return need_machine("TURN-01");
        };
        let value = TARGET
            .captures(request)
            .and_then(|c| c[1].parse::<f64>().ok())
            .or_else(|| {
                NUMBER
                    .find_iter(request)
                    .filter_map(|m| m.as_str().parse::<f64>().ok())
                    .last()
            });
        let Some(value) = value else {
            return Plan::Ask {
                question: lang
                    .pick(
                        "To what value? e.g. \"set cutting_speed on TURN-01 to 200\".",
                        "设定为多少？例如“把 TURN-01 的 cutting_speed 改为 200”。",
                    )
                    .to_owned(),
            };
        };
        return call(
            tools::CHANGE_SET_POINT,
            json!({ "machine": machine, "param": param, "value": value, "reason": request }),
        );
    }
    let work_order = has(t, &["work order", "workorder", "maintenance order", "工单"])
        || (!how
            && has(
                t,
                &[
                    "maintenance",
                    "service",
                    "repair",
                    "fix",
                    "维修",
                    "保养",
                    "检修",
                    "维护",
                ],
            )
            && has(
                t,
                &[
                    "create", "open", "raise", "book", "schedule", "plan a", "request", "need",
                    "send", "安排", "创建", "开", "下", "申请", "需要", "派", "做",
                ],
            ));
    if work_order && !how {
        let Some(machine) = machine else {
            return need_machine("GRIND-02");
        };
        let kind = if has(
            t,
            &[
                "repair",
                "fix",
                "corrective",
                "broken",
                "维修",
                "抢修",
                "故障",
            ],
        ) {
            WorkKind::Corrective
        } else {
            WorkKind::Preventive
        };
        return call(
            tools::CREATE_WORK_ORDER,
            json!({ "machine": machine, "reason": request, "kind": kind }),
        );
    }
    if has(
        t,
        &[
            "what if",
            "what happens if",
            "what-if",
            "if ",
            "如果",
            "假如",
            "假设",
            "要是",
        ],
    ) && has(
        t,
        &[
            "down",
            "out",
            "stop",
            "break",
            "offline",
            "unavailable",
            "maintenance",
            "停机",
            "停",
            "故障",
            "坏",
            "维修",
            "保养",
        ],
    ) {
        let Some(machine) = machine else {
            return need_machine("TURN-02");
        };
        let hours = hours_in(request).unwrap_or(8.0);
        return call(
            tools::SCHEDULE_WHAT_IF,
            json!({ "machine": machine, "hours": hours }),
        );
    }
    if has(
        t,
        &[
            "quote",
            "delivery date",
            "deliver",
            "lead time",
            "promise",
            "ctp",
            "atp",
            "ship by",
            "交期",
            "交货",
            "报价",
            "多久能交",
            "什么时候能交",
            "能否交付",
            "交付日期",
        ],
    ) {
        let Some(product) = product else {
            return Plan::Ask {
                question: lang
                    .pick(
                        "Which product? e.g. \"when can we deliver 500 P-GEAR-PLN\".",
                        "哪个产品？例如“500 件 P-GEAR-PLN 什么时候能交货”。",
                    )
                    .to_owned(),
            };
        };
        let quantity = QUANTITY
            .captures(request)
            .and_then(|c| c[1].parse::<u32>().ok())
            .or_else(|| {
                NUMBER
                    .find_iter(request)
                    .filter_map(|m| m.as_str().parse::<u32>().ok())
                    .find(|n| *n > 0)
            })
            .unwrap_or(100);
        return call(
            tools::QUOTE_DELIVERY,
            json!({ "product": product, "quantity": quantity }),
        );
    }
    if let Some(m) = &machine
        && has(
            t,
            &[
                "anomal",
                "abnormal",
                "why",
                "unusual",
                "spike",
                "alarm",
                "wrong",
                "异常",
                "为什么",
                "报警",
                "突增",
                "不正常",
                "问题",
            ],
        )
    {
        return call(tools::EXPLAIN_ANOMALY, json!({ "machine": m }));
    }
    if how {
        return call(
            tools::SEARCH_MANUALS,
            json!({ "query": request, "limit": 3 }),
        );
    }
    if has(
        t,
        &[
            "shift report",
            "handover",
            "shift summary",
            "end of shift",
            "交班",
            "交接班",
            "班报",
            "班次报告",
            "当班",
        ],
    ) {
        return call(tools::DRAFT_SHIFT_REPORT, json!({}));
    }
    // "plan" as a word: "plant" is not a schedule question.
    let plan_word = t
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w == "plan" || w == "plans");
    if plan_word
        || has(
            t,
            &[
                "schedule",
                "gantt",
                "running next",
                "next job",
                "排产",
                "计划",
                "甘特",
                "排程",
                "下一个任务",
            ],
        )
    {
        return call(
            tools::SHOW_SCHEDULE,
            match &machine {
                Some(m) => json!({ "machine": m }),
                None => json!({}),
            },
        );
    }
    if has(
        t,
        &[
            "order", "backlog", "late", "overdue", "订单", "延期", "逾期", "拖期", "迟交",
        ],
    ) {
        let status = if has(
            t,
            &["late", "overdue", "behind", "延期", "逾期", "拖期", "迟交"],
        ) {
            OrderFilter::Late
        } else if has(
            t,
            &[
                "completed",
                "finished",
                "shipped",
                "done",
                "已完成",
                "完成的",
            ],
        ) {
            OrderFilter::Completed
        } else {
            OrderFilter::Open
        };
        let mut args = json!({ "status": status });
        if let Some(p) = product {
            args["product"] = Value::from(p);
        }
        return call(tools::LIST_ORDERS, args);
    }
    if has(
        t,
        &[
            "oee",
            "kpi",
            "throughput",
            "scrap",
            "yield",
            "on-time",
            "on time",
            "availability",
            "performance",
            "energy",
            "output",
            "综合效率",
            "指标",
            "产量",
            "良率",
            "报废",
            "准时",
            "能耗",
            "稼动",
            "产出",
        ],
    ) {
        return call(tools::QUERY_KPIS, json!({}));
    }
    let signal = find_signal(request, vocab);
    if signal.is_some()
        || has(
            t,
            &["telemetry", "reading", "sensor", "传感器", "读数", "数据"],
        )
    {
        let Some(machine) = machine else {
            return need_machine("MILL-01");
        };
        let mut args = json!({ "machine": machine });
        if let Some(s) = signal {
            args["signal"] = Value::from(s);
        }
        if let Some(h) = hours_in(request) {
            args["hours"] = Value::from(h);
        }
        return call(tools::QUERY_TELEMETRY, args);
    }
    if has(
        t,
        &[
            "status",
            "overview",
            "how is",
            "how are",
            "state",
            "running",
            "down",
            "状态",
            "概况",
            "运行",
            "怎么样",
            "情况",
            "停机",
        ],
    ) {
        return call(tools::PLANT_STATUS, json!({}));
    }
    if let Some(m) = machine {
        return call(tools::QUERY_TELEMETRY, json!({ "machine": m }));
    }
    Plan::Unknown
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

    proptest::proptest! {
        #[test]
        fn any_request_plans_without_panicking(text in "\\PC{0,200}") {
            let _ = plan(&text, &vocab());
        }
    }
}
