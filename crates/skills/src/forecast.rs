//! Sales-stage demand forecasting and the replenishment rule built on it.
//!
//! ```text
//!  daily demand ─► MSTL (weekly, period 7) ─► seasonal ─────────────┐
//!  (units/day)         └─► trend + remainder ─► AutoETS (non-seasonal) ─► mean + interval
//!                                                                    │
//!  rolling-origin backtest ─► MASE vs seasonal naive, coverage,      ▼
//!                             σ of the model's own lead-time errors ─► reorder point,
//!                                                                       order-up-to level
//! ```
//!
//! The model is augurs' MSTL with an AutoETS trend model: MSTL strips the weekly profile, AutoETS
//! (error, trend and damping chosen by AICc) forecasts what remains with its prediction interval,
//! and the last week of the seasonal component is added back. Demand cannot be negative, so means
//! and lower bounds are clamped at zero. The baseline is the seasonal naive forecast (the value
//! seven days earlier) and accuracy is MASE, scaled by the in-sample seasonal-naive MAE (m = 7).
//!
//! Replenishment (continuous review with an order-up-to level, i.e. (s, S)):
//!
//! ```text
//!  D_L  = Σ_{h=1..L}   forecast mean_h                 demand expected over the lead time L
//!  σ_L  = RMS of the model's own backtest errors of that L-day sum (not the theoretical interval)
//!  s    = D_L + z·σ_L                                   reorder point, z = Φ⁻¹(cycle service level)
//!  S    = D_{L+R} + z·σ_{L+R}                           order-up-to level, R = review period
//!  when position = on hand + on order − backorders ≤ s: order S − position, rounded up to lots
//! ```
//!
//! Invariants: pure functions over plain numbers; no clock (callers pass `at`), no I/O, and no
//! panic on any input — bad input is a [`ForecastError`].

use aifactory_core::{Decision, ExecutedBy, LifecycleStage, Timestamp};
use aifactory_plant::{MaterialView, PurchaseRequest};
use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::mstl::stlrs::MstlParams;
use augurs::{Fit, Predict};
use serde_json::json;

/// The weekly period of daily demand.
pub const WEEK: usize = 7;

/// Largest demand a day may show (units). Beyond it the f32 decomposition inside MSTL loses the
/// series, so it is refused rather than forecast badly.
pub const MAX_DAILY_DEMAND: f64 = 1.0e9;

/// Model id written into decisions.
pub const MODEL_ID: &str = "mstl-autoets";
/// Model version written into decisions: the library and the model's fixed settings.
pub const MODEL_VERSION: &str = "augurs-0.10/p7/sw31";

/// Why a forecast, a score or a replenishment plan could not be computed. None is fatal: each
/// names the input to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    #[error("history too short: {got} days, need at least {needed}")]
    HistoryTooShort { needed: usize, got: usize },
    #[error("value at index {index} is not finite")]
    NonFinite { index: usize },
    #[error("demand at index {index} is negative or above {MAX_DAILY_DEMAND}: {value}")]
    OutOfRange { index: usize, value: f64 },
    #[error("horizon must be at least one day")]
    ZeroHorizon,
    #[error("interval level {0} must lie strictly between 0 and 1")]
    InvalidLevel(f64),
    #[error("actual ({actual}) and forecast ({forecast}) lengths differ")]
    LengthMismatch { actual: usize, forecast: usize },
    #[error("in-sample seasonal-naive error is zero: MASE is undefined for this history")]
    ZeroScale,
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("invalid replenishment input: {0}")]
    InvalidReplenishment(&'static str),
    /// The model library failed (its error is not `Send + Sync`, so only its message is kept).
    #[error("forecasting model failed: {0}")]
    Model(String),
}

type Result<T> = std::result::Result<T, ForecastError>;

/// Checks a demand series: finite, non-negative, within [`MAX_DAILY_DEMAND`].
fn validate_demand(values: &[f64]) -> Result<()> {
    for (index, &value) in values.iter().enumerate() {
        if !value.is_finite() {
            return Err(ForecastError::NonFinite { index });
        }
        if !(0.0..=MAX_DAILY_DEMAND).contains(&value) {
            return Err(ForecastError::OutOfRange { index, value });
        }
    }
    Ok(())
}

fn validate_level(level: f64) -> Result<()> {
    if level.is_finite() && level > 0.0 && level < 1.0 {
        Ok(())
    } else {
        Err(ForecastError::InvalidLevel(level))
    }
}

// ---- the model ----------------------------------------------------------------------------

/// Settings of the demand forecaster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastConfig {
    /// Seasonal period in days.
    pub period: usize,
    /// STL seasonal smoothing window (odd, ≥ 7): how many past weeks shape each weekday's
    /// profile. Noisy order-driven demand wants a long window.
    pub seasonal_window: usize,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            period: WEEK,
            seasonal_window: 31,
        }
    }
}

/// The demand forecaster, unfitted: [`DemandForecaster::fit`] returns a [`FittedDemand`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DemandForecaster {
    pub config: ForecastConfig,
}

