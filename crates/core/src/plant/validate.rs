//! The meaning checks a plant file must pass after it parses: unique ids, references that
//! resolve, numbers in range, a tariff covering the day, and no cycles in bills of materials.

use super::locate::FieldPath;
use super::{Plant, ProcessParam};
use crate::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

type Problems = Vec<(FieldPath, String)>;

pub(super) fn start_of(start: &toml::value::Datetime) -> Result<(Timestamp, i32), String> {
    let (Some(date), Some(time), Some(offset)) = (start.date, start.time, start.offset) else {
        return Err(
            "needs a full date, time and UTC offset, e.g. 2026-03-02T00:00:00+08:00".to_owned(),
        );
    };
    let offset_min = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i32::from(minutes),
    };
    Ok((
        Timestamp::from_civil(
            i32::from(date.year),
            u32::from(date.month),
            u32::from(date.day),
            u32::from(time.hour),
            u32::from(time.minute),
            u32::from(time.second.unwrap_or(0)),
            offset_min,
        ),
        offset_min,
    ))
}

struct Checker {
    problems: Problems,
}

impl Checker {
    fn fail(&mut self, path: FieldPath, reason: impl Into<String>) {
        self.problems.push((path, reason.into()));
    }

    /// A finite number ≥ 0 (or > 0 when `strict`).
    fn non_negative(&mut self, path: FieldPath, value: f64, strict: bool) {
        if !value.is_finite() {
            self.fail(path, format!("must be a finite number, got {value}"));
        } else if strict && value <= 0.0 {
            self.fail(path, format!("must be greater than 0, got {value}"));
        } else if value < 0.0 {
            self.fail(path, format!("must not be negative, got {value}"));
        }
    }

    fn fraction(&mut self, path: FieldPath, value: f64) {
        if !(0.0..=1.0).contains(&value) {
            self.fail(path, format!("must be between 0 and 1, got {value}"));
        }
    }

    fn unique_ids<'a>(
        &mut self,
        list: &str,
        ids: impl Iterator<Item = &'a str>,
    ) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        for (i, id) in ids.enumerate() {
            let path = FieldPath::root().key(list).index(i).key("id");
            if id.trim().is_empty() {
                self.fail(path, "must not be empty");
            } else if !seen.insert(id) {
                self.fail(path, format!("duplicate id `{id}`"));
            }
        }
        seen
    }

    fn reference(&mut self, path: FieldPath, id: &str, known: &BTreeSet<&str>, what: &str) {
        if !known.contains(id) {
            self.fail(path, format!("unknown {what} `{id}`"));
        }
    }

    fn param(&mut self, path: FieldPath, p: &ProcessParam) {
        for (name, v) in [
            ("min", p.min),
            ("max", p.max),
            ("default", p.default),
            ("optimum", p.optimum),
        ] {
            if !v.is_finite() {
                self.fail(path.key(name), "must be a finite number");
            }
        }
        if p.min >= p.max {
            self.fail(
                path.key("max"),
                format!("must be greater than min ({} >= {})", p.min, p.max),
            );
            return;
        }
        for (name, v) in [("default", p.default), ("optimum", p.optimum)] {
            if v < p.min || v > p.max {
                self.fail(
                    path.key(name),
                    format!("{v} is outside [{}, {}]", p.min, p.max),
                );
            }
        }
        self.non_negative(path.key("defect_weight"), p.defect_weight, false);
        for (name, v) in [("wear_slope", p.wear_slope), ("time_slope", p.time_slope)] {
            if !v.is_finite() {
                self.fail(path.key(name), "must be a finite number");
            }
        }
    }
}

