//! The twin's hidden physics as pure functions: how wear, load and process parameters turn into
//! cycle times, wear rates, failure times, defect probabilities and sensor levels.

use aifactory_core::plant::{HealthModel, ProcessParam, SensorModel};

/// Position of `value` relative to the parameter's default, in units of its whole range.
fn above_default(p: &ProcessParam, value: f64) -> f64 {
    (value - p.default) / (p.max - p.min)
}

/// Cycle-time multiplier of a set of parameter values (faster settings shorten the cycle).
pub fn time_multiplier(params: &[ProcessParam], values: &[f64]) -> f64 {
    params
        .iter()
        .zip(values)
        .map(|(p, v)| (1.0 - p.time_slope * above_default(p, *v)).max(0.2))
        .product()
}

/// The fastest cycle-time multiplier the parameters allow: the "ideal cycle" of OEE.
pub fn ideal_time_multiplier(params: &[ProcessParam]) -> f64 {
    params
        .iter()
        .map(|p| {
            let at_min = (1.0 - p.time_slope * above_default(p, p.min)).max(0.2);
            let at_max = (1.0 - p.time_slope * above_default(p, p.max)).max(0.2);
            at_min.min(at_max)
        })
        .product()
}

/// Wear-rate multiplier of a set of parameter values (harsher settings wear faster).
pub fn wear_multiplier(params: &[ProcessParam], values: &[f64]) -> f64 {
    params
        .iter()
        .zip(values)
        .map(|(p, v)| (1.0 + p.wear_slope * above_default(p, *v)).max(0.1))
        .product()
}

/// Cycle-time multiplier from wear: a worn machine runs slower.
pub fn slowdown(health: &HealthModel, wear: f64) -> f64 {
    1.0 + health.slowdown_at_worn * wear * wear
}

/// Defect probability per unit for a machine at `wear` with the given parameter values.
pub fn defect_probability(
    base: f64,
    health: &HealthModel,
    wear: f64,
    params: &[ProcessParam],
    values: &[f64],
) -> f64 {
    let off_optimum: f64 = params
        .iter()
        .zip(values)
        .map(|(p, v)| {
            let d = (v - p.optimum) / (p.max - p.min);
            p.defect_weight * d * d
        })
        .sum();
    (base + health.defect_at_worn * wear * wear + off_optimum).clamp(0.0, 1.0)
}

/// Failure hazard per running hour at `wear`.
pub fn hazard_per_hour(health: &HealthModel, wear: f64) -> f64 {
    (health.hazard_growth * wear).exp() / health.mtbf_new_h
}

/// Cumulative hazard over `hours` of running that starts at `wear` and gains `wear_rate` per hour.
pub fn cumulative_hazard(health: &HealthModel, wear: f64, wear_rate: f64, hours: f64) -> f64 {
    let k = health.hazard_growth;
    if k * wear_rate <= 1e-12 {
        return hazard_per_hour(health, wear) * hours;
    }
    ((k * (wear + wear_rate * hours)).exp() - (k * wear).exp())
        / (k * wear_rate * health.mtbf_new_h)
}

/// Running hours until the cumulative hazard reaches `budget` (the inverse of
/// [`cumulative_hazard`]); failures are drawn by comparing against an Exp(1) budget.
pub fn hours_to_failure(health: &HealthModel, wear: f64, wear_rate: f64, budget: f64) -> f64 {
    let k = health.hazard_growth;
    if k * wear_rate <= 1e-12 {
        return budget / hazard_per_hour(health, wear);
    }
    let e0 = (k * wear).exp();
    ((e0 + budget * k * wear_rate * health.mtbf_new_h).ln() - k * wear) / (k * wear_rate)
}

/// How far a developing fault has come, in [0, 1]: 0 until the failure is `precursor_h`
/// running hours away, 1 at the failure (the P–F interval of reliability engineering).
pub fn precursor_share(hours_to_failure: f64, precursor_h: f64) -> f64 {
    if precursor_h <= 0.0 || !hours_to_failure.is_finite() {
        return 0.0;
    }
    (1.0 - hours_to_failure / precursor_h).clamp(0.0, 1.0)
}