impl DemandForecaster {
    pub fn new(config: ForecastConfig) -> Self {
        DemandForecaster { config }
    }

    /// The shortest history it fits: three full periods.
    pub fn min_history(&self) -> usize {
        3 * self.config.period
    }

    /// Fits the model to daily demand, oldest first.
    pub fn fit(&self, history: &[f64]) -> Result<FittedDemand> {
        let ForecastConfig {
            period,
            seasonal_window,
        } = self.config;
        if period < 2 {
            return Err(ForecastError::InvalidConfig("period must be at least 2"));
        }
        if seasonal_window < 7 || seasonal_window % 2 == 0 {
            return Err(ForecastError::InvalidConfig(
                "seasonal_window must be odd and at least 7",
            ));
        }
        if history.len() < self.min_history() {
            return Err(ForecastError::HistoryTooShort {
                needed: self.min_history(),
                got: history.len(),
            });
        }
        validate_demand(history)?;
        let mut params = MstlParams::new();
        params.seasonal_lengths(&[seasonal_window]);
        let model = MSTLModel::new(vec![period], AutoETS::non_seasonal().into_trend_model())
            .mstl_params(params);
        let fitted = model
            .fit(history)
            .map_err(|e| ForecastError::Model(e.to_string()))?;
        Ok(FittedDemand {
            model: fitted,
            history_len: history.len(),
        })
    }
}

/// A fitted demand model.
#[derive(Debug)]
pub struct FittedDemand {
    model: augurs::mstl::FittedMSTLModel,
    history_len: usize,
}

/// Daily demand forecast for days 1..=horizon after the history's last day.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DemandForecast {
    /// Point forecast (units/day), never negative.
    pub mean: Vec<f64>,
    /// Prediction interval at `level`, lower bound clamped at zero.
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub level: f64,
}

impl DemandForecast {
    /// Forecast demand summed over the first `days` days (all of them if fewer).
    pub fn total(&self, days: usize) -> f64 {
        self.mean.iter().take(days).sum()
    }
}

impl FittedDemand {
    /// Days of history it was fitted on.
    pub fn history_len(&self) -> usize {
        self.history_len
    }

    /// Forecasts `horizon` days with a prediction interval at `level` (e.g. 0.8 or 0.95).
    pub fn forecast(&self, horizon: usize, level: f64) -> Result<DemandForecast> {
        if horizon == 0 {
            return Err(ForecastError::ZeroHorizon);
        }
        validate_level(level)?;
        let raw = self
            .model
            .predict(horizon, level)
            .map_err(|e| ForecastError::Model(e.to_string()))?;
        let intervals = raw
            .intervals
            .ok_or_else(|| ForecastError::Model("no prediction interval returned".to_owned()))?;
        let n = raw.point.len();
        if n != horizon || intervals.lower.len() != n || intervals.upper.len() != n {
            return Err(ForecastError::Model(
                "forecast of the wrong length".to_owned(),
            ));
        }
        let all = raw
            .point
            .iter()
            .chain(&intervals.lower)
            .chain(&intervals.upper);
        if let Some(index) = all.clone().position(|v| !v.is_finite()) {
            return Err(ForecastError::Model(format!(
                "non-finite forecast value (item {index})"
            )));
        }
        let clamp = |v: &[f64]| v.iter().map(|x| x.max(0.0)).collect::<Vec<_>>();
        Ok(DemandForecast {
            mean: clamp(&raw.point),
            lower: clamp(&intervals.lower),
            upper: clamp(&intervals.upper),
            level,
        })
    }
}

// ---- baseline and score -------------------------------------------------------------------

/// Seasonal naive forecast: each day repeats the value `period` days earlier (the last observed
/// season, cycled for horizons beyond one period).
pub fn seasonal_naive(history: &[f64], period: usize, horizon: usize) -> Result<Vec<f64>> {
    if period == 0 {
        return Err(ForecastError::InvalidConfig("period must be at least 1"));
    }
    if horizon == 0 {
        return Err(ForecastError::ZeroHorizon);
    }
    if history.len() < period {
        return Err(ForecastError::HistoryTooShort {
            needed: period,
            got: history.len(),
        });
    }
    if let Some(index) = history.iter().position(|v| !v.is_finite()) {
        return Err(ForecastError::NonFinite { index });
    }
    let last = &history[history.len() - period..];
    Ok((0..horizon).map(|h| last[h % period]).collect())
}

