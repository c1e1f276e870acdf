//! Bill-of-materials explosion: product demand (units per day) into material demand, through
//! components that are products themselves (a gear inside an assembly), so that forecasts of
//! what customers order become forecasts of what purchasing must buy.

use aifactory_core::Plant;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BomError {
    #[error("product {0:?} is not in the plant")]
    UnknownProduct(String),
    #[error("the bill of materials of {0:?} contains itself (a cycle)")]
    Cycle(String),
    #[error("product {product:?}: {days} days of demand where {expected} were given for others")]
    Length {
        product: String,
        days: usize,
        expected: usize,
    },
}

/// Material id → units needed per day, from product id → units ordered per day. All series
/// must have the same length; scrap and lot sizes are ignored (a planner adds them on top).
pub fn explode(
    plant: &Plant,
    product_demand: &BTreeMap<String, Vec<f64>>,
) -> Result<BTreeMap<String, Vec<f64>>, BomError> {
    let days = product_demand.values().map(Vec::len).next().unwrap_or(0);
    let mut materials: BTreeMap<String, Vec<f64>> = plant
        .materials
        .iter()
        .map(|m| (m.id.clone(), vec![0.0; days]))
        .collect();
    for (product, demand) in product_demand {
        if demand.len() != days {
            return Err(BomError::Length {
                product: product.clone(),
                days: demand.len(),
                expected: days,
            });
        }
        add_product(plant, product, 1.0, demand, &mut materials, &mut Vec::new())?;
    }
    Ok(materials)
}

fn add_product(
    plant: &Plant,
    product: &str,
    per_unit: f64,
    demand: &[f64],
    materials: &mut BTreeMap<String, Vec<f64>>,
    path: &mut Vec<String>,
) -> Result<(), BomError> {
    if path.iter().any(|p| p == product) {
        return Err(BomError::Cycle(product.to_string()));
    }
    let spec = plant
        .products
        .iter()
        .find(|p| p.id == product)
        .ok_or_else(|| BomError::UnknownProduct(product.to_string()))?;
    path.push(product.to_string());
    for line in &spec.bom {
        let qty = per_unit * line.qty;
        if let Some(series) = materials.get_mut(&line.item) {
            for (m, d) in series.iter_mut().zip(demand) {
                *m += qty * d;
            }
        } else {
            add_product(plant, &line.item, qty, demand, materials, path)?;
        }
    }
    path.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Plant {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../plants/hangzhou-auto-parts.toml");
        Plant::load(&path).expect("the reference plant loads")
    }

    #[test]
    fn components_pass_their_materials_up_to_the_product_ordered() {
        let plant = reference();
        // An assembly with a product as a component: the component's materials are counted
        // once per assembly unit times the quantity per assembly.
        let assembly = plant
            .products
            .iter()
            .find(|p| {
                p.bom
                    .iter()
                    .any(|l| plant.products.iter().any(|q| q.id == l.item))
            })
            .expect("the reference plant has a multi-level bill of materials");
        let demand = BTreeMap::from([(assembly.id.clone(), vec![2.0, 0.0, 1.0])]);
        let materials = explode(&plant, &demand).unwrap();
        let mut expected: BTreeMap<String, f64> = BTreeMap::new();
        for line in &assembly.bom {
            match plant.products.iter().find(|p| p.id == line.item) {
                Some(component) => {
                    for sub in &component.bom {
                        *expected.entry(sub.item.clone()).or_default() += line.qty * sub.qty;
                    }
                }
                None => *expected.entry(line.item.clone()).or_default() += line.qty,
            }
        }
        for (material, per_unit) in &expected {
            let series = &materials[material];
            assert!(
                (series[0] - 2.0 * per_unit).abs() < 1e-9,
                "{material}: {series:?}"
            );
            assert_eq!(series[1], 0.0);
            assert!((series[2] - per_unit).abs() < 1e-9);
        }
    }

    #[test]
    fn unknown_products_cycles_and_ragged_series_are_refused() {
        let mut plant = reference();
        let e = explode(&plant, &BTreeMap::from([("NOPE".to_string(), vec![1.0])])).unwrap_err();
        assert_eq!(e, BomError::UnknownProduct("NOPE".into()));
        let first = plant.products[0].id.clone();
        let second = plant.products[1].id.clone();
        let demand = BTreeMap::from([(first.clone(), vec![1.0, 2.0]), (second, vec![1.0])]);
        assert!(matches!(
            explode(&plant, &demand),
            Err(BomError::Length { .. })
        ));
        plant.products[0].bom.push(aifactory_core::plant::BomLine {
            item: first.clone(),
            qty: 1.0,
        });
        let e = explode(&plant, &BTreeMap::from([(first.clone(), vec![1.0])])).unwrap_err();
        assert_eq!(e, BomError::Cycle(first));
    }
}
