//! KPI definitions, computed one way for every policy, every plant and every data source.
//!
//! OEE follows Nakajima: loading time is the time a machine was meant to produce (running,
//! setting up, broken down or in maintenance); idle time with nothing to do is not loading time.
//! Availability = running / loading; performance = ideal time of the units made / running;
//! quality = good units / units processed, counted per operation.

use serde::{Deserialize, Serialize};

/// Raw totals a plant (or the twin) accumulates over a horizon. All times in seconds, summed
/// over machines where they are per machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KpiInputs {
    pub horizon_s: f64,
    pub run_s: f64,
    pub setup_s: f64,
    /// Unplanned: from failure to the end of repair.
    pub breakdown_s: f64,
    /// Planned (preventive) maintenance.
    pub maintenance_s: f64,
    /// Running time the processed units would have taken at ideal speed on a new machine.
    pub ideal_run_s: f64,
    pub op_units_processed: u64,
    pub op_units_good: u64,
    /// Finished good units of products shipped against sales orders.
    pub finished_good_units: u64,
    pub scrapped_units: u64,
    /// Sales orders delivered, or due within the horizon.
    pub orders_due: u64,
    pub orders_on_time: u64,
    pub orders_completed: u64,
    /// Sum over due orders of hours late (to delivery, or to the horizon's end if undelivered).
    pub tardiness_h: f64,
    /// Time integral of units released to the floor and not yet finished, and of finished units
    /// held in stock for later orders (unit·seconds).
    pub wip_unit_s: f64,
    pub energy_kwh: f64,
    pub energy_cost: f64,
    pub maintenance_cost: f64,
    pub tardiness_cost: f64,
    pub scrap_cost: f64,
    /// Material and WIP holding together.
    pub holding_cost: f64,
    /// The raw-material part of `holding_cost` (what purchasing controls).
    #[serde(default)]
    pub material_holding_cost: f64,
    pub failures: u64,
    pub preventive_maintenance: u64,
    pub stockouts: u64,
    pub events_processed: u64,
    /// Work orders opened (lots, make-ups for scrap and component work orders alike).
    #[serde(default)]
    pub work_orders: u64,
    /// Sum over completed sales orders of hours from release to completion.
    #[serde(default)]
    pub order_lead_time_h: f64,
}

/// The KPI set every report, benchmark and tier assessment reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kpis {
    pub oee: f64,
    pub availability: f64,
    pub performance: f64,
    pub quality: f64,
    pub on_time_delivery: f64,
    /// Finished good units per day.
    pub throughput: f64,
    pub mean_tardiness_h: f64,
    /// Average units in process.
    pub avg_wip: f64,
    pub scrap_rate: f64,
    pub energy_kwh_per_good_unit: f64,
    pub energy_kwh: f64,
    pub energy_cost: f64,
    pub maintenance_cost: f64,
    pub tardiness_cost: f64,
    pub scrap_cost: f64,
    pub holding_cost: f64,
    /// The raw-material part of `holding_cost`.
    #[serde(default)]
    pub material_holding_cost: f64,
    pub total_cost: f64,
    /// Machine hours lost to breakdowns (failure to end of repair) and planned maintenance.
    #[serde(default)]
    pub downtime_h: f64,
    /// OEE's losses in machine hours, which add up to loading time less the ideal time of the
    /// good units: set-ups (changing products), breakdowns, planned maintenance stops, running
    /// slower than ideal (minor stops are not told apart from it), and the ideal time spent on
    /// units later scrapped.
    #[serde(default)]
    pub setup_h: f64,
    #[serde(default)]
    pub breakdown_h: f64,
    #[serde(default)]
    pub planned_stop_h: f64,
    #[serde(default)]
    pub speed_loss_h: f64,
    #[serde(default)]
    pub defect_loss_h: f64,
    pub good_units: u64,
    pub orders_completed: u64,
    pub failures: u64,
    pub preventive_maintenance: u64,
    pub stockouts: u64,
    pub events_processed: u64,
    /// Work orders opened over the horizon (what set-ups are paid per).
    #[serde(default)]
    pub work_orders: u64,
    /// Mean hours from a sales order's release to its completion (its cycle time).
    #[serde(default)]
    pub mean_order_lead_time_h: f64,
    pub sim_days: f64,
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