/// Mean absolute scaled error of `forecast` against `actual`, scaled by the in-sample MAE of the
/// seasonal naive forecast with period `m` on `history`: `mean|y − ŷ| / mean_t|y_t − y_{t−m}|`.
pub fn mase(actual: &[f64], forecast: &[f64], history: &[f64], m: usize) -> Result<f64> {
    if m == 0 {
        return Err(ForecastError::InvalidConfig("m must be at least 1"));
    }
    if actual.len() != forecast.len() {
        return Err(ForecastError::LengthMismatch {
            actual: actual.len(),
            forecast: forecast.len(),
        });
    }
    if actual.is_empty() {
        return Err(ForecastError::ZeroHorizon);
    }
    if history.len() <= m {
        return Err(ForecastError::HistoryTooShort {
            needed: m + 1,
            got: history.len(),
        });
    }
    for series in [actual, forecast, history] {
        if let Some(index) = series.iter().position(|v| !v.is_finite()) {
            return Err(ForecastError::NonFinite { index });
        }
    }
    let scale = history
        .iter()
        .zip(&history[m..])
        .map(|(a, b)| (b - a).abs())
        .sum::<f64>()
        / (history.len() - m) as f64;
    if !(scale > 0.0 && scale.is_finite()) {
        return Err(ForecastError::ZeroScale);
    }
    let mae = actual
        .iter()
        .zip(forecast)
        .map(|(a, f)| (a - f).abs())
        .sum::<f64>()
        / actual.len() as f64;
    let score = mae / scale;
    if score.is_finite() {
        Ok(score)
    } else {
        Err(ForecastError::ZeroScale)
    }
}

// ---- rolling-origin backtest --------------------------------------------------------------

/// A rolling-origin evaluation: a fixed-length training window slides forward `step` days at a
/// time; at each origin the model forecasts `horizon` days and is scored on what followed.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestConfig {
    /// Days of history each fit sees (the window ending at the origin).
    pub window: usize,
    /// First origin (index of the first forecast day); at least `window`.
    pub first_origin: usize,
    /// Days between origins.
    pub step: usize,
    /// Days forecast at each origin.
    pub horizon: usize,
    /// Interval levels whose coverage is counted.
    pub levels: Vec<f64>,
    /// Lead time (days) whose summed forecast error is recorded for the replenishment σ.
    pub lead_time: usize,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        BacktestConfig {
            window: 120,
            first_origin: 120,
            step: 7,
            horizon: 14,
            levels: vec![0.8, 0.95],
            lead_time: 7,
        }
    }
}

/// The score at one origin.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OriginScore {
    pub origin: usize,
    pub mase_skill: f64,
    pub mase_naive: f64,
    /// Per level of the config: how many actual days fell inside the interval.
    pub covered: Vec<usize>,
    /// Days scored (the horizon).
    pub days: usize,
    /// Actual minus forecast demand summed over the lead time.
    pub lead_time_error: f64,
    /// The same for the seasonal naive forecast.
    pub lead_time_error_naive: f64,
}

/// Every origin of one or more backtests.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct BacktestReport {
    pub levels: Vec<f64>,
    pub origins: Vec<OriginScore>,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

fn rms(values: impl Iterator<Item = f64>) -> f64 {
    mean(values.map(|v| v * v)).sqrt()
}

impl BacktestReport {
    pub fn mean_mase_skill(&self) -> f64 {
        mean(self.origins.iter().map(|o| o.mase_skill))
    }

    pub fn mean_mase_naive(&self) -> f64 {
        mean(self.origins.iter().map(|o| o.mase_naive))
    }

    /// Skill MASE over seasonal-naive MASE: below 1 the skill wins.
    pub fn mase_ratio(&self) -> f64 {
        self.mean_mase_skill() / self.mean_mase_naive()
    }

    /// Share of actual days inside the interval of `levels[i]`.
    pub fn coverage(&self, i: usize) -> f64 {
        let days: usize = self.origins.iter().map(|o| o.days).sum();
        let hits: usize = self
            .origins
            .iter()
            .map(|o| o.covered.get(i).copied().unwrap_or(0))
            .sum();
        if days == 0 {
            f64::NAN
        } else {
            hits as f64 / days as f64
        }
    }

    /// RMS of the lead-time-summed forecast errors: the σ_L replenishment uses.
    pub fn lead_time_sigma(&self) -> f64 {
        rms(self.origins.iter().map(|o| o.lead_time_error))
    }

    /// Appends another report's origins (same levels), e.g. to pool seeds or products.
    pub fn merge(&mut self, other: BacktestReport) {
        if self.levels.is_empty() {
            self.levels = other.levels;
        }
        self.origins.extend(other.origins);
    }
}