/// What a machine is doing, as far as its sensors can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Running,
    Idle,
    Down,
}

/// Noise-free sensor levels: (vibration mm/s, temperature target °C, motor current A).
pub fn sensor_levels(
    s: &SensorModel,
    ambient_c: f64,
    activity: Activity,
    load: f64,
    wear: f64,
) -> (f64, f64, f64) {
    match activity {
        Activity::Running => (
            s.vibration_mm_s * (0.4 + 0.6 * load) * (1.0 + 3.0 * wear * wear),
            ambient_c + s.temperature_rise_c * load * (1.0 + 0.5 * wear),
            s.current_a * (0.3 + 0.7 * load) * (1.0 + 0.3 * wear),
        ),
        Activity::Idle => (
            s.vibration_mm_s * 0.1 * (1.0 + wear),
            ambient_c + s.temperature_rise_c * 0.1,
            s.current_a * 0.15,
        ),
        Activity::Down => (0.02 * s.vibration_mm_s, ambient_c, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn health() -> HealthModel {
        HealthModel {
            wear_per_run_hour: 0.002,
            mtbf_new_h: 800.0,
            hazard_growth: 3.5,
            slowdown_at_worn: 0.25,
            defect_at_worn: 0.05,
        }
    }

    #[test]
    fn a_fault_shows_only_inside_its_p_f_interval() {
        assert_eq!(precursor_share(100.0, 36.0), 0.0);
        assert_eq!(precursor_share(36.0, 36.0), 0.0);
        assert!((precursor_share(9.0, 36.0) - 0.75).abs() < 1e-12);
        assert_eq!(precursor_share(0.0, 36.0), 1.0);
        // No interval in the plant file: no warning, however close the failure.
        assert_eq!(precursor_share(0.5, 0.0), 0.0);
        assert_eq!(precursor_share(f64::INFINITY, 36.0), 0.0);
    }

    proptest! {
        #[test]
        fn failure_time_inverts_cumulative_hazard(
            wear in 0.0f64..1.5, rate in 0.0f64..0.01, budget in 0.001f64..8.0
        ) {
            let h = health();
            let t = hours_to_failure(&h, wear, rate, budget);
            prop_assert!(t >= 0.0);
            let back = cumulative_hazard(&h, wear, rate, t);
            prop_assert!((back - budget).abs() < 1e-6 * budget.max(1.0), "{back} vs {budget}");
        }
    }

    #[test]
    fn wear_raises_hazard_slowdown_and_defects() {
        let h = health();
        assert!(hazard_per_hour(&h, 0.8) > 5.0 * hazard_per_hour(&h, 0.0) * 0.9);
        assert!(slowdown(&h, 0.8) > slowdown(&h, 0.2));
        assert!(
            defect_probability(0.01, &h, 0.8, &[], &[])
                > defect_probability(0.01, &h, 0.1, &[], &[])
        );
    }

    #[test]
    fn parameters_away_from_optimum_make_more_defects() {
        let p = ProcessParam {
            name: "speed".into(),
            unit: String::new(),
            min: 80.0,
            max: 180.0,
            default: 120.0,
            optimum: 140.0,
            defect_weight: 0.2,
            wear_slope: 0.5,
            time_slope: 0.2,
        };
        let at_opt = defect_probability(0.0, &health(), 0.0, std::slice::from_ref(&p), &[140.0]);
        let at_default =
            defect_probability(0.0, &health(), 0.0, std::slice::from_ref(&p), &[120.0]);
        assert!(at_opt < 1e-12 && at_default > 0.0);
        assert!(time_multiplier(std::slice::from_ref(&p), &[180.0]) < 1.0);
        assert!(wear_multiplier(std::slice::from_ref(&p), &[180.0]) > 1.0);
        assert!(
            ideal_time_multiplier(std::slice::from_ref(&p))
                <= time_multiplier(std::slice::from_ref(&p), &[120.0])
        );
    }
}
