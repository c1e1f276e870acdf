//! The plant's master data, as decisions need it: the plant file indexed once.
//!
//! Everything here comes from the plant file (the ERP's and MES's master data), never from a
//! simulation: a real plant's runtime builds the same value from the same file.

use aifactory_core::Plant;
use aifactory_core::plant::{MaintenanceModel, TariffPeriod};
use std::collections::BTreeMap;

use crate::PlantTime;

/// A machine, by its position in the plant file's `[[machines]]` list. Views and decisions
/// use positions for speed; [`MasterData::machine_id`] names them.
pub type MachineId = usize;

#[derive(Debug, Clone)]
struct MachineData {
    id: String,
    machine_type: String,
    run_kw: f64,
    idle_kw: f64,
    maintenance: MaintenanceModel,
}

/// The plant file, indexed for decisions: machines (those whose type resolves), routings in
/// seconds, the tariff by local hour.
#[derive(Debug, Clone)]
pub struct MasterData {
    plant: Plant,
    machines: Vec<MachineData>,
    /// Per product, per step: each eligible machine with set-up and per-unit seconds.
    routings: Vec<Vec<Vec<(MachineId, f64, f64)>>>,
    /// Price per kWh and period index for each local hour of the day.
    hourly_price: [f64; 24],
    hourly_period: [usize; 24],
}

impl MasterData {
    /// Indexes a plant that passed validation. References that do not resolve (impossible
    /// after validation) are dropped rather than panicking.
    pub fn new(plant: Plant) -> MasterData {
        let machines: Vec<MachineData> = plant
            .machines
            .iter()
            .filter_map(|m| {
                let t = plant.machine_type(&m.machine_type)?;
                Some(MachineData {
                    id: m.id.clone(),
                    machine_type: m.machine_type.clone(),
                    run_kw: t.power_kw.run,
                    idle_kw: t.power_kw.idle,
                    maintenance: t.maintenance,
                })
            })
            .collect();
        let machine_index: BTreeMap<&str, usize> = plant
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.as_str(), i))
            .collect();
        let routings = plant
            .products
            .iter()
            .map(|p| {
                p.routing
                    .iter()
                    .map(|s| {
                        s.times
                            .iter()
                            .filter_map(|(m, min)| {
                                machine_index
                                    .get(m.as_str())
                                    .map(|&i| (i, s.setup_min * 60.0, min * 60.0))
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let mut hourly_price = [0.0; 24];
        let mut hourly_period = [0; 24];
        for (i, period) in plant.tariff.periods.iter().enumerate() {
            for hour in period.from_h.min(24)..period.to_h.min(24) {
                hourly_price[hour as usize] = period.price_per_kwh;
                hourly_period[hour as usize] = i;
            }
        }
        MasterData {
            plant,
            machines,
            routings,
            hourly_price,
            hourly_period,
        }
    }

    pub fn plant(&self) -> &Plant {
        &self.plant
    }

    /// The machines' ids, in [`MachineId`] order.
    pub fn machine_ids(&self) -> impl Iterator<Item = &str> {
        self.machines.iter().map(|m| m.id.as_str())
    }

    /// The plant file's id of a machine.
    pub fn machine_id(&self, machine: MachineId) -> Option<&str> {
        self.machines.get(machine).map(|m| m.id.as_str())
    }

    /// The position of a machine named by its plant-file id.
    pub fn machine_index(&self, id: &str) -> Option<MachineId> {
        self.machines.iter().position(|m| m.id == id)
    }

    /// The position of a product named by its plant-file id.
    pub fn product_index(&self, id: &str) -> Option<usize> {
        self.plant.products.iter().position(|p| p.id == id)
    }

    /// The position of a material named by its plant-file id.
    pub fn material_index(&self, id: &str) -> Option<usize> {
        self.plant.materials.iter().position(|m| m.id == id)
    }

    /// Per machine: its type and the maintenance figures of that type (costs, durations and
    /// the recommended interval, as the plant file states them).
    pub fn machine_maintenance(&self) -> Vec<(String, MaintenanceModel)> {
        self.machines
            .iter()
            .map(|m| (m.machine_type.clone(), m.maintenance))
            .collect()
    }

    /// Electrical draw of a machine while running and while idle, kW.
    pub fn power_kw(&self, machine: MachineId) -> Option<(f64, f64)> {
        self.machines.get(machine).map(|m| (m.run_kw, m.idle_kw))
    }

    /// The tariff's periods, as the plant file lists them.
    pub fn tariff_periods(&self) -> &[TariffPeriod] {
        &self.plant.tariff.periods
    }

    /// The price per kWh and the tariff period of a local hour of the day (0–23).
    pub fn tariff_hour(&self, hour: usize) -> (f64, usize) {
        let hour = hour % 24;
        (self.hourly_price[hour], self.hourly_period[hour])
    }

    /// The energy price (per kWh) at plant time `t`, and when it next changes.
    pub fn tariff_at(&self, t: PlantTime) -> (f64, PlantTime) {
        let (start, offset_min) = self.plant.start();
        let local_s = start.0.div_euclid(1000) + i64::from(offset_min) * 60;
        let offset_ms = local_s.rem_euclid(86_400) as u64 * 1000;
        let local = t.0 + offset_ms;
        let hour = |ms: u64| ((ms / 3_600_000) % 24) as usize;
        let price = self.hourly_price[hour(local)];
        let mut next = local - local % 3_600_000 + 3_600_000;
        for _ in 0..24 {
            if self.hourly_price[hour(next)] != price {
                break;
            }
            next += 3_600_000;
        }
        (price, PlantTime(next - offset_ms))
    }

    /// Hours of a preventive service, per machine (what a maintenance window must hold).
    pub fn service_hours(&self) -> Vec<f64> {
        self.machines
            .iter()
            .map(|m| m.maintenance.preventive_h)
            .collect()
    }

    /// How many routing steps a product has (0 for an unknown product).
    pub fn steps(&self, product: usize) -> usize {
        self.routings.get(product).map_or(0, Vec::len)
    }

    /// One routing step's eligible machines with set-up and per-unit seconds, borrowed.
    pub fn step(&self, product: usize, step: usize) -> Option<&[(MachineId, f64, f64)]> {
        self.routings.get(product)?.get(step).map(Vec::as_slice)
    }

    /// A product's routing as a planner sees it: per step, each eligible machine with the
    /// step's set-up seconds and seconds per unit (empty for an unknown product).
    pub fn routing(&self, product: usize) -> Vec<Vec<(MachineId, f64, f64)>> {
        self.routings.get(product).cloned().unwrap_or_default()
    }
}