/// Runs the rolling-origin backtest on one daily demand series. Origins at which MASE is
/// undefined (a training window with no seasonal variation) are skipped.
pub fn backtest(
    series: &[f64],
    forecaster: &DemandForecaster,
    config: &BacktestConfig,
) -> Result<BacktestReport> {
    let BacktestConfig {
        window,
        first_origin,
        step,
        horizon,
        ref levels,
        lead_time,
    } = *config;
    if step == 0 || horizon == 0 || lead_time == 0 || lead_time > horizon {
        return Err(ForecastError::InvalidConfig(
            "step, horizon and lead_time must be positive, lead_time ≤ horizon",
        ));
    }
    if first_origin < window {
        return Err(ForecastError::InvalidConfig(
            "first_origin must be ≥ window",
        ));
    }
    for &level in levels {
        validate_level(level)?;
    }
    validate_demand(series)?;
    let period = forecaster.config.period;
    let mut report = BacktestReport {
        levels: levels.clone(),
        origins: Vec::new(),
    };
    let mut origin = first_origin;
    while origin + horizon <= series.len() {
        let train = &series[origin - window..origin];
        let actual = &series[origin..origin + horizon];
        let fitted = forecaster.fit(train)?;
        let naive = seasonal_naive(train, period, horizon)?;
        let mut covered = Vec::with_capacity(levels.len());
        let mut point = Vec::new();
        for &level in levels.iter().chain(levels.is_empty().then_some(&0.8)) {
            let fc = fitted.forecast(horizon, level)?;
            covered.push(
                actual
                    .iter()
                    .zip(fc.lower.iter().zip(&fc.upper))
                    .filter(|(a, (lo, hi))| lo <= a && a <= hi)
                    .count(),
            );
            point = fc.mean;
        }
        covered.truncate(levels.len());
        match (
            mase(actual, &point, train, period),
            mase(actual, &naive, train, period),
        ) {
            (Ok(mase_skill), Ok(mase_naive)) => {
                let lead_actual: f64 = actual[..lead_time].iter().sum();
                report.origins.push(OriginScore {
                    origin,
                    mase_skill,
                    mase_naive,
                    covered,
                    days: horizon,
                    lead_time_error: lead_actual - point[..lead_time].iter().sum::<f64>(),
                    lead_time_error_naive: lead_actual - naive[..lead_time].iter().sum::<f64>(),
                })
            }
            (Err(ForecastError::ZeroScale), _) | (_, Err(ForecastError::ZeroScale)) => {}
            (Err(e), _) | (_, Err(e)) => return Err(e),
        }
        origin += step;
    }
    Ok(report)
}

/// σ of the model's own errors of demand summed over `days`, from a rolling backtest on the
/// tail of `history`: `origins` origins `step` days apart, the last ending at the history's end,
/// each fitted on the `window` days before it. This is the σ_L (or σ_{L+R}) of the
/// replenishment rule: measured, not the model's theoretical interval.
pub fn lead_time_sigma(
    history: &[f64],
    forecaster: &DemandForecaster,
    days: usize,
    window: usize,
    origins: usize,
    step: usize,
) -> Result<f64> {
    if days == 0 {
        return Err(ForecastError::ZeroHorizon);
    }
    if origins == 0 || step == 0 {
        return Err(ForecastError::InvalidConfig(
            "origins and step must be positive",
        ));
    }
    let needed = window + days + (origins - 1) * step;
    if history.len() < needed {
        return Err(ForecastError::HistoryTooShort {
            needed,
            got: history.len(),
        });
    }
    validate_demand(history)?;
    let last_origin = history.len() - days;
    let mut errors = Vec::with_capacity(origins);
    for k in 0..origins {
        let origin = last_origin - k * step;
        let fitted = forecaster.fit(&history[origin - window..origin])?;
        let fc = fitted.forecast(days, 0.8)?;
        let actual: f64 = history[origin..origin + days].iter().sum();
        errors.push(actual - fc.total(days));
    }
    Ok(rms(errors.into_iter()))
}

// ---- replenishment ------------------------------------------------------------------------

/// Inverse of the standard normal CDF (Acklam's rational approximation, relative error
/// < 1.2e-9). `p` must lie in (0, 1).
pub fn normal_quantile(p: f64) -> Result<f64> {
    validate_level(p)?;
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    Ok(if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    })
}

/// What one replenishment decision needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplenishmentInput<'a> {
    /// Forecast mean demand per day, day 1 first; at least `lead_time_days + review_days` days.
    pub daily_mean: &'a [f64],
    pub lead_time_days: usize,
    /// Days until the next chance to order (0 for continuous review).
    pub review_days: usize,
    /// σ of the model's error of demand summed over the lead time ([`lead_time_sigma`]).
    pub sigma_lead: f64,
    /// The same over lead time + review period; equal to `sigma_lead` when `review_days` is 0.
    pub sigma_protection: f64,
    /// Target cycle service level: the probability of no stock-out in a replenishment cycle.
    pub service_level: f64,
    /// On hand + on order − backorders.
    pub position: f64,
    /// Orders are whole multiples of this (0 for any quantity).
    pub lot_size: f64,
}

/// A replenishment decision and the figures behind it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReplenishmentPlan {
    pub lead_time_demand: f64,
    pub z: f64,
    pub safety_stock: f64,
    /// `s = D_L + z·σ_L`.
    pub reorder_point: f64,
    /// `S = D_{L+R} + z·σ_{L+R}`, at least the reorder point.
    pub order_up_to: f64,
    pub position: f64,
    /// What to order now: 0 unless the position is at or below the reorder point.
    pub order_qty: f64,
}

