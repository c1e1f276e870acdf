//! A validated plant file compiled into indexed arrays for fast simulation.

use aifactory_core::Plant;
use aifactory_core::plant::{
    HealthModel, MaintenanceModel, PowerKw, ProcessParam, SensorModel, TariffPeriod,
};
use std::collections::BTreeMap;

/// Index of a machine in [`PlantModel::machines`].
pub type MachineId = usize;

#[derive(Debug, Clone)]
pub(crate) struct MachineSpec {
    pub(crate) id: String,
    pub(crate) power: PowerKw,
    pub(crate) health: HealthModel,
    pub(crate) maintenance: MaintenanceModel,
    pub(crate) sensors: SensorModel,
    pub(crate) initial_wear: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct StepSpec {
    /// (machine, seconds per unit) for each eligible machine.
    pub(crate) eligible: Vec<(MachineId, f64)>,
    pub(crate) setup_s: f64,
    pub(crate) load: f64,
    pub(crate) base_defect: f64,
    pub(crate) params: Vec<ProcessParam>,
    pub(crate) ideal_multiplier: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct ProductSpec {
    pub(crate) id: String,
    pub(crate) lot_size: u32,
    pub(crate) materials: Vec<(usize, f64)>,
    pub(crate) components: Vec<(usize, f64)>,
    pub(crate) steps: Vec<StepSpec>,
    /// Raw-material cost of one unit, components included.
    pub(crate) material_cost: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct MaterialSpec {
    pub(crate) id: String,
    pub(crate) lead_time_days: f64,
    pub(crate) lead_time_jitter_days: f64,
    pub(crate) initial_stock: f64,
    pub(crate) reorder_point: f64,
    pub(crate) order_qty: f64,
    pub(crate) holding_cost_per_unit_day: f64,
    pub(crate) unit_cost: f64,
}

/// The plant as the twin runs it.
#[derive(Debug, Clone)]
pub struct PlantModel {
    pub(crate) plant: Plant,
    pub(crate) machines: Vec<MachineSpec>,
    pub(crate) products: Vec<ProductSpec>,
    pub(crate) materials: Vec<MaterialSpec>,
    /// Price per kWh and period index for each local hour of the day.
    pub(crate) hourly_price: [f64; 24],
    pub(crate) hourly_period: [usize; 24],
    pub(crate) periods: Vec<TariffPeriod>,
}

impl PlantModel {
    /// Compiles a plant that passed validation. References that do not resolve (impossible
    /// after validation) are dropped rather than panicking.
    pub fn new(plant: Plant) -> PlantModel {
        let machine_index: BTreeMap<&str, usize> = plant
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.as_str(), i))
            .collect();
        let material_index: BTreeMap<&str, usize> = plant
            .materials
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.as_str(), i))
            .collect();
        let product_index: BTreeMap<&str, usize> = plant
            .products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i))
            .collect();

        let machines = plant
            .machines
            .iter()
            .filter_map(|m| {
                let t = plant.machine_type(&m.machine_type)?;
                Some(MachineSpec {
                    id: m.id.clone(),
                    power: t.power_kw,
                    health: t.health,
                    maintenance: t.maintenance,
                    sensors: t.sensors,
                    initial_wear: m.initial_wear,
                })
            })
            .collect();

        let mut products: Vec<ProductSpec> = plant
            .products
            .iter()
            .map(|p| ProductSpec {
                id: p.id.clone(),
                lot_size: p.lot_size.max(1),
                materials: p
                    .bom
                    .iter()
                    .filter_map(|l| material_index.get(l.item.as_str()).map(|&i| (i, l.qty)))
                    .collect(),
                components: p
                    .bom
                    .iter()
                    .filter_map(|l| product_index.get(l.item.as_str()).map(|&i| (i, l.qty)))
                    .collect(),
                steps: p
                    .routing
                    .iter()
                    .map(|s| StepSpec {
                        eligible: s
                            .times
                            .iter()
                            .filter_map(|(m, min)| {
                                machine_index.get(m.as_str()).map(|&i| (i, min * 60.0))
                            })
                            .collect(),
                        setup_s: s.setup_min * 60.0,
                        load: s.load,
                        base_defect: s.base_defect,
                        ideal_multiplier: crate::physics::ideal_time_multiplier(&s.params),
                        params: s.params.clone(),
                    })
                    .collect(),
                material_cost: 0.0,
            })
            .collect();
        // Roll material cost up the BOM; validation rules out cycles, and the depth cap keeps a
        // hypothetical cycle from recursing forever.
        fn cost(products: &[ProductSpec], unit_cost: &[f64], product: usize, depth: usize) -> f64 {
            if depth > 64 {
                return 0.0;
            }
            let p = &products[product];
            p.materials
                .iter()
                .map(|(m, q)| unit_cost[*m] * q)
                .sum::<f64>()
                + p.components
                    .iter()
                    .map(|(c, q)| cost(products, unit_cost, *c, depth + 1) * q)
                    .sum::<f64>()
        }
        let unit_cost: Vec<f64> = plant.materials.iter().map(|m| m.unit_cost).collect();
        let costs: Vec<f64> = (0..products.len())
            .map(|i| cost(&products, &unit_cost, i, 0))
            .collect();
        for (p, c) in products.iter_mut().zip(costs) {
            p.material_cost = c;
        }

        let materials = plant
            .materials
            .iter()
            .map(|m| MaterialSpec {
                id: m.id.clone(),
                lead_time_days: m.lead_time_days,
                lead_time_jitter_days: m.lead_time_jitter_days,
                initial_stock: m.initial_stock,
                reorder_point: m.reorder_point,
                order_qty: m.order_qty,
                holding_cost_per_unit_day: m.holding_cost_per_unit_day,
                unit_cost: m.unit_cost,
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
        PlantModel {
            periods: plant.tariff.periods.clone(),
            plant,
            machines,
            products,
            materials,
            hourly_price,
            hourly_period,
        }
    }

    pub fn plant(&self) -> &Plant {
        &self.plant
    }

    pub fn machine_ids(&self) -> impl Iterator<Item = &str> {
        self.machines.iter().map(|m| m.id.as_str())
    }

    /// Per machine: its type and the maintenance figures of that type (costs, durations and
    /// the recommended interval, as the plant file states them).
    pub fn machine_maintenance(&self) -> Vec<(String, MaintenanceModel)> {
        self.machines
            .iter()
            .map(|m| {
                let machine_type = self
                    .plant
                    .machines
                    .iter()
                    .find(|p| p.id == m.id)
                    .map_or_else(String::new, |p| p.machine_type.clone());
                (machine_type, m.maintenance)
            })
            .collect()
    }

    /// Electrical draw of a machine while running and while idle, kW.
    pub fn power_kw(&self, machine: MachineId) -> Option<(f64, f64)> {
        self.machines
            .get(machine)
            .map(|m| (m.power.run, m.power.idle))
    }

    /// The energy price (per kWh) at twin time `t`, and when it next changes.
    pub fn tariff_at(&self, t: crate::SimTime) -> (f64, crate::SimTime) {
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
        (price, crate::SimTime(next - offset_ms))
    }

    /// Hours of a preventive service, per machine (what a maintenance window must hold).
    pub fn service_hours(&self) -> Vec<f64> {
        self.machines
            .iter()
            .map(|m| m.maintenance.preventive_h)
            .collect()
    }

    /// A product's routing as a planner sees it: per step, each eligible machine with the
    /// step's set-up seconds and seconds per unit (empty for an unknown product).
    pub fn routing(&self, product: usize) -> Vec<Vec<(MachineId, f64, f64)>> {
        self.products.get(product).map_or_else(Vec::new, |p| {
            p.steps
                .iter()
                .map(|s| s.eligible.iter().map(|&(m, u)| (m, s.setup_s, u)).collect())
                .collect()
        })
    }

    /// A trial batch on the line: the share of `units` scrapped when `product`'s routing step
    /// `step` runs at `values` on a freshly serviced machine, drawn with binomial noise from
    /// `rng`. What a plant learns from trials; the hidden defect model stays inside the twin.
    pub fn trial_batch(
        &self,
        product: usize,
        step: usize,
        values: &[f64],
        units: u64,
        rng: &mut impl rand::Rng,
    ) -> Option<f64> {
        let spec = self.products.get(product)?.steps.get(step)?;
        let &(machine, _) = spec.eligible.first()?;
        let health = &self.machines.get(machine)?.health;
        let p =
            crate::physics::defect_probability(spec.base_defect, health, 0.0, &spec.params, values)
                .clamp(0.0, 1.0);
        let bad = rand_distr::Binomial::new(units, p)
            .map_or(0, |b| rand_distr::Distribution::sample(&b, rng));
        Some(bad as f64 / units.max(1) as f64)
    }
}
