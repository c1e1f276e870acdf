//! OEE loss analysis (the management stage): where a plant's productive time goes, as
//! Nakajima's six big losses, ranked machine by machine so the largest cause comes first.
//!
//! The time model is the one `core::kpi` uses: loading time = running + set-up + breakdown +
//! planned maintenance; availability losses are breakdowns, set-ups and adjustments (and planned
//! maintenance, reported on its own line because it is a choice, not a loss of control);
//! performance losses are the running time beyond the ideal time of the units made, split into
//! small stops (where the plant records them) and reduced speed; quality losses are the ideal
//! time of the units scrapped, split into start-up and production rejects. What is left is
//! valuable operating time, and valuable / loading = availability × performance × quality.

use serde::Serialize;

/// One machine's accumulated times (hours) and counts over a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MachineTime {
    pub machine: String,
    pub run_h: f64,
    pub setup_h: f64,
    pub breakdown_h: f64,
    pub maintenance_h: f64,
    /// Running time the units made would have taken at the ideal cycle time.
    pub ideal_run_h: f64,
    /// Short stops inside running time, where the plant records them (else 0).
    pub small_stops_h: f64,
    pub units_processed: u64,
    pub units_good: u64,
    /// Of the bad units, those made while starting up after a set-up or repair (else 0).
    pub startup_rejects: u64,
}

impl MachineTime {
    /// A machine's times and counts as the plant-state projection accumulated them from the
    /// plant's events, the twin's or a real plant's alike.
    pub fn from_projection(
        machine: &str,
        totals: &aifactory_plant::projection::MachineTotals,
    ) -> MachineTime {
        let hours = |ms: u64| ms as f64 / 3_600_000.0;
        MachineTime {
            machine: machine.to_owned(),
            run_h: hours(totals.run_ms),
            setup_h: hours(totals.setup_ms),
            breakdown_h: hours(totals.breakdown_ms),
            maintenance_h: hours(totals.maintenance_ms),
            ideal_run_h: totals.ideal_run_s / 3600.0,
            small_stops_h: 0.0,
            units_processed: totals.units_processed,
            units_good: totals.units_good,
            startup_rejects: 0,
        }
    }
}

/// The six big losses, plus planned maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    Breakdowns,
    SetupAndAdjustments,
    PlannedMaintenance,
    SmallStops,
    ReducedSpeed,
    StartupRejects,
    ProductionRejects,
}

impl Loss {
    pub fn describe(self) -> &'static str {
        match self {
            Loss::Breakdowns => "breakdowns: unplanned stops until repaired",
            Loss::SetupAndAdjustments => "set-up and adjustments between products",
            Loss::PlannedMaintenance => "planned maintenance",
            Loss::SmallStops => "small stops and idling inside running time",
            Loss::ReducedSpeed => "reduced speed: slower than the ideal cycle",
            Loss::StartupRejects => "start-up rejects",
            Loss::ProductionRejects => "production rejects",
        }
    }
}

/// One machine's hours lost to one cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossItem {
    pub machine: String,
    pub loss: Loss,
    pub hours: f64,
    /// Share of the plant's loading time.
    pub share: f64,
}

/// The analysis: every loss ranked, totals per cause, and the OEE they add up to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossReport {
    pub loading_h: f64,
    pub valuable_h: f64,
    pub oee: f64,
    /// Hours per cause over all machines, largest first.
    pub by_cause: Vec<(Loss, f64)>,
    /// Every (machine, cause) with lost hours, largest first.
    pub ranked: Vec<LossItem>,
}

fn finite(x: f64) -> f64 {
    if x.is_finite() { x.max(0.0) } else { 0.0 }
}