/// Computes the reorder point, the order-up-to level and the order to place now (see the
/// module docs for the formula). Safety stock is never negative (service levels below 0.5
/// give z < 0, which is honoured in `s` but floors the safety stock at 0).
pub fn plan_replenishment(input: &ReplenishmentInput<'_>) -> Result<ReplenishmentPlan> {
    use ForecastError::InvalidReplenishment as Bad;
    let protection = input.lead_time_days + input.review_days;
    if input.lead_time_days == 0 {
        return Err(Bad("lead time must be at least one day"));
    }
    if input.daily_mean.len() < protection {
        return Err(Bad("forecast shorter than lead time + review period"));
    }
    validate_demand(input.daily_mean)?;
    let z = normal_quantile(input.service_level)?;
    let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
    if !finite_nonneg(input.sigma_lead) || !finite_nonneg(input.sigma_protection) {
        return Err(Bad("sigmas must be finite and non-negative"));
    }
    if !finite_nonneg(input.lot_size) {
        return Err(Bad("lot size must be finite and non-negative"));
    }
    if !input.position.is_finite() {
        return Err(Bad("stock position must be finite"));
    }
    let lead_time_demand: f64 = input.daily_mean[..input.lead_time_days].iter().sum();
    let protection_demand: f64 = input.daily_mean[..protection].iter().sum();
    let safety_stock = (z * input.sigma_lead).max(0.0);
    let reorder_point = lead_time_demand + safety_stock;
    let order_up_to =
        (protection_demand + (z * input.sigma_protection).max(0.0)).max(reorder_point);
    let order_qty = if input.position <= reorder_point {
        let short = (order_up_to - input.position).max(0.0);
        if input.lot_size > 0.0 {
            ((short / input.lot_size).ceil().max(1.0)) * input.lot_size
        } else {
            short
        }
    } else {
        0.0
    };
    Ok(ReplenishmentPlan {
        lead_time_demand,
        z,
        safety_stock,
        reorder_point,
        order_up_to,
        position: input.position,
        order_qty,
    })
}

/// Reorder point and order-up-to level of one twin material, in the material's unit.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MaterialTargets {
    pub reorder_point: f64,
    pub order_up_to: f64,
}

/// The purchase a twin [`Policy::purchase`] should place for one material under forecast-based
/// targets: when on hand + on order ≤ s, enough of the material's lots (`order_qty`) to reach S.
pub fn purchase_for(view: &MaterialView, targets: &MaterialTargets) -> Option<PurchaseRequest> {
    let position = view.on_hand + view.on_order;
    if !(position.is_finite() && position <= targets.reorder_point) {
        return None;
    }
    let short = (targets.order_up_to.max(targets.reorder_point) - position).max(0.0);
    let quantity = if view.order_qty > 0.0 {
        (short / view.order_qty).ceil().max(1.0) * view.order_qty
    } else {
        short
    };
    (quantity > 0.0 && quantity.is_finite()).then_some(PurchaseRequest {
        material: view.material,
        quantity,
    })
}

pub use crate::policy::purchasing::{DemandRecorder, ForecastPurchasing};

// ---- decision records ---------------------------------------------------------------------

/// The ledger record of a demand forecast (stage Sales, advice only). No confidence: the
/// interval in the output says how sure the model is.
pub fn forecast_decision(
    id: impl Into<String>,
    at: Timestamp,
    product: &str,
    inputs_ref: impl Into<String>,
    forecast: &DemandForecast,
) -> Decision {
    Decision {
        id: id.into(),
        at,
        skill: "forecast".to_owned(),
        stage: LifecycleStage::Sales,
        inputs_ref: inputs_ref.into(),
        model: MODEL_ID.to_owned(),
        model_version: MODEL_VERSION.to_owned(),
        output: json!({
            "product": product,
            "unit": "units/day",
            "horizon_days": forecast.mean.len(),
            "mean": forecast.mean,
            "interval": {
                "level": forecast.level,
                "lower": forecast.lower,
                "upper": forecast.upper,
            },
        }),
        confidence: None,
        executed_by: ExecutedBy::None,
        outcome: None,
    }
}

