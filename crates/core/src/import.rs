//! The SME path in: machines, routings and orders from ERP or spreadsheet CSV exports, checked
//! row by row, so a small plant without sensors can schedule from day one. The columns are
//! documented in `docs/IMPORT.md`; every refusal names the file, the row (as a spreadsheet
//! numbers it, the header being row 1), the column and what is wrong.

use crate::time::{Timestamp, civil_from_days, days_from_civil};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// What kind of table a CSV file holds, told by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Machines,
    Routings,
    Orders,
}

impl TableKind {
    /// The kind whose required columns the header has.
    pub fn of_header(header: &[&str]) -> Option<TableKind> {
        let has = |c: &str| header.iter().any(|h| h.trim().eq_ignore_ascii_case(c));
        if has("order_id") {
            Some(TableKind::Orders)
        } else if has("product_id") && has("step") {
            Some(TableKind::Routings)
        } else if has("machine_id") && has("work_centre") {
            Some(TableKind::Machines)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportedMachine {
    pub id: String,
    pub name: String,
    pub work_centre: String,
}

/// One way to run one step of a product's routing.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingRow {
    pub product: String,
    pub step: u32,
    pub operation: String,
    /// The machines that can run it (a work centre stands for all its machines).
    pub machines: Vec<String>,
    pub minutes_per_unit: f64,
    pub setup_minutes: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportedOrder {
    pub id: String,
    pub product: String,
    pub quantity: u32,
    pub due: Timestamp,
    pub release: Option<Timestamp>,
    pub weight: f64,
}

/// Everything imported, checked across tables.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Imported {
    pub machines: Vec<ImportedMachine>,
    /// Product → its steps in order, each with its alternatives.
    pub routings: BTreeMap<String, Vec<Vec<RoutingRow>>>,
    pub orders: Vec<ImportedOrder>,
}

/// A refusal: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub file: String,
    /// Spreadsheet row (the header is row 1); `None` for whole-file problems.
    pub row: Option<u64>,
    pub column: Option<String>,
    pub reason: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(r) = self.row {
            write!(f, ":{r}")?;
        }
        if let Some(c) = &self.column {
            write!(f, ": {c}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ImportError {}

/// Every problem found, in file and row order (the import goes on after the first, so a user
/// fixes a file in one pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportErrors(pub Vec<ImportError>);

impl fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ImportErrors {}

/// A table as read: its kind, header and rows (with their spreadsheet row numbers).
struct Table<'a> {
    file: &'a str,
    header: Vec<String>,
    rows: Vec<(u64, Vec<String>)>,
}

impl Table<'_> {
    fn column(&self, name: &str) -> Option<usize> {
        self.header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    }

    fn error(&self, row: u64, column: &str, reason: impl Into<String>) -> ImportError {
        ImportError {
            file: self.file.to_owned(),
            row: Some(row),
            column: Some(column.to_owned()),
            reason: reason.into(),
        }
    }
}

fn read_table<'a>(file: &'a str, text: &str) -> Result<Table<'a>, ImportError> {
    let whole = |reason: String| ImportError {
        file: file.to_owned(),
        row: None,
        column: None,
        reason,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text); // Excel's byte-order mark
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| whole(format!("unreadable header: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i as u64 + 2;
        let record = record.map_err(|e| ImportError {
            file: file.to_owned(),
            row: e.position().map(|p| p.line()).or(Some(row)),
            column: None,
            reason: match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => {
                    format!("{len} fields where the header has {expected_len}")
                }
                _ => e.to_string(),
            },
        })?;
        rows.push((row, record.iter().map(str::to_owned).collect()));
    }
    Ok(Table { file, header, rows })
}

/// The indices of `names` in the header; a missing one is an error on row 1.
fn required(
    table: &Table<'_>,
    names: &[&str],
    errors: &mut Vec<ImportError>,
) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for n in names {
        match table.column(n) {
            Some(i) => out.push(i),
            None => {
                errors.push(ImportError {
                    file: table.file.to_owned(),
                    row: Some(1),
                    column: Some((*n).to_owned()),
                    reason: format!("the header has no `{n}` column"),
                });
                return None;
            }
        }
    }
    Some(out)
}