/// Splits each machine's loading time into the six big losses and valuable time.
pub fn six_big_losses(machines: &[MachineTime]) -> LossReport {
    let mut ranked = Vec::new();
    let (mut loading_total, mut valuable_total) = (0.0, 0.0);
    for m in machines {
        let (run, setup, down, maint) = (
            finite(m.run_h),
            finite(m.setup_h),
            finite(m.breakdown_h),
            finite(m.maintenance_h),
        );
        loading_total += run + setup + down + maint;
        let ideal = finite(m.ideal_run_h).min(run);
        let small = finite(m.small_stops_h).min(run - ideal);
        let processed = m.units_processed.max(m.units_good);
        let bad = processed - m.units_good;
        let per_unit = if processed > 0 {
            ideal / processed as f64
        } else {
            0.0
        };
        let startup = m.startup_rejects.min(bad);
        valuable_total += per_unit * m.units_good as f64;
        let items = [
            (Loss::Breakdowns, down),
            (Loss::SetupAndAdjustments, setup),
            (Loss::PlannedMaintenance, maint),
            (Loss::SmallStops, small),
            (Loss::ReducedSpeed, run - ideal - small),
            (Loss::StartupRejects, per_unit * startup as f64),
            (Loss::ProductionRejects, per_unit * (bad - startup) as f64),
        ];
        for (loss, hours) in items {
            if hours > 0.0 {
                ranked.push(LossItem {
                    machine: m.machine.clone(),
                    loss,
                    hours,
                    share: 0.0,
                });
            }
        }
    }
    for item in &mut ranked {
        item.share = if loading_total > 0.0 {
            item.hours / loading_total
        } else {
            0.0
        };
    }
    ranked.sort_by(|a, b| {
        b.hours
            .total_cmp(&a.hours)
            .then_with(|| a.machine.cmp(&b.machine))
            .then_with(|| a.loss.cmp(&b.loss))
    });
    let mut by_cause: std::collections::BTreeMap<Loss, f64> = Default::default();
    for item in &ranked {
        *by_cause.entry(item.loss).or_default() += item.hours;
    }
    let mut by_cause: Vec<(Loss, f64)> = by_cause.into_iter().collect();
    by_cause.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    LossReport {
        loading_h: loading_total,
        valuable_h: valuable_total,
        oee: if loading_total > 0.0 {
            valuable_total / loading_total
        } else {
            0.0
        },
        by_cause,
        ranked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lathe() -> MachineTime {
        MachineTime {
            machine: "LATHE-1".into(),
            run_h: 80.0,
            setup_h: 6.0,
            breakdown_h: 10.0,
            maintenance_h: 4.0,
            ideal_run_h: 60.0,
            small_stops_h: 5.0,
            units_processed: 600,
            units_good: 570,
            startup_rejects: 10,
        }
    }

    #[test]
    fn losses_and_valuable_time_add_up_to_loading_time_and_oee() {
        let r = six_big_losses(&[lathe()]);
        assert_eq!(r.loading_h, 100.0);
        // 60 h ideal for 600 units: 0.1 h each; 570 good → 57 h valuable.
        assert!((r.valuable_h - 57.0).abs() < 1e-9);
        let lost: f64 = r.ranked.iter().map(|i| i.hours).sum();
        assert!((lost + r.valuable_h - r.loading_h).abs() < 1e-9);
        // OEE = availability (0.8) × performance (0.75) × quality (0.95).
        assert!((r.oee - 0.8 * 0.75 * 0.95).abs() < 1e-12);
        let hours = |loss| r.by_cause.iter().find(|(l, _)| *l == loss).map(|(_, h)| *h);
        assert_eq!(hours(Loss::ReducedSpeed), Some(15.0));
        assert_eq!(hours(Loss::SmallStops), Some(5.0));
        assert!((hours(Loss::StartupRejects).unwrap() - 1.0).abs() < 1e-9);
        assert!((hours(Loss::ProductionRejects).unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_projections_totals_split_into_the_same_losses() {
        let totals = aifactory_plant::projection::MachineTotals {
            run_ms: 80 * 3_600_000,
            setup_ms: 6 * 3_600_000,
            breakdown_ms: 10 * 3_600_000,
            maintenance_ms: 4 * 3_600_000,
            ideal_run_s: 60.0 * 3600.0,
            units_processed: 600,
            units_good: 570,
            ..Default::default()
        };
        let r = six_big_losses(&[MachineTime::from_projection("LATHE-1", &totals)]);
        assert_eq!(r.loading_h, 100.0);
        assert!((r.valuable_h - 57.0).abs() < 1e-9);
        assert!((r.oee - 0.8 * 0.75 * 0.95).abs() < 1e-12);
    }

    #[test]
    fn the_largest_cause_comes_first_across_machines() {
        let mut mill = lathe();
        mill.machine = "MILL-2".into();
        mill.breakdown_h = 30.0;
        let r = six_big_losses(&[lathe(), mill]);
        assert_eq!(r.ranked[0].machine, "MILL-2");
        assert_eq!(r.ranked[0].loss, Loss::Breakdowns);
        assert_eq!(r.by_cause[0], (Loss::Breakdowns, 40.0));
        assert!(r.ranked.windows(2).all(|w| w[0].hours >= w[1].hours));
    }

    #[test]
    fn inconsistent_or_missing_figures_do_not_break_the_split() {
        let odd = MachineTime {
            machine: "X".into(),
            run_h: f64::NAN,
            setup_h: -3.0,
            ideal_run_h: 50.0,
            units_processed: 0,
            units_good: 10,
            startup_rejects: 99,
            ..MachineTime::default()
        };
        let r = six_big_losses(&[odd, MachineTime::default()]);
        assert_eq!(r.loading_h, 0.0);
        assert_eq!(r.oee, 0.0);
        assert!(r.ranked.is_empty());
    }
}