/// The ledger record of a replenishment decision (stage Management). Its confidence is the
/// target cycle service level: the model's probability of no stock-out before the order lands.
pub fn replenishment_decision(
    id: impl Into<String>,
    at: Timestamp,
    item: &str,
    inputs_ref: impl Into<String>,
    plan: &ReplenishmentPlan,
    service_level: f64,
    executed_by: ExecutedBy,
) -> Decision {
    Decision {
        id: id.into(),
        at,
        skill: "replenishment".to_owned(),
        stage: LifecycleStage::Management,
        inputs_ref: inputs_ref.into(),
        model: MODEL_ID.to_owned(),
        model_version: MODEL_VERSION.to_owned(),
        output: json!({
            "item": item,
            "action": if plan.order_qty > 0.0 { "order" } else { "hold" },
            "order_qty": plan.order_qty,
            "reorder_point": plan.reorder_point,
            "order_up_to": plan.order_up_to,
            "safety_stock": plan.safety_stock,
            "lead_time_demand": plan.lead_time_demand,
            "position": plan.position,
        }),
        confidence: (0.0..=1.0)
            .contains(&service_level)
            .then_some(service_level),
        executed_by,
        outcome: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_plant::{PlantTime, Policy};
    use proptest::prelude::*;

    /// Linear trend + weekly profile, no noise: what the (additive) model must recover.
    fn clean(days: usize) -> Vec<f64> {
        let week = [20.0, 20.0, 20.0, 20.0, 10.0, -20.0, -70.0];
        (0..days)
            .map(|t| 100.0 + 0.5 * t as f64 + week[t % 7])
            .collect()
    }

    /// Deterministic noisy series (an LCG, no RNG crate).
    fn noisy(days: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        clean(days)
            .into_iter()
            .map(|v| (v * (0.7 + 0.6 * next())).max(0.0))
            .collect()
    }

    #[test]
    fn recovers_clean_weekly_pattern_with_trend() {
        let all = clean(140);
        let (history, future) = all.split_at(126);
        let fc = DemandForecaster::default()
            .fit(history)
            .unwrap()
            .forecast(14, 0.8)
            .unwrap();
        let mape = mean(future.iter().zip(&fc.mean).map(|(a, f)| (a - f).abs() / a));
        assert!(
            mape < 0.005,
            "MAPE {mape} on a noiseless series: {:?}",
            fc.mean
        );
        // and it beats seasonal naive, which misses the trend
        let naive = seasonal_naive(history, 7, 14).unwrap();
        let m_skill = mase(future, &fc.mean, history, 7).unwrap();
        let m_naive = mase(future, &naive, history, 7).unwrap();
        assert!(m_skill < 0.5 * m_naive, "{m_skill} vs {m_naive}");
    }

    #[test]
    fn intervals_widen_with_horizon_and_level() {
        let fitted = DemandForecaster::default().fit(&noisy(120, 7)).unwrap();
        let fc = fitted.forecast(28, 0.8).unwrap();
        let width = |fc: &DemandForecast, h: usize| fc.upper[h] - fc.lower[h];
        // Compare the same weekday a week apart, away from the zero clamp.
        assert!(width(&fc, 21) > width(&fc, 0), "{fc:?}");
        assert!(width(&fc, 14) >= width(&fc, 7));
        let wide = fitted.forecast(28, 0.95).unwrap();
        assert!(width(&wide, 0) > width(&fc, 0));
        for h in 0..28 {
            assert!(fc.lower[h] <= fc.mean[h] && fc.mean[h] <= fc.upper[h]);
            assert!(fc.lower[h] >= 0.0);
        }
    }

    #[test]
    fn seasonal_naive_by_hand() {
        let h = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(
            seasonal_naive(&h, 3, 5).unwrap(),
            vec![3.0, 4.0, 5.0, 3.0, 4.0]
        );
        assert_eq!(seasonal_naive(&h, 1, 2).unwrap(), vec![5.0, 5.0]);
    }

    #[test]
    fn mase_by_hand() {
        // in-sample seasonal naive (m = 2): |3−1|, |5−2|, |4−3| → MAE 2
        let history = [1.0, 2.0, 3.0, 5.0, 4.0];
        // forecast errors 1 and 3 → MAE 2 → MASE 1
        assert_eq!(mase(&[10.0, 10.0], &[9.0, 13.0], &history, 2).unwrap(), 1.0);
        assert_eq!(mase(&[10.0], &[10.5], &history, 2).unwrap(), 0.25);
    }

    #[test]
    fn error_paths() {
        let f = DemandForecaster::default();
        assert_eq!(
            f.fit(&[1.0; 20]).unwrap_err(),
            ForecastError::HistoryTooShort {
                needed: 21,
                got: 20
            }
        );
        let mut bad = noisy(60, 1);
        bad[5] = f64::NAN;
        assert_eq!(
            f.fit(&bad).unwrap_err(),
            ForecastError::NonFinite { index: 5 }
        );
        bad[5] = f64::INFINITY;
        assert_eq!(
            f.fit(&bad).unwrap_err(),
            ForecastError::NonFinite { index: 5 }
        );
        bad[5] = -1.0;
        assert!(matches!(
            f.fit(&bad).unwrap_err(),
            ForecastError::OutOfRange { index: 5, .. }
        ));
        bad[5] = 2.0 * MAX_DAILY_DEMAND;
        assert!(matches!(f.fit(&bad), Err(ForecastError::OutOfRange { .. })));
        let even = DemandForecaster::new(ForecastConfig {
            period: 7,
            seasonal_window: 8,
        });
        assert!(matches!(
            even.fit(&noisy(60, 1)),
            Err(ForecastError::InvalidConfig(_))
        ));
        let fitted = f.fit(&noisy(60, 1)).unwrap();
        assert_eq!(
            fitted.forecast(0, 0.8).unwrap_err(),
            ForecastError::ZeroHorizon
        );
        for level in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(matches!(
                fitted.forecast(7, level),
                Err(ForecastError::InvalidLevel(_))
            ));
        }
        assert!(matches!(
            seasonal_naive(&[1.0, 2.0], 3, 1),
            Err(ForecastError::HistoryTooShort { .. })
        ));
        assert_eq!(
            seasonal_naive(&[1.0; 9], 7, 0),
            Err(ForecastError::ZeroHorizon)
        );
        assert!(matches!(
            seasonal_naive(&[1.0; 9], 0, 1),
            Err(ForecastError::InvalidConfig(_))
        ));
        assert_eq!(
            seasonal_naive(&[1.0, f64::NAN, 2.0], 2, 1),
            Err(ForecastError::NonFinite { index: 1 })
        );
        assert_eq!(
            mase(&[1.0], &[1.0, 2.0], &[1.0, 2.0, 3.0], 1),
            Err(ForecastError::LengthMismatch {
                actual: 1,
                forecast: 2
            })
        );
        assert_eq!(
            mase(&[], &[], &[1.0, 2.0], 1),
            Err(ForecastError::ZeroHorizon)
        );
        assert_eq!(
            mase(&[1.0], &[1.0], &[5.0; 8], 7),
            Err(ForecastError::ZeroScale)
        );
        assert!(matches!(
            mase(&[1.0], &[1.0], &[5.0; 7], 7),
            Err(ForecastError::HistoryTooShort { .. })
        ));
        assert_eq!(
            mase(&[1.0], &[f64::NAN], &[1.0, 2.0, 4.0], 1),
            Err(ForecastError::NonFinite { index: 0 })
        );
        assert!(matches!(
            backtest(
                &noisy(60, 1),
                &f,
                &BacktestConfig {
                    first_origin: 10,
                    ..BacktestConfig::default()
                }
            ),
            Err(ForecastError::InvalidConfig(_))
        ));
        assert!(matches!(
            lead_time_sigma(&noisy(60, 1), &f, 7, 56, 2, 7),
            Err(ForecastError::HistoryTooShort { .. })
        ));
        assert!(matches!(
            normal_quantile(1.0),
            Err(ForecastError::InvalidLevel(_))
        ));
    }

    fn input(mean: &[f64], lead: usize, sl: f64, sigma: f64) -> ReplenishmentInput<'_> {
        ReplenishmentInput {
            daily_mean: mean,
            lead_time_days: lead,
            review_days: 0,
            sigma_lead: sigma * (lead as f64).sqrt(),
            sigma_protection: sigma * (lead as f64).sqrt(),
            service_level: sl,
            position: 0.0,
            lot_size: 0.0,
        }
    }

    #[test]
    fn normal_quantile_matches_tables() {
        for (p, z) in [
            (0.5, 0.0),
            (0.95, 1.644_853_6),
            (0.975, 1.959_964),
            (0.01, -2.326_348),
        ] {
            let got = normal_quantile(p).unwrap();
            assert!((got - z).abs() < 1e-6, "z({p}) = {got}, want {z}");
        }
    }

    #[test]
    fn reorder_point_rises_with_service_level_and_lead_time() {
        let mean = [100.0; 28];
        let rops: Vec<f64> = [0.5, 0.8, 0.9, 0.95, 0.99]
            .iter()
            .map(|&sl| {
                plan_replenishment(&input(&mean, 7, sl, 20.0))
                    .unwrap()
                    .reorder_point
            })
            .collect();
        assert_eq!(rops[0], 700.0, "z = 0 leaves the lead-time demand");
        assert!(rops.windows(2).all(|w| w[1] > w[0]), "{rops:?}");
        let by_lead: Vec<f64> = [1, 3, 7, 14]
            .iter()
            .map(|&l| {
                plan_replenishment(&input(&mean, l, 0.95, 20.0))
                    .unwrap()
                    .reorder_point
            })
            .collect();
        assert!(by_lead.windows(2).all(|w| w[1] > w[0]), "{by_lead:?}");
        // the formula: 7·100 + 1.6449·20·√7
        let plan = plan_replenishment(&input(&mean, 7, 0.95, 20.0)).unwrap();
        assert!((plan.reorder_point - (700.0 + 1.644_853_6 * 20.0 * 7f64.sqrt())).abs() < 1e-3);
    }

    #[test]
    fn order_quantity_reaches_order_up_to_in_lots() {
        let mean = [10.0; 14];
        let mut inp = input(&mean, 7, 0.9, 5.0);
        inp.review_days = 7;
        inp.sigma_protection = 5.0 * 14f64.sqrt();
        inp.lot_size = 25.0;
        inp.position = 60.0;
        let plan = plan_replenishment(&inp).unwrap();
        assert!(plan.order_up_to > plan.reorder_point);
        assert!(plan.order_qty >= plan.order_up_to - 60.0);
        assert_eq!(plan.order_qty % 25.0, 0.0);
        inp.position = plan.reorder_point + 1.0;
        assert_eq!(plan_replenishment(&inp).unwrap().order_qty, 0.0);
        inp.daily_mean = &mean[..10];
        assert!(matches!(
            plan_replenishment(&inp),
            Err(ForecastError::InvalidReplenishment(_))
        ));
        inp.daily_mean = &mean;
        inp.sigma_lead = f64::NAN;
        assert!(plan_replenishment(&inp).is_err());
    }

    #[test]
    fn purchase_for_twin_material() {
        let view = MaterialView {
            material: 3,
            on_hand: 40.0,
            on_order: 0.0,
            reorder_point: 0.0,
            order_qty: 30.0,
        };
        let t = MaterialTargets {
            reorder_point: 50.0,
            order_up_to: 120.0,
        };
        assert_eq!(
            purchase_for(&view, &t),
            Some(PurchaseRequest {
                material: 3,
                quantity: 90.0
            })
        );
        let above = MaterialView {
            on_order: 20.0,
            ..view
        };
        assert_eq!(purchase_for(&above, &t), None);
        let mut policy = ForecastPurchasing::new(aifactory_plant::BaselinePolicy::default());
        policy.set_targets(3, t);
        let fallback = MaterialView {
            material: 0,
            on_hand: 0.0,
            on_order: 0.0,
            reorder_point: 10.0,
            order_qty: 5.0,
        };
        let orders = policy.purchase(PlantTime(0), &[fallback, view]);
        assert_eq!(orders.len(), 2, "{orders:?}");
        assert!(orders.iter().any(|o| o.material == 0 && o.quantity == 15.0));
    }

    #[test]
    fn backtest_beats_naive_and_yields_sigma() {
        let series = noisy(240, 3);
        let f = DemandForecaster::default();
        let report = backtest(&series, &f, &BacktestConfig::default()).unwrap();
        assert_eq!(report.origins.len(), 16);
        assert!(report.mase_ratio() < 0.85, "ratio {}", report.mase_ratio());
        let sigma = report.lead_time_sigma();
        assert!(sigma > 0.0 && sigma.is_finite());
        let own = lead_time_sigma(&series[..180], &f, 7, 120, 4, 7).unwrap();
        assert!(own > 0.0 && own.is_finite());
    }

    #[test]
    fn decisions_carry_stage_model_and_output() {
        let fc = DemandForecaster::default()
            .fit(&noisy(60, 2))
            .unwrap()
            .forecast(7, 0.8)
            .unwrap();
        let d = forecast_decision("D-1", Timestamp(0), "P-HUB", "demand:P-HUB:0..60", &fc);
        assert_eq!(
            (d.skill.as_str(), d.stage),
            ("forecast", LifecycleStage::Sales)
        );
        assert_eq!(d.output["mean"].as_array().map(Vec::len), Some(7));
        assert_eq!(d.model, MODEL_ID);
        let plan = plan_replenishment(&input(&fc.mean, 7, 0.95, 10.0)).unwrap();
        let r = replenishment_decision(
            "D-2",
            Timestamp(0),
            "P-HUB",
            "x",
            &plan,
            0.95,
            ExecutedBy::Auto,
        );
        assert_eq!(r.stage, LifecycleStage::Management);
        assert_eq!(r.confidence, Some(0.95));
        assert_eq!(r.output["action"], "order");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_input_never_panics(
            history in prop::collection::vec(
                prop_oneof![
                    4 => 0.0..500.0f64,
                    1 => Just(0.0),
                    1 => any::<f64>(),
                ],
                0..80,
            ),
            horizon in 0usize..30,
            level in any::<f64>(),
            lead in 0usize..20,
            sl in any::<f64>(),
            position in any::<f64>(),
        ) {
            let f = DemandForecaster::default();
            if let Ok(fitted) = f.fit(&history)
                && let Ok(fc) = fitted.forecast(horizon, level)
            {
                prop_assert!(fc.mean.iter().all(|v| v.is_finite() && *v >= 0.0));
                prop_assert!(fc.lower.iter().zip(&fc.upper).all(|(l, u)| l <= u));
                let _ = plan_replenishment(&ReplenishmentInput {
                    daily_mean: &fc.mean,
                    lead_time_days: lead,
                    review_days: 0,
                    sigma_lead: 1.0,
                    sigma_protection: 1.0,
                    service_level: sl,
                    position,
                    lot_size: 1.0,
                });
            }
            let config = BacktestConfig {
                window: 21,
                first_origin: 28,
                step: 7,
                horizon: 7,
                levels: vec![level],
                lead_time: lead,
            };
            let _ = backtest(&history, &f, &config);
            let _ = lead_time_sigma(&history, &f, lead, 21, 2, 7);
            let _ = seasonal_naive(&history, 7, horizon);
            if history.len() > 14 {
                let (h, a) = history.split_at(history.len() - 7);
                let _ = mase(a, &a.iter().rev().copied().collect::<Vec<_>>(), h, 7);
            }
        }
    }
}