fn text_field(
    table: &Table<'_>,
    row: u64,
    cells: &[String],
    index: usize,
    name: &str,
    errors: &mut Vec<ImportError>,
) -> Option<String> {
    let v = cells.get(index).map(|s| s.trim()).unwrap_or("");
    if v.is_empty() {
        errors.push(table.error(row, name, "is empty"));
        None
    } else {
        Some(v.to_owned())
    }
}

fn number(
    table: &Table<'_>,
    row: u64,
    cells: &[String],
    index: usize,
    name: &str,
    min: f64,
    errors: &mut Vec<ImportError>,
) -> Option<f64> {
    let raw = cells.get(index).map(|s| s.trim()).unwrap_or("");
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= min => Some(v),
        Ok(v) => {
            errors.push(table.error(row, name, format!("{v} is out of range (at least {min})")));
            None
        }
        Err(_) => {
            errors.push(table.error(row, name, format!("`{raw}` is not a number")));
            None
        }
    }
}

/// `YYYY-MM-DD`, or with a time `YYYY-MM-DD HH:MM[:SS]` (or `T` between), in plant-local time.
pub fn parse_local_time(s: &str) -> Result<Timestamp, String> {
    let bad = || format!("`{s}` is not a date (YYYY-MM-DD) or date and time (YYYY-MM-DD HH:MM)");
    let s = s.trim();
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim())),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (y, m, d) = match (y.parse::<i32>(), m.parse::<u32>(), d.parse::<u32>()) {
        (Ok(y), Ok(m), Ok(d)) if (1970..=9999).contains(&y) && y.to_string().len() == 4 => {
            (y, m, d)
        }
        _ => return Err(bad()),
    };
    // A date that does not exist (2026-02-30) does not survive the round trip.
    if !(1..=12).contains(&m) || civil_from_days(days_from_civil(y, m, d)) != (y, m, d) {
        return Err(format!("`{s}`: there is no such day"));
    }
    let (h, min, sec) = match time {
        None => (0, 0, 0),
        Some(t) => {
            let f: Vec<&str> = t.split(':').collect();
            let num = |x: Option<&&str>, max: u32| {
                x.and_then(|v| v.parse::<u32>().ok()).filter(|&v| v <= max)
            };
            match (
                f.len(),
                num(f.first(), 23),
                num(f.get(1), 59),
                num(f.get(2), 59),
            ) {
                (2, Some(h), Some(m), _) => (h, m, 0),
                (3, Some(h), Some(m), Some(s)) => (h, m, s),
                _ => return Err(bad()),
            }
        }
    };
    Ok(Timestamp::from_civil(y, m, d, h, min, sec, 0))
}