pub(super) fn validate(plant: &Plant) -> Problems {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let root = FieldPath::root();

    if let Err(reason) = start_of(&plant.plant.start) {
        c.fail(root.key("plant").key("start"), reason);
    }
    if plant.plant.id.trim().is_empty() {
        c.fail(root.key("plant").key("id"), "must not be empty");
    }

    let areas = c.unique_ids("areas", plant.areas.iter().map(|a| a.id.as_str()));
    let lines = c.unique_ids("lines", plant.lines.iter().map(|l| l.id.as_str()));
    let centres = c.unique_ids(
        "work_centres",
        plant.work_centres.iter().map(|w| w.id.as_str()),
    );
    let types = c.unique_ids(
        "machine_types",
        plant.machine_types.iter().map(|t| t.id.as_str()),
    );
    let machines = c.unique_ids("machines", plant.machines.iter().map(|m| m.id.as_str()));
    let materials = c.unique_ids("materials", plant.materials.iter().map(|m| m.id.as_str()));
    let products = c.unique_ids("products", plant.products.iter().map(|p| p.id.as_str()));
    for clash in materials.intersection(&products) {
        let i = plant
            .products
            .iter()
            .position(|p| p.id == *clash)
            .unwrap_or(0);
        c.fail(
            root.key("products").index(i).key("id"),
            format!("`{clash}` is also a material id; BOM items must be unambiguous"),
        );
    }

    for (i, line) in plant.lines.iter().enumerate() {
        c.reference(
            root.key("lines").index(i).key("area"),
            &line.area,
            &areas,
            "area",
        );
    }
    for (i, wc) in plant.work_centres.iter().enumerate() {
        if let Some(line) = &wc.line {
            c.reference(
                root.key("work_centres").index(i).key("line"),
                line,
                &lines,
                "line",
            );
        }
    }
    for (i, t) in plant.machine_types.iter().enumerate() {
        let p = root.key("machine_types").index(i);
        let power = p.key("power_kw");
        c.non_negative(power.key("run"), t.power_kw.run, false);
        c.non_negative(power.key("idle"), t.power_kw.idle, false);
        c.non_negative(power.key("down"), t.power_kw.down, false);
        let h = p.key("health");
        c.non_negative(
            h.key("wear_per_run_hour"),
            t.health.wear_per_run_hour,
            false,
        );
        c.non_negative(h.key("mtbf_new_h"), t.health.mtbf_new_h, true);
        c.non_negative(h.key("hazard_growth"), t.health.hazard_growth, false);
        c.non_negative(h.key("slowdown_at_worn"), t.health.slowdown_at_worn, false);
        c.fraction(h.key("defect_at_worn"), t.health.defect_at_worn);
        let m = p.key("maintenance");
        c.non_negative(m.key("preventive_h"), t.maintenance.preventive_h, true);
        c.non_negative(
            m.key("preventive_cost"),
            t.maintenance.preventive_cost,
            false,
        );
        c.non_negative(m.key("corrective_h"), t.maintenance.corrective_h, true);
        c.non_negative(
            m.key("corrective_cost"),
            t.maintenance.corrective_cost,
            false,
        );
        c.non_negative(
            m.key("pm_interval_run_h"),
            t.maintenance.pm_interval_run_h,
            true,
        );
        let s = p.key("sensors");
        c.non_negative(s.key("vibration_mm_s"), t.sensors.vibration_mm_s, false);
        c.non_negative(
            s.key("temperature_rise_c"),
            t.sensors.temperature_rise_c,
            false,
        );
        c.non_negative(s.key("current_a"), t.sensors.current_a, false);
        c.fraction(s.key("noise_cv"), t.sensors.noise_cv);
        c.non_negative(s.key("precursor_h"), t.sensors.precursor_h, false);
        c.non_negative(s.key("precursor_rise"), t.sensors.precursor_rise, false);
    }
    for (i, m) in plant.machines.iter().enumerate() {
        let p = root.key("machines").index(i);
        c.reference(
            p.key("work_centre"),
            &m.work_centre,
            &centres,
            "work centre",
        );
        c.reference(p.key("type"), &m.machine_type, &types, "machine type");
        c.fraction(p.key("initial_wear"), m.initial_wear);
    }
    for (i, m) in plant.materials.iter().enumerate() {
        let p = root.key("materials").index(i);
        c.non_negative(p.key("unit_cost"), m.unit_cost, false);
        c.non_negative(p.key("lead_time_days"), m.lead_time_days, false);
        c.non_negative(
            p.key("lead_time_jitter_days"),
            m.lead_time_jitter_days,
            false,
        );
        if m.lead_time_jitter_days > m.lead_time_days {
            c.fail(
                p.key("lead_time_jitter_days"),
                "must not exceed lead_time_days (lead times cannot be negative)",
            );
        }
        c.non_negative(p.key("initial_stock"), m.initial_stock, false);
        c.non_negative(p.key("reorder_point"), m.reorder_point, false);
        c.non_negative(p.key("order_qty"), m.order_qty, true);
        c.non_negative(
            p.key("holding_cost_per_unit_day"),
            m.holding_cost_per_unit_day,
            false,
        );
    }

    for (i, product) in plant.products.iter().enumerate() {
        let p = root.key("products").index(i);
        c.non_negative(p.key("price"), product.price, false);
        if product.lot_size == 0 {
            c.fail(p.key("lot_size"), "must be at least 1");
        }
        if product.routing.is_empty() {
            c.fail(
                p.key("routing"),
                "a product needs at least one routing step",
            );
        }
        for (j, line) in product.bom.iter().enumerate() {
            let b = p.key("bom").index(j);
            if !materials.contains(line.item.as_str()) && !products.contains(line.item.as_str()) {
                c.fail(
                    b.key("item"),
                    format!("unknown material or product `{}`", line.item),
                );
            }
            c.non_negative(b.key("qty"), line.qty, true);
        }
        for (j, step) in product.routing.iter().enumerate() {
            let s = p.key("routing").index(j);
            if step.times.is_empty() {
                c.fail(
                    s.key("times"),
                    "an operation needs at least one eligible machine",
                );
            }
            for (machine, minutes) in &step.times {
                let t = s.key("times").key(machine);
                c.reference(t.clone(), machine, &machines, "machine");
                c.non_negative(t, *minutes, true);
            }
            c.non_negative(s.key("setup_min"), step.setup_min, false);
            c.non_negative(s.key("load"), step.load, true);
            c.fraction(s.key("base_defect"), step.base_defect);
            let mut names = BTreeSet::new();
            for (k, param) in step.params.iter().enumerate() {
                let pp = s.key("params").index(k);
                if !names.insert(param.name.as_str()) {
                    c.fail(
                        pp.key("name"),
                        format!("duplicate parameter `{}`", param.name),
                    );
                }
                c.param(pp, param);
            }
        }
        if let Some(d) = &product.demand {
            let dp = p.key("demand");
            c.non_negative(dp.key("units_per_day"), d.units_per_day, false);
            c.non_negative(dp.key("order_size"), d.order_size, true);
            c.non_negative(dp.key("noise_cv"), d.noise_cv, false);
            if !d.trend_per_year.is_finite() || d.trend_per_year <= -1.0 {
                c.fail(dp.key("trend_per_year"), "must be a number above -1");
            }
            if d.weekly.len() != 7 {
                c.fail(
                    dp.key("weekly"),
                    format!(
                        "needs 7 multipliers (Monday to Sunday), got {}",
                        d.weekly.len()
                    ),
                );
            }
            for (k, w) in d.weekly.iter().enumerate() {
                c.non_negative(dp.key("weekly").index(k), *w, false);
            }
            match d.due_days.as_slice() {
                [lo, hi] if lo.is_finite() && hi.is_finite() && *lo >= 0.0 && lo <= hi => {}
                _ => c.fail(
                    dp.key("due_days"),
                    format!(
                        "must be [earliest, latest] with 0 <= earliest <= latest, got {:?}",
                        d.due_days
                    ),
                ),
            }
        }
    }
    check_bom_cycles(plant, &mut c);
    check_tariff(plant, &mut c);

    let costs = root.key("costs");
    c.non_negative(
        costs.key("tardiness_per_unit_day"),
        plant.costs.tardiness_per_unit_day,
        false,
    );
    c.non_negative(
        costs.key("scrap_handling_per_unit"),
        plant.costs.scrap_handling_per_unit,
        false,
    );
    c.non_negative(
        costs.key("wip_holding_per_unit_day"),
        plant.costs.wip_holding_per_unit_day,
        false,
    );
    let twin = root.key("twin");
    c.non_negative(
        twin.key("telemetry_period_s"),
        plant.twin.telemetry_period_s,
        false,
    );
    if plant.twin.telemetry_period_s > 0.0 && plant.twin.telemetry_period_s < 1.0 {
        c.fail(
            twin.key("telemetry_period_s"),
            "must be 0 (off) or at least 1 second",
        );
    }
    c.non_negative(
        twin.key("review_period_h"),
        plant.twin.review_period_h,
        true,
    );
    c.non_negative(twin.key("repair_time_cv"), plant.twin.repair_time_cv, false);
    if !plant.twin.ambient_c.is_finite() {
        c.fail(twin.key("ambient_c"), "must be a finite number");
    }
    c.problems
}

