//! Human-readable tables for the terminal.

use aifactory_twin::SimResult;
use std::fmt::Write;

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

fn money(v: f64) -> String {
    // Thousands separators help at a glance; plants think in yuan.
    let whole = v.round() as i64;
    let digits = whole.abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if whole < 0 { format!("-{out}") } else { out }
}

/// The KPI table `demo` and `sim` print.
pub(crate) fn kpi_table(result: &SimResult, currency: &str) -> String {
    let k = &result.kpis;
    let rows: Vec<(&str, String, &str)> = vec![
        ("OEE", pct(k.oee), "availability × performance × quality"),
        (
            "  availability",
            pct(k.availability),
            "running / (running + set-up + down + maintenance)",
        ),
        (
            "  performance",
            pct(k.performance),
            "ideal cycle time / actual running time",
        ),
        (
            "  quality",
            pct(k.quality),
            "good units / units processed, per operation",
        ),
        (
            "On-time delivery",
            pct(k.on_time_delivery),
            "sales orders delivered by their due date",
        ),
        (
            "Throughput",
            format!("{:.1} units/day", k.throughput),
            "finished good units shipped",
        ),
        (
            "Mean tardiness",
            format!("{:.2} h", k.mean_tardiness_h),
            "per sales order due in the horizon",
        ),
        (
            "Average WIP",
            format!("{:.0} units", k.avg_wip),
            "released to the floor, not yet finished",
        ),
        (
            "Scrap rate",
            pct(k.scrap_rate),
            "scrapped / (scrapped + good), per operation",
        ),
        (
            "Energy per good unit",
            format!("{:.2} kWh", k.energy_kwh_per_good_unit),
            "time-of-use tariff applies",
        ),
        (
            "Failures / PM services",
            format!("{} / {}", k.failures, k.preventive_maintenance),
            "breakdowns / preventive services",
        ),
        (
            "Stockouts",
            k.stockouts.to_string(),
            "work orders blocked by missing material",
        ),
        (
            "Energy cost",
            format!("{} {currency}", money(k.energy_cost)),
            "",
        ),
        (
            "Maintenance cost",
            format!("{} {currency}", money(k.maintenance_cost)),
            "",
        ),
        (
            "Tardiness cost",
            format!("{} {currency}", money(k.tardiness_cost)),
            "",
        ),
        (
            "Scrap cost",
            format!("{} {currency}", money(k.scrap_cost)),
            "",
        ),
        (
            "Holding cost",
            format!("{} {currency}", money(k.holding_cost)),
            "",
        ),
        (
            "Total cost",
            format!("{} {currency}", money(k.total_cost)),
            "",
        ),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} · policy {} · seed {} · {:.1} days · {} events",
        result.plant, result.policy, result.seed, k.sim_days, k.events_processed
    );
    let _ = writeln!(out, "{:<24} {:>18}   definition", "KPI", "value");
    let _ = writeln!(out, "{}", "─".repeat(92));
    for (name, value, note) in rows {
        let _ = writeln!(out, "{name:<24} {value:>18}   {note}");
    }
    out
}

/// Per-machine hours, availability and failures.
pub(crate) fn machine_table(result: &SimResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>4} {:>4}",
        "machine", "run h", "setup h", "down h", "maint h", "idle h", "avail", "fail", "PM"
    );
    for m in &result.machines {
        let _ = writeln!(
            out,
            "{:<12} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7} {:>4} {:>4}",
            m.machine,
            m.run_h,
            m.setup_h,
            m.breakdown_h,
            m.maintenance_h,
            m.idle_h,
            pct(m.availability),
            m.failures,
            m.preventive_maintenance
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::money;

    #[test]
    fn money_groups_thousands() {
        assert_eq!(money(1234567.4), "1,234,567");
        assert_eq!(money(-1000.0), "-1,000");
        assert_eq!(money(999.0), "999");
    }
}
