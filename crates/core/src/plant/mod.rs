//! Plant files: a plant's master data and the twin's hidden truth, in TOML.
//!
//! The ISA-95 hierarchy is written flat with parent references (site = the plant, then
//! areas, lines, work centres and machines), which keeps files diff-friendly. Loading is two
//! passes: serde for shape, then [`validate`] for meaning (references, ranges, cycles). Both
//! report `file:line:col: field: reason` via [`locate`], never a panic.

mod locate;
mod validate;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::time::Timestamp;

pub use locate::FieldPath;

/// A whole plant file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plant {
    pub plant: PlantInfo,
    #[serde(default)]
    pub areas: Vec<Area>,
    #[serde(default)]
    pub lines: Vec<Line>,
    pub work_centres: Vec<WorkCentre>,
    pub machine_types: Vec<MachineType>,
    pub machines: Vec<Machine>,
    #[serde(default)]
    pub materials: Vec<Material>,
    pub products: Vec<Product>,
    pub tariff: Tariff,
    #[serde(default)]
    pub costs: Costs,
    #[serde(default)]
    pub twin: TwinSettings,
}

/// The site: ISA-95's top level below the enterprise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantInfo {
    pub id: String,
    pub name: String,
    /// Name in Simplified Chinese, for the bilingual UI.
    #[serde(default)]
    pub name_zh: Option<String>,
    #[serde(default)]
    pub industry: String,
    #[serde(default = "default_currency")]
    pub currency: String,
    /// When simulated time starts, with a UTC offset: `2026-03-02T00:00:00+08:00`.
    pub start: toml::value::Datetime,
}

fn default_currency() -> String {
    "CNY".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Area {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub id: String,
    pub name: String,
    pub area: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkCentre {
    pub id: String,
    pub name: String,
    /// The line it belongs to; optional for job shops with no lines.
    #[serde(default)]
    pub line: Option<String>,
    /// What it does: `turning`, `milling`, `heat_treatment`, `inspection`, …
    #[serde(default)]
    pub kind: String,
}

/// An equipment model: what all machines of the type share, including their hidden physics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineType {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub power_kw: PowerKw,
    pub health: HealthModel,
    pub maintenance: MaintenanceModel,
    pub sensors: SensorModel,
}

/// Electrical power drawn in each machine state.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerKw {
    pub run: f64,
    pub idle: f64,
    pub down: f64,
}

/// Hidden degradation. Wear grows from 0 (new) with running time; at wear 1 a machine is worn out.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthModel {
    /// Wear gained per running hour at load 1 with default process parameters.
    pub wear_per_run_hour: f64,
    /// Mean running hours between failures of a new machine (the base of the hazard).
    pub mtbf_new_h: f64,
    /// The failure hazard is multiplied by e^(hazard_growth · wear).
    pub hazard_growth: f64,
    /// Fractional cycle-time increase at wear 1 (grows with wear²).
    pub slowdown_at_worn: f64,
    /// Extra defect probability per unit at wear 1 (grows with wear²).
    pub defect_at_worn: f64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceModel {
    pub preventive_h: f64,
    pub preventive_cost: f64,
    /// Mean repair time after a failure, parts and technician included.
    pub corrective_h: f64,
    pub corrective_cost: f64,
    /// Running hours between services for the fixed-interval baseline policy.
    pub pm_interval_run_h: f64,
}

/// Nominal sensor levels of a new machine running at load 1.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorModel {
    pub vibration_mm_s: f64,
    /// Temperature rise above ambient when running at load 1.
    pub temperature_rise_c: f64,
    pub current_a: f64,
    /// Relative noise (coefficient of variation) on every reading.
    #[serde(default = "default_noise_cv")]
    pub noise_cv: f64,
    /// Running hours before a failure during which the developing fault shows in the motor
    /// current (the P–F interval); 0, the default: failures come without warning.
    #[serde(default)]
    pub precursor_h: f64,
    /// How far the current has climbed, as a share of its level, when the failure comes; it
    /// climbs in proportion over the P–F interval, idle or running.
    #[serde(default = "default_precursor_rise")]
    pub precursor_rise: f64,
}

fn default_noise_cv() -> f64 {
    0.03
}

