//! The one tool registry: every tool's name, what it does, whether it reads or acts, and a JSON
//! Schema derived from the Rust type of its arguments. People (API, CLI), models and MCP
//! clients all see these same definitions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether a tool only reads the plant or changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    Read,
    /// Changes the plant: passes the approval policy before it runs.
    Act,
}

/// A tool as every caller sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub kind: ToolKind,
    /// JSON Schema (draft 2020-12) of the arguments object.
    pub input_schema: Value,
}

// The tools' names, for the planner, the policy file and the hosts that implement them.
pub const PLANT_STATUS: &str = "plant_status";
pub const QUERY_KPIS: &str = "query_kpis";
pub const QUERY_TELEMETRY: &str = "query_telemetry";
pub const LIST_ORDERS: &str = "list_orders";
pub const SHOW_SCHEDULE: &str = "show_schedule";
pub const EXPLAIN_ANOMALY: &str = "explain_anomaly";
pub const SCHEDULE_WHAT_IF: &str = "schedule_what_if";
pub const QUOTE_DELIVERY: &str = "quote_delivery";
pub const SEARCH_MANUALS: &str = "search_manuals";
pub const DRAFT_SHIFT_REPORT: &str = "draft_shift_report";
pub const CREATE_WORK_ORDER: &str = "create_work_order";
pub const CHANGE_SET_POINT: &str = "change_set_point";

/// No arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Recent readings of one machine's sensors, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryArgs {
    /// Machine id, e.g. `TURN-01`.
    pub machine: String,
    /// One signal (e.g. `vibration_mm_s`, `temperature_rise_c`, `current_a`); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// How far back, in hours of plant time (default 8, at most 168).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<f64>,
}

