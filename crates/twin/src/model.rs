//! A validated plant file compiled into indexed arrays for fast simulation.

use aifactory_core::Plant;
use aifactory_core::plant::{HealthModel, MaintenanceModel, PowerKw, ProcessParam, SensorModel};
use aifactory_plant::{MachineId, MasterData};
use std::collections::BTreeMap;

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

/// The plant as the twin runs it: the master data every plant has, and the physics only the
/// twin knows.
#[derive(Debug, Clone)]
pub struct PlantModel {
    pub(crate) master: MasterData,
    pub(crate) machines: Vec<MachineSpec>,
    pub(crate) products: Vec<ProductSpec>,
    pub(crate) materials: Vec<MaterialSpec>,
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

        PlantModel {
            master: MasterData::new(plant),
            machines,
            products,
            materials,
        }
    }

    /// The master data: what a real plant's runtime would build from the same plant file.
    pub fn master(&self) -> &MasterData {
        &self.master
    }

    pub fn plant(&self) -> &Plant {
        self.master.plant()
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