fn default_precursor_rise() -> f64 {
    0.3
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub work_centre: String,
    #[serde(rename = "type")]
    pub machine_type: String,
    /// Wear at the start of the simulation, in [0, 1].
    #[serde(default)]
    pub initial_wear: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Material {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_unit")]
    pub unit: String,
    pub unit_cost: f64,
    pub lead_time_days: f64,
    /// Supplier lead times vary uniformly by up to this many days either way.
    #[serde(default)]
    pub lead_time_jitter_days: f64,
    pub initial_stock: f64,
    /// For the reorder-point baseline policy.
    pub reorder_point: f64,
    pub order_qty: f64,
    #[serde(default)]
    pub holding_cost_per_unit_day: f64,
}

fn default_unit() -> String {
    "pcs".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub name_zh: Option<String>,
    pub price: f64,
    /// Units per work order when the plant releases work for this product.
    pub lot_size: u32,
    /// Materials and component products per unit.
    #[serde(default)]
    pub bom: Vec<BomLine>,
    pub routing: Vec<RoutingStep>,
    /// Customer demand; products without it are only made as components.
    #[serde(default)]
    pub demand: Option<Demand>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BomLine {
    /// A material id or a product id.
    pub item: String,
    pub qty: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingStep {
    pub name: String,
    /// Minutes per unit on each eligible machine (parallel machines need not be identical).
    pub times: BTreeMap<String, f64>,
    /// Set-up minutes when a machine changes to this product.
    #[serde(default)]
    pub setup_min: f64,
    /// Mechanical load relative to nominal: drives wear, current and vibration.
    #[serde(default = "one")]
    pub load: f64,
    /// Defect probability per unit on a new machine at the optimal parameters.
    #[serde(default = "default_base_defect")]
    pub base_defect: f64,
    #[serde(default)]
    pub params: Vec<ProcessParam>,
}

fn one() -> f64 {
    1.0
}

fn default_base_defect() -> f64 {
    0.002
}

/// A process parameter a policy may set. `optimum` is hidden truth: policies never see it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessParam {
    pub name: String,
    #[serde(default)]
    pub unit: String,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    pub optimum: f64,
    /// Extra defect probability at a distance of the whole range from the optimum (quadratic).
    #[serde(default = "default_defect_weight")]
    pub defect_weight: f64,
    /// Wear-rate change per range moved above the default (harsher settings wear faster).
    #[serde(default = "default_wear_slope")]
    pub wear_slope: f64,
    /// Cycle-time change per range moved above the default (faster settings take less time).
    #[serde(default = "default_time_slope")]
    pub time_slope: f64,
}

fn default_defect_weight() -> f64 {
    0.05
}
fn default_wear_slope() -> f64 {
    0.5
}
fn default_time_slope() -> f64 {
    0.2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demand {
    /// Mean units ordered per day at the start, before the `weekly` multiplier of each day
    /// (keep the seven multipliers averaging 1 so this stays the weekly mean).
    pub units_per_day: f64,
    /// Relative growth per year (0.1 = +10 %/year).
    #[serde(default)]
    pub trend_per_year: f64,
    /// Multipliers Monday … Sunday.
    #[serde(default = "flat_week")]
    pub weekly: Vec<f64>,
    /// Day-to-day noise (coefficient of variation).
    #[serde(default = "default_demand_noise")]
    pub noise_cv: f64,
    /// Mean units per sales order.
    pub order_size: f64,
    /// Due date after receipt, in days: `[earliest, latest]`.
    pub due_days: Vec<f64>,
}

fn flat_week() -> Vec<f64> {
    vec![1.0; 7]
}
fn default_demand_noise() -> f64 {
    0.15
}

/// Time-of-use electricity prices by hour of the local day.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tariff {
    pub periods: Vec<TariffPeriod>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffPeriod {
    /// `peak`, `flat`, `valley`, …
    pub name: String,
    pub from_h: u32,
    pub to_h: u32,
    pub price_per_kwh: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Costs {
    /// Penalty per unit per day late.
    #[serde(default = "default_tardiness_cost")]
    pub tardiness_per_unit_day: f64,
    /// Handling cost per scrapped unit, on top of its material.
    #[serde(default)]
    pub scrap_handling_per_unit: f64,
    /// Carrying cost per unit of work in process per day.
    #[serde(default)]
    pub wip_holding_per_unit_day: f64,
}

fn default_tardiness_cost() -> f64 {
    5.0
}

impl Default for Costs {
    fn default() -> Self {
        Costs {
            tardiness_per_unit_day: default_tardiness_cost(),
            scrap_handling_per_unit: 0.0,
            wip_holding_per_unit_day: 0.0,
        }
    }
}

/// How the twin runs this plant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwinSettings {
    /// Seconds between sensor readings per machine; 0 turns telemetry off.
    #[serde(default = "default_telemetry_period")]
    pub telemetry_period_s: f64,
    /// Hours between policy reviews (purchasing, maintenance).
    #[serde(default = "one")]
    pub review_period_h: f64,
    #[serde(default = "default_ambient")]
    pub ambient_c: f64,
    /// Spread of repair times (coefficient of variation of a log-normal).
    #[serde(default = "default_repair_cv")]
    pub repair_time_cv: f64,
}

fn default_telemetry_period() -> f64 {
    60.0
}
fn default_ambient() -> f64 {
    22.0
}
fn default_repair_cv() -> f64 {
    0.5
}

impl Default for TwinSettings {
    fn default() -> Self {
        TwinSettings {
            telemetry_period_s: default_telemetry_period(),
            review_period_h: 1.0,
            ambient_c: default_ambient(),
            repair_time_cv: default_repair_cv(),
        }
    }
}

/// One problem in a plant file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub col: usize,
    /// Dotted path of the field, e.g. `products[2].routing[0].times.TURN-09`.
    pub field: String,
    pub reason: String,
}

/// A plant file that could not be read or is not valid. Not fatal to a process: report and go on.
#[derive(Debug, thiserror::Error)]
pub enum PlantFileError {
    #[error("{file}: cannot read plant file: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Diagnostic>,
    },
}

fn render(file: &Path, problems: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}:{}:{}: {}: {}",
            file.display(),
            p.line,
            p.col,
            p.field,
            p.reason
        ));
    }
    out
}