/// Imports any number of CSV files (name, text); each must be a machines, routings or orders
/// table, and together they must name one of each. All problems are reported together.
pub fn import(files: &[(String, String)]) -> Result<Imported, ImportErrors> {
    let mut errors = Vec::new();
    let mut tables: Vec<(TableKind, Table<'_>)> = Vec::new();
    for (name, text) in files {
        match read_table(name, text) {
            Ok(t) => {
                let header: Vec<&str> = t.header.iter().map(String::as_str).collect();
                match TableKind::of_header(&header) {
                    Some(kind) => tables.push((kind, t)),
                    None => errors.push(ImportError {
                        file: name.clone(),
                        row: Some(1),
                        column: None,
                        reason: "not a machines (machine_id, work_centre), routings (product_id, \
                                 step, …) or orders (order_id, …) table"
                            .to_owned(),
                    }),
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let unreadable = !errors.is_empty();
    for kind in [TableKind::Machines, TableKind::Routings, TableKind::Orders] {
        if !tables.iter().any(|(k, _)| *k == kind) && !unreadable {
            errors.push(ImportError {
                file: "(import)".to_owned(),
                row: None,
                column: None,
                reason: format!("no {kind:?} table among the files").to_lowercase(),
            });
        }
    }
    let mut out = Imported::default();
    // Machines first: routings refer to them.
    let mut work_centres: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen_machines: HashMap<String, u64> = HashMap::new();
    for (_, t) in tables.iter().filter(|(k, _)| *k == TableKind::Machines) {
        let Some(cols) = required(t, &["machine_id", "work_centre"], &mut errors) else {
            continue;
        };
        let name_col = t.column("name");
        for (row, cells) in &t.rows {
            let id = text_field(t, *row, cells, cols[0], "machine_id", &mut errors);
            let wc = text_field(t, *row, cells, cols[1], "work_centre", &mut errors);
            let (Some(id), Some(wc)) = (id, wc) else {
                continue;
            };
            if let Some(first) = seen_machines.insert(id.clone(), *row) {
                errors.push(t.error(
                    *row,
                    "machine_id",
                    format!("`{id}` again (first on row {first})"),
                ));
                continue;
            }
            work_centres.entry(wc.clone()).or_default().push(id.clone());
            out.machines.push(ImportedMachine {
                name: name_col
                    .and_then(|c| cells.get(c))
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .unwrap_or_else(|| id.clone()),
                id,
                work_centre: wc,
            });
        }
    }
    let mut steps: BTreeMap<String, BTreeMap<u32, Vec<RoutingRow>>> = BTreeMap::new();
    for (_, t) in tables.iter().filter(|(k, _)| *k == TableKind::Routings) {
        let Some(cols) = required(t, &["product_id", "step", "minutes_per_unit"], &mut errors)
        else {
            continue;
        };
        let (machine_col, wc_col) = (t.column("machine_id"), t.column("work_centre"));
        if machine_col.is_none() && wc_col.is_none() {
            errors.push(ImportError {
                file: t.file.to_owned(),
                row: Some(1),
                column: Some("machine_id".to_owned()),
                reason: "the header needs a `machine_id` or a `work_centre` column".to_owned(),
            });
            continue;
        }
        let (op_col, setup_col) = (t.column("operation"), t.column("setup_minutes"));
        for (row, cells) in &t.rows {
            let product = text_field(t, *row, cells, cols[0], "product_id", &mut errors);
            let step_raw = cells.get(cols[1]).map(|s| s.trim()).unwrap_or("");
            let step = match step_raw.parse::<u32>() {
                Ok(s) if s >= 1 => Some(s),
                _ => {
                    errors.push(t.error(
                        *row,
                        "step",
                        format!("`{step_raw}` is not a step number (1, 2, …)"),
                    ));
                    None
                }
            };
            let minutes = number(
                t,
                *row,
                cells,
                cols[2],
                "minutes_per_unit",
                0.0,
                &mut errors,
            )
            .filter(|&m| {
                if m == 0.0 {
                    errors.push(t.error(*row, "minutes_per_unit", "must be more than 0"));
                }
                m > 0.0
            });
            let setup = match setup_col
                .and_then(|c| cells.get(c))
                .filter(|s| !s.is_empty())
            {
                None => Some(0.0),
                Some(_) => number(
                    t,
                    *row,
                    cells,
                    setup_col.unwrap_or_default(),
                    "setup_minutes",
                    0.0,
                    &mut errors,
                ),
            };
            let machine = machine_col
                .and_then(|c| cells.get(c))
                .filter(|s| !s.is_empty());
            let wc = wc_col.and_then(|c| cells.get(c)).filter(|s| !s.is_empty());
            let machines = match (machine, wc) {
                (Some(m), _) if seen_machines.contains_key(m) => Some(vec![m.clone()]),
                (Some(m), _) => {
                    errors.push(t.error(
                        *row,
                        "machine_id",
                        format!("`{m}` is not in the machines table"),
                    ));
                    None
                }
                (None, Some(w)) => match work_centres.get(w) {
                    Some(ms) => Some(ms.clone()),
                    None => {
                        errors.push(t.error(
                            *row,
                            "work_centre",
                            format!("no machine is in work centre `{w}`"),
                        ));
                        None
                    }
                },
                (None, None) => {
                    errors.push(t.error(*row, "machine_id", "neither a machine nor a work centre"));
                    None
                }
            };
            let (Some(product), Some(step), Some(minutes), Some(setup), Some(machines)) =
                (product, step, minutes, setup, machines)
            else {
                continue;
            };
            steps
                .entry(product.clone())
                .or_default()
                .entry(step)
                .or_default()
                .push(RoutingRow {
                    operation: op_col
                        .and_then(|c| cells.get(c))
                        .filter(|s| !s.is_empty())
                        .cloned()
                        .unwrap_or_else(|| format!("step {step}")),
                    product,
                    step,
                    machines,
                    minutes_per_unit: minutes,
                    setup_minutes: setup,
                });
        }
    }
    out.routings = steps
        .into_iter()
        .map(|(p, s)| (p, s.into_values().collect()))
        .collect();
    let mut seen_orders: HashMap<String, u64> = HashMap::new();
    for (_, t) in tables.iter().filter(|(k, _)| *k == TableKind::Orders) {
        let Some(cols) = required(
            t,
            &["order_id", "product_id", "quantity", "due"],
            &mut errors,
        ) else {
            continue;
        };
        let (release_col, weight_col) = (t.column("release"), t.column("weight"));
        for (row, cells) in &t.rows {
            let id = text_field(t, *row, cells, cols[0], "order_id", &mut errors);
            let product = text_field(t, *row, cells, cols[1], "product_id", &mut errors);
            let qty_raw = cells.get(cols[2]).map(|s| s.trim()).unwrap_or("");
            let quantity = match qty_raw.parse::<u32>() {
                Ok(q) if q >= 1 => Some(q),
                _ => {
                    errors.push(t.error(
                        *row,
                        "quantity",
                        format!("`{qty_raw}` is not a whole number of units (1 or more)"),
                    ));
                    None
                }
            };
            let due = match parse_local_time(cells.get(cols[3]).map_or("", String::as_str)) {
                Ok(d) => Some(d),
                Err(e) => {
                    errors.push(t.error(*row, "due", e));
                    None
                }
            };
            let release = match release_col
                .and_then(|c| cells.get(c))
                .filter(|s| !s.is_empty())
            {
                None => Some(None),
                Some(r) => match parse_local_time(r) {
                    Ok(r) => Some(Some(r)),
                    Err(e) => {
                        errors.push(t.error(*row, "release", e));
                        None
                    }
                },
            };
            let weight = match weight_col
                .and_then(|c| cells.get(c))
                .filter(|s| !s.is_empty())
            {
                None => Some(1.0),
                Some(_) => number(
                    t,
                    *row,
                    cells,
                    weight_col.unwrap_or_default(),
                    "weight",
                    0.0,
                    &mut errors,
                ),
            };
            if let Some(p) = &product
                && !out.routings.contains_key(p)
                && tables.iter().any(|(k, _)| *k == TableKind::Routings)
            {
                errors.push(t.error(*row, "product_id", format!("`{p}` has no routing")));
                continue;
            }
            let (Some(id), Some(product), Some(quantity), Some(due), Some(release), Some(weight)) =
                (id, product, quantity, due, release, weight)
            else {
                continue;
            };
            if let Some(first) = seen_orders.insert(id.clone(), *row) {
                errors.push(t.error(
                    *row,
                    "order_id",
                    format!("`{id}` again (first on row {first})"),
                ));
                continue;
            }
            out.orders.push(ImportedOrder {
                id,
                product,
                quantity,
                due,
                release,
                weight,
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        // Stable order: by file as given, then by row.
        let order: HashMap<&str, usize> = files
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect();
        errors.sort_by_key(|e| {
            (
                order.get(e.file.as_str()).copied().unwrap_or(usize::MAX),
                e.row,
            )
        });
        Err(ImportErrors(errors))
    }
}

impl Imported {
    /// The work centres and their machines.
    pub fn work_centres(&self) -> BTreeSet<&str> {
        self.machines
            .iter()
            .map(|m| m.work_centre.as_str())
            .collect()
    }
}