/// Which orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderFilter {
    #[default]
    Open,
    Late,
    Completed,
    All,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrdersArgs {
    /// `open` (default), `late`, `completed` or `all`.
    #[serde(default)]
    pub status: OrderFilter,
    /// Only this product id, e.g. `P-SHAFT-IN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// At most this many (default 20, at most 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleArgs {
    /// Only the jobs planned on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineArgs {
    /// Machine id, e.g. `GRIND-02`.
    pub machine: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatIfArgs {
    /// The machine taken out.
    pub machine: String,
    /// For how many hours from when it is next free (more than 0, at most 336).
    pub hours: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteArgs {
    /// Product id, e.g. `P-GEAR-PLN`.
    pub product: String,
    /// Units wanted (1 to 100 000).
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// Words to look for, in English or Chinese.
    pub query: String,
    /// At most this many passages (default 3, at most 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShiftReportArgs {
    /// The shift's length in hours, ending now (default 8, at most 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<f64>,
}

/// Preventive service or a repair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkKind {
    #[default]
    Preventive,
    Corrective,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderArgs {
    /// The machine to service.
    pub machine: String,
    /// Why, in a sentence (goes into the ledger).
    pub reason: String,
    /// `preventive` (default) or `corrective`.
    #[serde(default)]
    pub kind: WorkKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPointArgs {
    /// The machine.
    pub machine: String,
    /// Process parameter, e.g. `cutting_speed`.
    pub param: String,
    /// New value, within the parameter's bounds in the plant file.
    pub value: f64,
    /// Why, in a sentence (goes into the ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The schema of `T` as a tool's input schema: an object, without the `$schema` and `title`
/// keys that some clients reject.
fn schema_of<T: JsonSchema>() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("title");
        map.entry("properties")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    schema
}

fn spec<T: JsonSchema>(
    name: &'static str,
    title: &'static str,
    description: &'static str,
    kind: ToolKind,
) -> ToolSpec {
    ToolSpec {
        name,
        title,
        description,
        kind,
        input_schema: schema_of::<T>(),
    }
}

/// Every tool, in a fixed order.
pub fn catalogue() -> Vec<ToolSpec> {
    use ToolKind::{Act, Read};
    vec![
        spec::<NoArgs>(
            PLANT_STATUS,
            "Plant status",
            "The plant now: each machine's state, work order, queue, health and anomaly score; order counts.",
            Read,
        ),
        spec::<NoArgs>(
            QUERY_KPIS,
            "KPIs",
            "Key figures so far: OEE, availability, throughput, scrap, on-time delivery, energy.",
            Read,
        ),
        spec::<TelemetryArgs>(
            QUERY_TELEMETRY,
            "Telemetry",
            "A machine's sensor readings over the last hours: min, mean, max and last per signal.",
            Read,
        ),
        spec::<OrdersArgs>(
            LIST_ORDERS,
            "Orders",
            "Sales orders: open, late or completed, with due dates and progress.",
            Read,
        ),
        spec::<ScheduleArgs>(
            SHOW_SCHEDULE,
            "Schedule",
            "The current production plan: jobs per machine, plan end and weighted tardiness.",
            Read,
        ),
        spec::<MachineArgs>(
            EXPLAIN_ANOMALY,
            "Explain an anomaly",
            "Evidence about a machine's anomalies: flagged points, recent readings against normal, health and remaining life, and the ledger's recent decisions about it.",
            Read,
        ),
        spec::<WhatIfArgs>(
            SCHEDULE_WHAT_IF,
            "Schedule what-if",
            "Re-plans with a machine down for some hours and compares plan end and tardiness before and after; leaves a proposal a person may approve.",
            Read,
        ),
        spec::<QuoteArgs>(
            QUOTE_DELIVERY,
            "Quote a delivery date",
            "Capable-to-promise: the earliest date a new order of a product could be delivered, from the work already planned on its bottleneck.",
            Read,
        ),
        spec::<SearchArgs>(
            SEARCH_MANUALS,
            "Search manuals and SOPs",
            "Full-text search of the plant's manuals and standard operating procedures (English and Chinese); returns passages with their document and section to cite.",
            Read,
        ),
        spec::<ShiftReportArgs>(
            DRAFT_SHIFT_REPORT,
            "Draft a shift report",
            "A draft report of the last shift: output, KPIs, stoppages, anomalies, late orders and actions awaiting approval.",
            Read,
        ),
        spec::<WorkOrderArgs>(
            CREATE_WORK_ORDER,
            "Create a maintenance work order",
            "Takes a machine out for service when it is next free. Acts on the plant: held for a person's approval unless the policy allows it.",
            Act,
        ),
        spec::<SetPointArgs>(
            CHANGE_SET_POINT,
            "Change a set-point",
            "Sets a process parameter on a machine from its next operation on, within the parameter's bounds. Acts on the plant: held for a person's approval unless the policy allows it.",
            Act,
        ),
    ]
}

/// The tool named `name`.
pub fn find(name: &str) -> Option<ToolSpec> {
    catalogue().into_iter().find(|t| t.name == name)
}

/// A tool that ran and failed for a reason the caller (a person or a model) can read and act
/// on: an unknown machine, a value out of bounds, no plan yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolFailure(pub String);

impl ToolFailure {
    pub fn new(message: impl Into<String>) -> ToolFailure {
        ToolFailure(message.into())
    }
}

/// Checks a call's arguments against the tool's Rust type; the error names the field.
pub fn parse_args<T: serde::de::DeserializeOwned>(args: &Value) -> Result<T, ToolFailure> {
    // A missing arguments object means "no arguments" for every tool.
    let args = if args.is_null() {
        Value::Object(serde_json::Map::new())
    } else {
        args.clone()
    };
    serde_json::from_value(args).map_err(|e| ToolFailure(format!("invalid arguments: {e}")))
}

/// What a plant offers the planner to recognise in a request: machine and product ids with
/// their names, and parameters and signals by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// (id, name, Chinese name if any).
    pub machines: Vec<(String, String, Option<String>)>,
    pub products: Vec<(String, String, Option<String>)>,
    pub params: Vec<String>,
    pub signals: Vec<String>,
}

/// Who runs the plant's tools: the server over its live plant and store. Every tool but
/// `search_manuals` (the agent's own index) is called here.
#[async_trait::async_trait]
pub trait PlantTools: Send + Sync {
    /// Whether `role` may use `tool` at all, by the same rule as the route that does the same
    /// thing; `Err` says why not. Checked before the approval policy, on every path.
    fn authorise(&self, tool: &str, role: &str) -> Result<(), String>;

    /// Runs a read tool, or an act tool that the policy (or a person) has let through, for
    /// `caller` (who asked) by the path `via`; `approved_by` names the person who approved it,
    /// `None` where the policy allowed it.
    async fn call(
        &self,
        caller: &crate::Caller,
        via: &str,
        tool: &str,
        args: &Value,
        approved_by: Option<&str>,
        action: Option<&str>,
    ) -> Result<Value, ToolFailure>;

    /// Checks an act call before it is queued (the machine exists, the value is within bounds)
    /// and says how far the change reaches, as a share of the parameter's range (0 for a work
    /// order), for the policy's bounds.
    async fn check_act(&self, tool: &str, args: &Value) -> Result<f64, ToolFailure>;

    /// The names a planner may find in a request.
    fn vocabulary(&self) -> Vocabulary;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_schema_and_a_unique_name() {
        let tools = catalogue();
        let mut names: Vec<_> = tools.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), tools.len());
        for t in &tools {
            assert_eq!(t.input_schema["type"], "object", "{}", t.name);
            assert!(t.input_schema.get("$schema").is_none());
        }
        let act: Vec<_> = tools
            .iter()
            .filter(|t| t.kind == ToolKind::Act)
            .map(|t| t.name)
            .collect();
        assert_eq!(act, [CREATE_WORK_ORDER, CHANGE_SET_POINT]);
        let set_point = find(CHANGE_SET_POINT).expect("listed");
        assert_eq!(
            set_point.input_schema["required"],
            serde_json::json!(["machine", "param", "value"])
        );
    }

    #[test]
    fn arguments_are_checked_against_the_type_and_the_error_names_the_field() {
        let ok: WhatIfArgs =
            parse_args(&serde_json::json!({"machine": "TURN-01", "hours": 4})).expect("valid");
        assert_eq!(ok.hours, 4.0);
        let e = parse_args::<WhatIfArgs>(&serde_json::json!({"machine": "TURN-01"}))
            .expect_err("hours missing");
        assert!(e.0.contains("hours"), "{e}");
        let e = parse_args::<WhatIfArgs>(&serde_json::json!({"machine": 3, "hours": 1}))
            .expect_err("machine not text");
        assert!(e.0.contains("invalid type"), "{e}");
        let e = parse_args::<NoArgs>(&serde_json::json!({"rm": "-rf"})).expect_err("unknown");
        assert!(e.0.contains("unknown field"), "{e}");
        let none: NoArgs = parse_args(&Value::Null).expect("null is no arguments");
        assert_eq!(none, NoArgs {});
    }
}
