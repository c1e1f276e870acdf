//! CSV import: a good set of tables comes in whole; every kind of bad row is refused with its
//! file, row and column; no input makes it panic.

use aifactory_core::import::{ImportErrors, TableKind, import, parse_local_time};
use proptest::prelude::*;

const MACHINES: &str =
    "machine_id,name,work_centre\nCNC-1,Lathe one,TURN\nCNC-2,,TURN\nMILL-1,Mill,MILL\n";
const ROUTINGS: &str = "product_id,step,operation,machine_id,work_centre,minutes_per_unit,setup_minutes\n\
SHAFT,1,turn,,TURN,2.5,30\nSHAFT,2,mill,MILL-1,,4,\nGEAR,1,mill,MILL-1,,3,15\n";
const ORDERS: &str = "order_id,product_id,quantity,due,release,weight\n\
SO-1,SHAFT,40,2026-12-03,2026-12-01 08:00,2\nSO-2,GEAR,10,2026-12-02T16:30,,\n";

fn files(m: &str, r: &str, o: &str) -> Vec<(String, String)> {
    vec![
        ("machines.csv".into(), m.into()),
        ("routings.csv".into(), r.into()),
        ("orders.csv".into(), o.into()),
    ]
}

fn errors(m: &str, r: &str, o: &str) -> Vec<String> {
    match import(&files(m, r, o)) {
        Ok(_) => Vec::new(),
        Err(ImportErrors(e)) => e.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn good_tables_import_whole() {
    let got = import(&files(MACHINES, ROUTINGS, ORDERS)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.machines.len(), 3);
    assert_eq!(
        got.machines[1].name, "CNC-2",
        "a missing name falls back to the id"
    );
    let shaft = &got.routings["SHAFT"];
    assert_eq!(shaft.len(), 2);
    assert_eq!(
        shaft[0][0].machines,
        vec!["CNC-1", "CNC-2"],
        "a work centre is all its machines"
    );
    assert_eq!(
        (shaft[0][0].minutes_per_unit, shaft[0][0].setup_minutes),
        (2.5, 30.0)
    );
    assert_eq!(got.orders.len(), 2);
    assert_eq!(got.orders[0].weight, 2.0);
    assert_eq!(got.orders[1].weight, 1.0);
    assert_eq!(
        got.orders[0].release.map(|t| t.to_rfc3339()),
        Some("2026-12-01T08:00:00.000Z".to_owned())
    );
    // The order of the files does not matter: tables are told by their headers.
    let mut shuffled = files(MACHINES, ROUTINGS, ORDERS);
    shuffled.reverse();
    assert_eq!(import(&shuffled).ok(), Some(got));
}

#[test]
fn every_bad_row_is_named_by_file_row_and_column() {
    let cases: [(&str, &str, &str, &str); 12] = [
        (
            "machine_id,name,work_centre\nCNC-1,a,TURN\nCNC-1,b,TURN\n",
            ROUTINGS,
            ORDERS,
            "machines.csv:3: machine_id: `CNC-1` again (first on row 2)",
        ),
        (
            "machine_id,name,work_centre\n,a,TURN\n",
            ROUTINGS,
            ORDERS,
            "machines.csv:2: machine_id: is empty",
        ),
        (
            MACHINES,
            "product_id,step,machine_id,minutes_per_unit\nSHAFT,0,CNC-1,2\n",
            ORDERS,
            "routings.csv:2: step: `0` is not a step number",
        ),
        (
            MACHINES,
            "product_id,step,machine_id,minutes_per_unit\nSHAFT,1,LATHE-9,2\n",
            ORDERS,
            "routings.csv:2: machine_id: `LATHE-9` is not in the machines table",
        ),
        (
            MACHINES,
            "product_id,step,work_centre,minutes_per_unit\nSHAFT,1,PAINT,2\n",
            ORDERS,
            "routings.csv:2: work_centre: no machine is in work centre `PAINT`",
        ),
        (
            MACHINES,
            "product_id,step,machine_id,minutes_per_unit\nSHAFT,1,CNC-1,two\n",
            ORDERS,
            "routings.csv:2: minutes_per_unit: `two` is not a number",
        ),
        (
            MACHINES,
            "product_id,step,machine_id,minutes_per_unit\nSHAFT,1,CNC-1,0\n",
            ORDERS,
            "routings.csv:2: minutes_per_unit: must be more than 0",
        ),
        (
            MACHINES,
            ROUTINGS,
            "order_id,product_id,quantity,due\nSO-1,SHAFT,-4,2026-12-03\n",
            "orders.csv:2: quantity: `-4` is not a whole number",
        ),
        (
            MACHINES,
            ROUTINGS,
            "order_id,product_id,quantity,due\nSO-1,SHAFT,4,2026-02-30\n",
            "orders.csv:2: due: `2026-02-30`: there is no such day",
        ),
        (
            MACHINES,
            ROUTINGS,
            "order_id,product_id,quantity,due\nSO-1,BOLT,4,2026-12-03\n",
            "orders.csv:2: product_id: `BOLT` has no routing",
        ),
        (
            MACHINES,
            ROUTINGS,
            "order_id,product_id,quantity,due\nSO-1,SHAFT,4,2026-12-03\nSO-1,GEAR,1,2026-12-04\n",
            "orders.csv:3: order_id: `SO-1` again (first on row 2)",
        ),
        (
            MACHINES,
            ROUTINGS,
            "order_id,product_id,quantity\nSO-1,SHAFT,4\n",
            "orders.csv:1: due: the header has no `due` column",
        ),
    ];
    for (m, r, o, expected) in cases {
        let got = errors(m, r, o);
        assert!(
            got.iter().any(|e| e.starts_with(expected)),
            "expected `{expected}`, got {got:?}"
        );
    }
}

#[test]
fn whole_file_problems_are_clear_and_all_problems_come_together() {
    let got = errors(
        MACHINES,
        ROUTINGS,
        "order_id,product_id,quantity,due\nSO-1,SHAFT,4\n",
    );
    assert!(
        got.iter()
            .any(|e| e.contains("orders.csv:") && e.contains("fields where the header has 4")),
        "{got:?}"
    );
    let got = errors("colour,size\nred,2\n", ROUTINGS, ORDERS);
    assert!(
        got.iter()
            .any(|e| e.starts_with("machines.csv:1: not a machines")),
        "{got:?}"
    );
    let got = import(&[("m.csv".into(), MACHINES.into())])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        got.contains("no routings table") && got.contains("no orders table"),
        "{got}"
    );
    // Two bad rows in two files: both reported, in file then row order.
    let got = errors(
        "machine_id,name,work_centre\n,a,TURN\nCNC-1,b,TURN\n",
        ROUTINGS,
        "order_id,product_id,quantity,due\nSO-1,SHAFT,x,2026-12-03\n",
    );
    // The empty id; MILL-1, now unknown, on two routing rows; the quantity.
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got[0].starts_with("machines.csv:2"), "{got:?}");
    assert!(
        got[1].starts_with("routings.csv:3") && got[2].starts_with("routings.csv:4"),
        "{got:?}"
    );
    assert!(
        got.last().is_some_and(|e| e.starts_with("orders.csv:2")),
        "{got:?}"
    );
}

#[test]
fn dates_and_times_parse_strictly() {
    assert!(parse_local_time("2026-12-01").is_ok());
    assert!(parse_local_time("2026-12-01 08:30").is_ok());
    assert!(parse_local_time("2026-12-01T08:30:15").is_ok());
    for bad in [
        "",
        "01/12/2026",
        "2026-13-01",
        "2026-12-01 25:00",
        "2026-12-01 08:61",
        "26-12-01",
        "2026-12-01 8",
    ] {
        assert!(parse_local_time(bad).is_err(), "{bad}");
    }
    assert_eq!(
        TableKind::of_header(&["Order_ID", "x"]),
        Some(TableKind::Orders)
    );
}

proptest! {
    #[test]
    fn no_input_makes_the_import_panic(m in "\\PC{0,200}", r in "[a-z_,0-9\\n.\" -]{0,200}", o in "\\PC{0,200}") {
        let _ = import(&files(&m, &r, &o));
        let _ = import(&files(MACHINES, &format!("product_id,step,machine_id,minutes_per_unit\n{r}"), ORDERS));
        let _ = parse_local_time(&o);
    }
}
