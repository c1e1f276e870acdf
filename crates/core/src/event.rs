//! What happens on the shop floor, as records any component can store or show.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The kinds of plant event. The set is closed so that KPIs and the ledger can rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    OrderReceived,
    OrderReleased,
    OrderCompleted,
    /// A work order released to the floor, ready for its first step: `{"product", "quantity",
    /// "sales_order" (the customer order it delivers to, if any), "parent" (the work order it
    /// makes a component for, if any)}`.
    WorkOrderReleased,
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
            EventKind::WorkOrderReleased => "work_order_released",
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

/// The name of one time series, from the plant to the store: Sparkplug group / edge node /
/// device / metric, for JSON topics site / machine / "" / signal, for OPC UA site / `opcua` /
/// object / variable. Every adapter produces it and the store keeps it as is: a reading is
/// named once, where it enters.
///
/// The parts are shared strings: an adapter names a series once, at its birth, and every reading
/// after that shares those names — at a million readings a second, four string copies per
/// reading would cost more than storing the reading.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesName {
    pub site: Arc<str>,
    pub node: Arc<str>,
    /// Empty for node-level metrics.
    pub device: Arc<str>,
    pub metric: Arc<str>,
}

impl SeriesName {
    pub fn new(
        site: impl Into<Arc<str>>,
        node: impl Into<Arc<str>>,
        device: impl Into<Arc<str>>,
        metric: impl Into<Arc<str>>,
    ) -> SeriesName {
        SeriesName {
            site: site.into(),
            node: node.into(),
            device: device.into(),
            metric: metric.into(),
        }
    }
}

impl TelemetryReading {
    /// The series this reading belongs to when `node` at `site` publishes it: the machine is
    /// the device and the signal the metric, as a Sparkplug edge node would name them.
    pub fn series(&self, site: &str, node: &str) -> SeriesName {
        SeriesName::new(site, node, self.machine.as_str(), self.signal.as_str())
    }
}