/// Products that contain themselves, directly or through components, cannot be built.
fn check_bom_cycles(plant: &Plant, c: &mut Checker) {
    let index: BTreeMap<&str, usize> = plant
        .products
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; plant.products.len()];
    let mut reported = BTreeSet::new();
    for start in 0..plant.products.len() {
        if state[start] != 0 {
            continue;
        }
        // Iterative DFS: (product, next BOM line to look at).
        let mut stack = vec![(start, 0usize)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let bom = &plant.products[node].bom;
            if *next >= bom.len() {
                state[node] = 2;
                stack.pop();
                continue;
            }
            let line_no = *next;
            *next += 1;
            let Some(&child) = index.get(bom[line_no].item.as_str()) else {
                continue;
            };
            match state[child] {
                0 => {
                    state[child] = 1;
                    stack.push((child, 0));
                }
                1 if reported.insert((node, line_no)) => {
                    let from = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..]
                        .iter()
                        .map(|(n, _)| plant.products[*n].id.as_str())
                        .collect();
                    cycle.push(plant.products[child].id.as_str());
                    c.fail(
                        FieldPath::root()
                            .key("products")
                            .index(node)
                            .key("bom")
                            .index(line_no)
                            .key("item"),
                        format!("cyclic bill of materials: {}", cycle.join(" -> ")),
                    );
                }
                _ => {}
            }
        }
    }
}

/// The tariff's periods must tile the 24 hours of a day exactly once.
fn check_tariff(plant: &Plant, c: &mut Checker) {
    let path = FieldPath::root().key("tariff").key("periods");
    let mut covered = [None::<usize>; 24];
    for (i, period) in plant.tariff.periods.iter().enumerate() {
        let p = path.index(i);
        c.non_negative(p.key("price_per_kwh"), period.price_per_kwh, false);
        if period.from_h >= 24 || period.to_h > 24 || period.from_h >= period.to_h {
            c.fail(
                p.key("to_h"),
                format!(
                    "hours must satisfy 0 <= from_h < to_h <= 24, got {}..{}",
                    period.from_h, period.to_h
                ),
            );
            continue;
        }
        for hour in period.from_h..period.to_h {
            let slot = &mut covered[hour as usize];
            if let Some(other) = *slot {
                c.fail(
                    p.key("from_h"),
                    format!("hour {hour} is already priced by period {other}"),
                );
                break;
            }
            *slot = Some(i);
        }
    }
    if let Some(hour) = covered.iter().position(Option::is_none) {
        c.fail(
            path,
            format!("hour {hour}:00 has no price; periods must cover 0..24"),
        );
    }
}
