//! What happens on the shop floor, as records any component can store or show.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The kinds of plant event. The set is closed so that KPIs and the ledger can rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    OrderReceived,
    OrderReleased,
    OrderCompleted,
    OperationStarted,
    OperationCompleted,
    MachineFailed,
    RepairCompleted,
    MaintenanceStarted,
    MaintenanceCompleted,
    Stockout,
    PurchasePlaced,
    PurchaseReceived,
    UnitsScrapped,
    /// A machine's state as its controller or MES reports it: `{"code": UMH state code,
    /// "raw": the source's own state}` (the twin's state follows from its other events).
    MachineState,
    /// A command's acknowledgement: `{"command", "status", "decision", "action", "reason",
    /// "read_back"}`; the settling one is the outcome of the decision the command executes.
    CommandAck,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::OrderReceived => "order_received",
            EventKind::OrderReleased => "order_released",
            EventKind::OrderCompleted => "order_completed",
            EventKind::OperationStarted => "operation_started",
            EventKind::OperationCompleted => "operation_completed",
            EventKind::MachineFailed => "machine_failed",
            EventKind::RepairCompleted => "repair_completed",
            EventKind::MaintenanceStarted => "maintenance_started",
            EventKind::MaintenanceCompleted => "maintenance_completed",
            EventKind::Stockout => "stockout",
            EventKind::PurchasePlaced => "purchase_placed",
            EventKind::PurchaseReceived => "purchase_received",
            EventKind::UnitsScrapped => "units_scrapped",
            EventKind::MachineState => "machine_state",
            EventKind::CommandAck => "command_ack",
        }
    }
}

/// One event, with the equipment and order it concerns and a small free-form detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlantEvent {
    pub at: Timestamp,
    pub kind: EventKind,
    /// Machine id, where the event concerns one machine.
    pub machine: Option<String>,
    /// Order id (sales, work or purchase), where the event concerns one order.
    pub order: Option<String>,
    /// Kind-specific facts, e.g. `{"units": 40, "product": "SHAFT-A"}`.
    pub detail: serde_json::Value,
}

/// One sensor value from one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryReading {
    pub at: Timestamp,
    pub machine: String,
    /// Signal name, e.g. `vibration_mm_s`, `temperature_c`, `current_a`.
    pub signal: String,
    pub value: f64,
}
