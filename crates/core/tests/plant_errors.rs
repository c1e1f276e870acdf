//! Every way a plant file can be wrong gets `line:col`, the field, and the reason — never a panic.

use aifactory_core::Plant;
use aifactory_core::plant::Diagnostic;
use proptest::prelude::*;
use std::path::Path;

const TINY: &str = r#"[plant]
id = "tiny"
name = "Tiny plant"
start = 2026-03-02T00:00:00+08:00

[[work_centres]]
id = "WC"
name = "Turning"

[[machine_types]]
id = "lathe"
power_kw = { run = 10.0, idle = 2.0, down = 0.2 }
health = { wear_per_run_hour = 0.002, mtbf_new_h = 800.0, hazard_growth = 3.0, slowdown_at_worn = 0.2, defect_at_worn = 0.05 }
maintenance = { preventive_h = 2.0, preventive_cost = 500.0, corrective_h = 10.0, corrective_cost = 4000.0, pm_interval_run_h = 200.0 }
sensors = { vibration_mm_s = 2.0, temperature_rise_c = 20.0, current_a = 25.0 }

[[machines]]
id = "M1"
work_centre = "WC"
type = "lathe"

[[materials]]
id = "BAR"
unit_cost = 10.0
lead_time_days = 3.0
initial_stock = 100.0
reorder_point = 50.0
order_qty = 100.0

[[products]]
id = "SHAFT"
price = 100.0
lot_size = 10
bom = [{ item = "BAR", qty = 1.0 }]
demand = { units_per_day = 20.0, order_size = 10.0, due_days = [3.0, 5.0] }

[[products.routing]]
name = "turn"
times = { M1 = 5.0 }

[[products]]
id = "GEAR"
price = 50.0
lot_size = 10
bom = [{ item = "BAR", qty = 0.5 }]

[[products.routing]]
name = "turn"
times = { M1 = 2.0 }

[tariff]
periods = [
  { name = "valley", from_h = 0, to_h = 8, price_per_kwh = 0.3 },
  { name = "peak", from_h = 8, to_h = 24, price_per_kwh = 1.0 },
]
"#;

fn problems(text: &str) -> Vec<Diagnostic> {
    match Plant::parse(text, Path::new("plant.toml")) {
        Ok(_) => Vec::new(),
        Err(e) => {
            // The rendered message leads with file:line:col for editors and terminals.
            let rendered = e.to_string();
            assert!(rendered.starts_with("plant.toml:"), "{rendered}");
            e.problems().to_vec()
        }
    }
}

/// The single problem in `text`, as `line:col field: reason`.
fn one(text: &str) -> Diagnostic {
    let p = problems(text);
    assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
    p.into_iter().next().unwrap_or_else(|| unreachable!())
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("`{needle}` not in fixture"))
}

#[test]
fn the_fixture_is_valid() {
    assert!(problems(TINY).is_empty());
}

#[test]
fn syntax_error_names_line_and_column() {
    let text = TINY.replace("price = 100.0", "price = = 100.0");
    let d = one(&text);
    assert_eq!(d.line, line_of(&text, "price = = 100.0"));
    assert!(d.col > 1, "{d}");
    assert!(d.field.starts_with("products"), "{d}");
}

#[test]
fn unknown_machine_in_a_routing() {
    let text = TINY.replace("times = { M1 = 5.0 }", "times = { M9 = 5.0 }");
    let d = one(&text);
    assert_eq!(d.field, "products[0].routing[0].times.M9");
    assert_eq!(d.line, line_of(&text, "M9"));
    assert!(d.reason.contains("unknown machine `M9`"), "{d}");
}

#[test]
fn negative_time() {
    let text = TINY.replace("times = { M1 = 2.0 }", "times = { M1 = -2.0 }");
    let d = one(&text);
    assert_eq!(d.field, "products[1].routing[0].times.M1");
    assert_eq!(d.line, line_of(&text, "M1 = -2.0"));
    assert!(d.reason.contains("greater than 0"), "{d}");
}

#[test]
fn cyclic_bom() {
    let text = TINY
        .replace(
            "bom = [{ item = \"BAR\", qty = 1.0 }]",
            "bom = [{ item = \"GEAR\", qty = 1.0 }]",
        )
        .replace(
            "bom = [{ item = \"BAR\", qty = 0.5 }]",
            "bom = [{ item = \"SHAFT\", qty = 0.5 }]",
        );
    let d = one(&text);
    assert!(d.reason.contains("cyclic bill of materials"), "{d}");
    assert!(
        d.reason.contains("SHAFT -> GEAR -> SHAFT") || d.reason.contains("GEAR -> SHAFT -> GEAR"),
        "{d}"
    );
    assert!(d.field.ends_with(".bom[0].item"), "{d}");
    assert!(
        d.line == line_of(&text, "item = \"GEAR\"") || d.line == line_of(&text, "item = \"SHAFT\"")
    );
}

#[test]
fn missing_field() {
    let text = TINY.replace(
        "lot_size = 10\nbom = [{ item = \"BAR\", qty = 1.0 }]",
        "bom = [{ item = \"BAR\", qty = 1.0 }]",
    );
    let d = one(&text);
    assert_eq!(d.field, "products[0].lot_size");
    assert!(d.reason.contains("missing field `lot_size`"), "{d}");
    assert!(d.line >= line_of(&text, "id = \"SHAFT\"") - 1, "{d}");
}

#[test]
fn misspelt_field_is_not_silently_ignored() {
    let text = TINY.replace("lead_time_days = 3.0", "lead_time_dayz = 3.0");
    let p = problems(&text);
    assert!(
        p.iter().any(|d| d.reason.contains("lead_time_dayz")),
        "{p:#?}"
    );
    assert!(p.iter().all(|d| d.line > 1), "{p:#?}");
}

#[test]
fn several_problems_are_all_reported() {
    let text = TINY
        .replace("type = \"lathe\"", "type = \"mill\"")
        .replace("to_h = 24", "to_h = 23");
    let p = problems(&text);
    assert!(p.iter().any(|d| d.field == "machines[0].type"), "{p:#?}");
    assert!(
        p.iter()
            .any(|d| d.reason.contains("hour 23:00 has no price")),
        "{p:#?}"
    );
}

#[test]
fn start_without_offset_is_rejected() {
    let text = TINY.replace("2026-03-02T00:00:00+08:00", "2026-03-02T00:00:00");
    let d = one(&text);
    assert_eq!(d.field, "plant.start");
    assert_eq!(d.line, 4);
}

proptest! {
    /// Any edit of a valid file either parses or gives located problems: never a panic.
    #[test]
    fn arbitrary_edits_never_panic(pos in 0usize..2000, insert in "[ -~\n]{0,12}") {
        let pos = pos.min(TINY.len());
        let mut text = TINY.to_owned();
        if text.is_char_boundary(pos) {
            text.insert_str(pos, &insert);
        }
        for d in problems(&text) {
            prop_assert!(d.line >= 1 && d.col >= 1);
            prop_assert!(!d.reason.is_empty());
        }
    }
}