impl PlantFileError {
    /// The located problems; empty for a read error.
    pub fn problems(&self) -> &[Diagnostic] {
        match self {
            PlantFileError::Read { .. } => &[],
            PlantFileError::Invalid { problems, .. } => problems,
        }
    }
}

impl Plant {
    /// Reads and validates a plant file.
    pub fn load(path: &Path) -> Result<Plant, PlantFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlantFileError::Read {
            file: path.to_owned(),
            source,
        })?;
        Plant::parse(&text, path)
    }

    /// Parses and validates plant-file text; `file` is only used in messages.
    pub fn parse(text: &str, file: &Path) -> Result<Plant, PlantFileError> {
        let invalid = |problems| PlantFileError::Invalid {
            file: file.to_owned(),
            problems,
        };
        let plant: Plant = match toml::from_str(text) {
            Ok(plant) => plant,
            Err(err) => return Err(invalid(vec![locate::serde_diagnostic(text, &err)])),
        };
        let problems = validate::validate(&plant);
        if problems.is_empty() {
            Ok(plant)
        } else {
            Err(invalid(
                problems
                    .into_iter()
                    .map(|(path, reason)| locate::path_diagnostic(text, &path, reason))
                    .collect(),
            ))
        }
    }

    /// The simulation start as an instant and the plant's UTC offset in minutes.
    pub fn start(&self) -> (Timestamp, i32) {
        // Validation guarantees a full date, time and offset.
        validate::start_of(&self.plant.start).unwrap_or((Timestamp(0), 0))
    }

    pub fn machine_type(&self, id: &str) -> Option<&MachineType> {
        self.machine_types.iter().find(|t| t.id == id)
    }

    pub fn product(&self, id: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.id == id)
    }

    pub fn material(&self, id: &str) -> Option<&Material> {
        self.materials.iter().find(|m| m.id == id)
    }

    /// The ISA-95 path of a machine: `site/area/line/work centre/machine` (levels that are
    /// absent are skipped).
    pub fn equipment_path(&self, machine_id: &str) -> Option<String> {
        let machine = self.machines.iter().find(|m| m.id == machine_id)?;
        let wc = self
            .work_centres
            .iter()
            .find(|w| w.id == machine.work_centre)?;
        let mut parts = vec![self.plant.id.clone()];
        if let Some(line) = wc
            .line
            .as_ref()
            .and_then(|l| self.lines.iter().find(|x| &x.id == l))
        {
            parts.push(line.area.clone());
            parts.push(line.id.clone());
        }
        parts.push(wc.id.clone());
        parts.push(machine.id.clone());
        Some(parts.join("/"))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.col, self.field, self.reason
        )
    }
}