impl Kpis {
    /// The one definition of every KPI.
    pub fn compute(i: &KpiInputs) -> Kpis {
        let loading = i.run_s + i.setup_s + i.breakdown_s + i.maintenance_s;
        let availability = ratio(i.run_s, loading);
        let performance = ratio(i.ideal_run_s, i.run_s).min(1.0);
        let quality = ratio(i.op_units_good as f64, i.op_units_processed as f64);
        let days = i.horizon_s / 86_400.0;
        let on_time_delivery = if i.orders_due == 0 {
            1.0
        } else {
            ratio(i.orders_on_time as f64, i.orders_due as f64)
        };
        let total_cost =
            i.energy_cost + i.maintenance_cost + i.tardiness_cost + i.scrap_cost + i.holding_cost;
        Kpis {
            oee: availability * performance * quality,
            availability,
            performance,
            quality,
            on_time_delivery,
            throughput: ratio(i.finished_good_units as f64, days),
            mean_tardiness_h: ratio(i.tardiness_h, i.orders_due as f64),
            avg_wip: ratio(i.wip_unit_s, i.horizon_s),
            scrap_rate: ratio(
                i.scrapped_units as f64,
                (i.scrapped_units + i.op_units_good) as f64,
            ),
            energy_kwh_per_good_unit: ratio(i.energy_kwh, i.finished_good_units as f64),
            energy_kwh: i.energy_kwh,
            energy_cost: i.energy_cost,
            maintenance_cost: i.maintenance_cost,
            tardiness_cost: i.tardiness_cost,
            scrap_cost: i.scrap_cost,
            holding_cost: i.holding_cost,
            material_holding_cost: i.material_holding_cost,
            total_cost,
            downtime_h: (i.breakdown_s + i.maintenance_s) / 3600.0,
            setup_h: i.setup_s / 3600.0,
            breakdown_h: i.breakdown_s / 3600.0,
            planned_stop_h: i.maintenance_s / 3600.0,
            speed_loss_h: (i.run_s - i.ideal_run_s.min(i.run_s)) / 3600.0,
            defect_loss_h: i.ideal_run_s.min(i.run_s) * (1.0 - quality) / 3600.0,
            good_units: i.finished_good_units,
            orders_completed: i.orders_completed,
            failures: i.failures,
            preventive_maintenance: i.preventive_maintenance,
            stockouts: i.stockouts,
            events_processed: i.events_processed,
            work_orders: i.work_orders,
            mean_order_lead_time_h: ratio(i.order_lead_time_h, i.orders_completed as f64),
            sim_days: days,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oee_is_the_product_of_its_factors() {
        let inputs = KpiInputs {
            horizon_s: 86_400.0,
            run_s: 6.0 * 3600.0,
            setup_s: 1.0 * 3600.0,
            breakdown_s: 1.0 * 3600.0,
            ideal_run_s: 5.4 * 3600.0,
            op_units_processed: 100,
            op_units_good: 95,
            ..KpiInputs::default()
        };
        let k = Kpis::compute(&inputs);
        assert!((k.availability - 0.75).abs() < 1e-12);
        assert!((k.downtime_h - 1.0).abs() < 1e-12);
        assert!((k.performance - 0.9).abs() < 1e-12);
        assert!((k.quality - 0.95).abs() < 1e-12);
        assert!((k.oee - 0.75 * 0.9 * 0.95).abs() < 1e-12);
    }

    #[test]
    fn the_losses_add_up_to_what_oee_misses() {
        let inputs = KpiInputs {
            horizon_s: 86_400.0,
            run_s: 6.0 * 3600.0,
            setup_s: 1.0 * 3600.0,
            breakdown_s: 0.5 * 3600.0,
            maintenance_s: 0.5 * 3600.0,
            ideal_run_s: 5.4 * 3600.0,
            op_units_processed: 100,
            op_units_good: 95,
            ..KpiInputs::default()
        };
        let k = Kpis::compute(&inputs);
        let loading_h = 8.0;
        let losses =
            k.setup_h + k.breakdown_h + k.planned_stop_h + k.speed_loss_h + k.defect_loss_h;
        assert!((losses - loading_h * (1.0 - k.oee)).abs() < 1e-9, "{k:?}");
        assert!((k.speed_loss_h - 0.6).abs() < 1e-9);
        assert!((k.defect_loss_h - 5.4 * 0.05).abs() < 1e-9);
        assert!((k.planned_stop_h - 0.5).abs() < 1e-12 && (k.setup_h - 1.0).abs() < 1e-12);
    }

    #[test]
    fn empty_horizon_gives_zeros_not_nan() {
        let k = Kpis::compute(&KpiInputs::default());
        let json = serde_json::to_string(&k).expect("kpis serialise");
        assert!(!json.contains("NaN") && !json.contains("null"), "{json}");
        assert_eq!(k.on_time_delivery, 1.0);
    }
}
