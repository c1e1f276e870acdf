//! Orders that move through a plant: sales orders from customers, work orders on the shop floor,
//! purchase orders to suppliers and maintenance orders on machines.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SalesOrder {
    pub id: String,
    pub product: String,
    pub quantity: u32,
    pub received_at: Timestamp,
    pub due_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrder {
    pub id: String,
    pub product: String,
    pub quantity: u32,
    /// The sales order this work serves, if any (components made for an assembly carry the parent's).
    pub sales_order: Option<String>,
    pub released_at: Timestamp,
    pub due_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseOrder {
    pub id: String,
    pub material: String,
    pub quantity: f64,
    pub placed_at: Timestamp,
    pub expected_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceKind {
    /// Planned, before a failure.
    Preventive,
    /// Repair after a failure.
    Corrective,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceOrder {
    pub id: String,
    pub machine: String,
    pub kind: MaintenanceKind,
    pub started_at: Timestamp,
    pub duration_h: f64,
    pub cost: f64,
}
