//! Statistical process control (SPC), the core of the quality skill: control charts fitted on a
//! phase-I (in-control) sample and then fed new measurements one at a time, the Nelson and
//! Western Electric run rules, process capability, an adaptive inspection rate, and the
//! [`Decision`] record an alarm becomes.
//!
//! ```text
//!  phase-I sample ──fit──▶ chart (limits frozen) ──observe(x)──▶ ChartPoint ──▶ SpcAlarm ──▶ Decision
//!                                     │                             │
//!                                     └─ RuleDetector (last 15 z) ──┘──▶ InspectionPolicy ──▶ 1 in k
//! ```
//!
//! Charts: individuals / moving range ([`IndividualsChart`]), X̄-R and X̄-S for subgroups of 2 to
//! 10 ([`XbarChart`]), EWMA ([`EwmaChart`]) and tabular CUSUM ([`CusumChart`]). Shewhart charts
//! (individuals, X̄) run the rules of a [`RuleSet`] on each standardised point; EWMA and CUSUM do
//! not, since their statistics are autocorrelated by construction and the run rules assume
//! independent points.
//!
//! Invariants: pure (no I/O, no clock: callers pass the timestamp a decision needs);
//! deterministic; never panics on any input, returning [`SpcError`] instead; limits are frozen
//! at fit time and never learn from phase-II points (an SPC chart that adapts to a shift would
//! hide it).
//!
//! Conventions (the textbooks differ; these are the choices):
//! - "Beyond kσ" is strict: a point exactly on a limit is inside. A point exactly on the centre
//!   line belongs to neither side and breaks a same-side run.
//! - Trends and alternation compare consecutive points strictly: a tie breaks the pattern.
//! - Nelson 3 is six *points* (five rises or five falls); Nelson 4 is fourteen points (thirteen
//!   alternating moves).
//! - "k of m beyond" rules (Nelson 5 and 6, Western Electric 2 and 3) fire only when the newest
//!   point is itself one of the k, so an alarm always names a point that is part of the evidence
//!   rather than an unremarkable one that trails it.
//! - Nelson 8 follows Nelson (1984): eight in a row beyond 1σ *with points on both sides*; eight
//!   beyond 1σ on one side is already caught by rule 6 (four of five beyond 1σ on one side).
//! - Western Electric rule 4 is eight in a row on one side (WECO handbook, 1956); Nelson 2 is nine.
//! - Rules keep firing for as long as their pattern holds (a run of eleven on one side fires
//!   Nelson 2 at the 9th, 10th and 11th point); [`RuleDetector::reset`] starts afresh after a
//!   corrective action.
//! - Sigma for individuals, EWMA, CUSUM and within-capability is MR̄/d2 (d2 = 1.128): it is
//!   robust to a slow drift in the phase-I sample, unlike the overall standard deviation.

use aifactory_core::{Decision, ExecutedBy, LifecycleStage, Timestamp};
use serde::{Deserialize, Serialize};

/// Why an SPC computation refused its input. Every variant is a recoverable input error: fix the
/// sample, the parameters or the spec limits and call again; no state was changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpcError {
    #[error("need at least {needed} points, got {found}")]
    TooFewPoints { needed: usize, found: usize },
    #[error("value at position {index} is not a finite number")]
    NonFinite { index: usize },
    #[error("the sample has no spread (sigma is 0), so control limits or capability are undefined")]
    ZeroSigma,
    #[error("the sample's statistics overflow a 64-bit float")]
    Overflow,
    #[error("lower spec limit {lower} must be below upper spec limit {upper}")]
    SpecLimitsInverted { lower: f64, upper: f64 },
    #[error("subgroup size {0} is not supported; use 2 to 10")]
    UnsupportedSubgroupSize(usize),
    #[error("subgroup {index} has {found} values, expected {expected}")]
    SubgroupSizeMismatch {
        index: usize,
        expected: usize,
        found: usize,
    },
    #[error("parameter {name} = {value} is out of range: expected {expected}")]
    InvalidParameter {
        name: &'static str,
        value: f64,
        expected: &'static str,
    },
}

/// d2 for subgroups of two: the moving range of consecutive individuals.
pub const D2_MOVING_RANGE: f64 = 1.128;
/// D4 for subgroups of two: the upper limit of the moving-range chart is D4 · MR̄.
pub const D4_MOVING_RANGE: f64 = 3.267;
/// How many recent points the run rules need at most (Nelson 7: fifteen in a row).
pub const RULE_WINDOW: usize = 15;

// ---------------------------------------------------------------------------------------------
// Control-chart constants
// ---------------------------------------------------------------------------------------------

/// The control-chart constants for one subgroup size, as tabulated in Montgomery, *Introduction
/// to Statistical Quality Control*, Appendix VI (and ASTM E2587).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SubgroupConstants {
    pub n: usize,
    /// A2: X̄ limits are X̿ ± A2 · R̄.
    pub a2: f64,
    /// d2: the mean of the range of n standard normals; σ̂ = R̄ / d2.
    pub d2: f64,
    /// D3: the lower R limit is D3 · R̄.
    pub r_lower: f64,
    /// D4: the upper R limit is D4 · R̄.
    pub r_upper: f64,
    /// A3: X̄ limits are X̿ ± A3 · S̄.
    pub a3: f64,
    /// c4: the mean of the sample standard deviation of n standard normals; σ̂ = S̄ / c4.
    pub c4: f64,
    /// B3: the lower S limit is B3 · S̄.
    pub s_lower: f64,
    /// B4: the upper S limit is B4 · S̄.
    pub s_upper: f64,
}

/// One table row: n, then A2, d2, D3, D4, A3, c4, B3, B4 in the textbook's column order.
const fn row(
    n: usize,
    [a2, d2, r_lower, r_upper, a3, c4, s_lower, s_upper]: [f64; 8],
) -> SubgroupConstants {
    SubgroupConstants {
        n,
        a2,
        d2,
        r_lower,
        r_upper,
        a3,
        c4,
        s_lower,
        s_upper,
    }
}

// Tabulated rather than computed: published worked examples (and auditors) use these rounded
// values, so limits match the textbook to the last digit. A test checks them against the
// closed forms.
const SUBGROUP_CONSTANTS: [SubgroupConstants; 9] = [
    row(2, [1.880, 1.128, 0.0, 3.267, 2.659, 0.7979, 0.0, 3.267]),
    row(3, [1.023, 1.693, 0.0, 2.574, 1.954, 0.8862, 0.0, 2.568]),
    row(4, [0.729, 2.059, 0.0, 2.282, 1.628, 0.9213, 0.0, 2.266]),
    row(5, [0.577, 2.326, 0.0, 2.114, 1.427, 0.9400, 0.0, 2.089]),
    row(6, [0.483, 2.534, 0.0, 2.004, 1.287, 0.9515, 0.030, 1.970]),
    row(7, [0.419, 2.704, 0.076, 1.924, 1.182, 0.9594, 0.118, 1.882]),
    row(8, [0.373, 2.847, 0.136, 1.864, 1.099, 0.9650, 0.185, 1.815]),
    row(9, [0.337, 2.970, 0.184, 1.816, 1.032, 0.9693, 0.239, 1.761]),
    row(
        10,
        [0.308, 3.078, 0.223, 1.777, 0.975, 0.9727, 0.284, 1.716],
    ),
];

/// The constants for subgroups of `n` (2 to 10).
pub fn subgroup_constants(n: usize) -> Result<SubgroupConstants, SpcError> {
    SUBGROUP_CONSTANTS
        .iter()
        .find(|row| row.n == n)
        .copied()
        .ok_or(SpcError::UnsupportedSubgroupSize(n))
}

// ---------------------------------------------------------------------------------------------
// Run rules
// ---------------------------------------------------------------------------------------------

/// One run rule, by family and number. The names ([`Rule::as_str`]) are stable: they go into
/// decision records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Rule {
    #[serde(rename = "nelson_1")]
    Nelson1,
    #[serde(rename = "nelson_2")]
    Nelson2,
    #[serde(rename = "nelson_3")]
    Nelson3,
    #[serde(rename = "nelson_4")]
    Nelson4,
    #[serde(rename = "nelson_5")]
    Nelson5,
    #[serde(rename = "nelson_6")]
    Nelson6,
    #[serde(rename = "nelson_7")]
    Nelson7,
    #[serde(rename = "nelson_8")]
    Nelson8,
    #[serde(rename = "western_electric_1")]
    WesternElectric1,
    #[serde(rename = "western_electric_2")]
    WesternElectric2,
    #[serde(rename = "western_electric_3")]
    WesternElectric3,
    #[serde(rename = "western_electric_4")]
    WesternElectric4,
}

/// The family a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleFamily {
    /// Nelson (1984), "The Shewhart control chart — tests for special causes", JQT 16(4).
    Nelson,
    /// Western Electric, *Statistical Quality Control Handbook* (1956).
    WesternElectric,
}

impl Rule {
    /// Every rule, in the order a detector reports them.
    pub const ALL: [Rule; 12] = [
        Rule::Nelson1,
        Rule::Nelson2,
        Rule::Nelson3,
        Rule::Nelson4,
        Rule::Nelson5,
        Rule::Nelson6,
        Rule::Nelson7,
        Rule::Nelson8,
        Rule::WesternElectric1,
        Rule::WesternElectric2,
        Rule::WesternElectric3,
        Rule::WesternElectric4,
    ];

    /// The stable name written into records, e.g. `"nelson_3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Nelson1 => "nelson_1",
            Rule::Nelson2 => "nelson_2",
            Rule::Nelson3 => "nelson_3",
            Rule::Nelson4 => "nelson_4",
            Rule::Nelson5 => "nelson_5",
            Rule::Nelson6 => "nelson_6",
            Rule::Nelson7 => "nelson_7",
            Rule::Nelson8 => "nelson_8",
            Rule::WesternElectric1 => "western_electric_1",
            Rule::WesternElectric2 => "western_electric_2",
            Rule::WesternElectric3 => "western_electric_3",
            Rule::WesternElectric4 => "western_electric_4",
        }
    }

    pub fn family(self) -> RuleFamily {
        match self {
            Rule::WesternElectric1
            | Rule::WesternElectric2
            | Rule::WesternElectric3
            | Rule::WesternElectric4 => RuleFamily::WesternElectric,
            _ => RuleFamily::Nelson,
        }
    }

    /// The rule's number within its family (1 to 8 for Nelson, 1 to 4 for Western Electric).
    pub fn number(self) -> u8 {
        match self {
            Rule::Nelson1 | Rule::WesternElectric1 => 1,
            Rule::Nelson2 | Rule::WesternElectric2 => 2,
            Rule::Nelson3 | Rule::WesternElectric3 => 3,
            Rule::Nelson4 | Rule::WesternElectric4 => 4,
            Rule::Nelson5 => 5,
            Rule::Nelson6 => 6,
            Rule::Nelson7 => 7,
            Rule::Nelson8 => 8,
        }
    }

    /// The textbook statement of the rule and what it usually means, for the operator.
    pub fn description(self) -> &'static str {
        match self {
            Rule::Nelson1 | Rule::WesternElectric1 => {
                "one point beyond 3 sigma from the centre line: a large shift or a gross error"
            }
            Rule::Nelson2 => {
                "nine points in a row on the same side of the centre line: a sustained shift"
            }
            Rule::Nelson3 => "six points in a row steadily increasing or decreasing: a drift",
            Rule::Nelson4 => {
                "fourteen points in a row alternating up and down: over-adjustment or two \
                 alternating sources"
            }
            Rule::Nelson5 | Rule::WesternElectric2 => {
                "two of three points in a row beyond 2 sigma on the same side: a moderate shift"
            }
            Rule::Nelson6 | Rule::WesternElectric3 => {
                "four of five points in a row beyond 1 sigma on the same side: a small shift"
            }
            Rule::Nelson7 => {
                "fifteen points in a row within 1 sigma of the centre line: stratification or \
                 limits too wide"
            }
            Rule::Nelson8 => {
                "eight points in a row beyond 1 sigma with points on both sides: a mixture of \
                 two populations"
            }
            Rule::WesternElectric4 => {
                "eight points in a row on the same side of the centre line: a sustained shift"
            }
        }
    }

    fn bit(self) -> u16 {
        let position = Rule::ALL.iter().position(|r| *r == self).unwrap_or(0);
        1 << position
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rules a detector checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    mask: u16,
}

impl RuleSet {
    /// Nelson rules 1 to 8.
    pub fn nelson() -> RuleSet {
        RuleSet::only(&Rule::ALL[..8])
    }

    /// Western Electric rules 1 to 4.
    pub fn western_electric() -> RuleSet {
        RuleSet::only(&Rule::ALL[8..])
    }

    /// Every Nelson and Western Electric rule.
    pub fn all() -> RuleSet {
        RuleSet::only(&Rule::ALL)
    }

    /// Exactly the given rules. Note that on a Shewhart chart a point beyond the control limits
    /// is reported as Nelson 1 or Western Electric 1: leave both out and it goes unreported.
    pub fn only(rules: &[Rule]) -> RuleSet {
        RuleSet {
            mask: rules.iter().fold(0, |mask, rule| mask | rule.bit()),
        }
    }

    pub fn contains(self, rule: Rule) -> bool {
        self.mask & rule.bit() != 0
    }

    /// The rules in the set, in [`Rule::ALL`] order.
    pub fn rules(self) -> impl Iterator<Item = Rule> {
        Rule::ALL
            .into_iter()
            .filter(move |rule| self.contains(*rule))
    }
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet::nelson()
    }
}

/// Runs a [`RuleSet`] online over standardised points z = (x − centre) / σ, keeping only the
/// last [`RULE_WINDOW`] points.
#[derive(Debug, Clone)]
pub struct RuleDetector {
    rules: RuleSet,
    ring: [f64; RULE_WINDOW],
    /// How many slots of `ring` hold points (at most `RULE_WINDOW`).
    len: usize,
    /// The slot the next point goes into.
    next: usize,
}

impl RuleDetector {
    pub fn new(rules: RuleSet) -> RuleDetector {
        RuleDetector {
            rules,
            ring: [0.0; RULE_WINDOW],
            len: 0,
            next: 0,
        }
    }

    pub fn rule_set(&self) -> RuleSet {
        self.rules
    }

    /// Forgets the recent points, e.g. after a corrective action, so old patterns stop firing.
    pub fn reset(&mut self) {
        self.len = 0;
        self.next = 0;
    }

    /// Adds the newest point and returns every rule in the set that fires at it, in
    /// [`Rule::ALL`] order. ±∞ is accepted (it is beyond every limit); NaN is refused and
    /// leaves the detector unchanged.
    pub fn push(&mut self, z: f64) -> Result<Vec<Rule>, SpcError> {
        if z.is_nan() {
            return Err(SpcError::NonFinite { index: 0 });
        }
        self.ring[self.next] = z;
        self.next = (self.next + 1) % RULE_WINDOW;
        self.len = (self.len + 1).min(RULE_WINDOW);
        let window = Recent { detector: self };
        Ok(self
            .rules
            .rules()
            .filter(|rule| window.fires(*rule))
            .collect())
    }

    /// The `age`-th most recent point (0 = the newest), if held.
    fn recent(&self, age: usize) -> Option<f64> {
        if age >= self.len {
            return None;
        }
        let slot = (self.next + RULE_WINDOW - 1 - age) % RULE_WINDOW;
        Some(self.ring[slot])
    }
}

/// A read view of the newest points, with the pattern tests the rules are made of.
struct Recent<'a> {
    detector: &'a RuleDetector,
}

impl Recent<'_> {
    /// The newest `count` points, newest first; `None` until that many have arrived.
    fn last(&self, count: usize) -> Option<Vec<f64>> {
        (0..count).map(|age| self.detector.recent(age)).collect()
    }

    fn fires(&self, rule: Rule) -> bool {
        match rule {
            Rule::Nelson1 | Rule::WesternElectric1 => self.beyond(3.0),
            Rule::Nelson2 => self.same_side_run(9),
            Rule::Nelson3 => self.trend(6),
            Rule::Nelson4 => self.alternating(14),
            Rule::Nelson5 | Rule::WesternElectric2 => self.k_of_m_beyond(2, 3, 2.0),
            Rule::Nelson6 | Rule::WesternElectric3 => self.k_of_m_beyond(4, 5, 1.0),
            Rule::Nelson7 => self.all_within(15, 1.0),
            Rule::Nelson8 => self.mixture(8, 1.0),
            Rule::WesternElectric4 => self.same_side_run(8),
        }
    }

    fn beyond(&self, limit: f64) -> bool {
        self.detector.recent(0).is_some_and(|z| z.abs() > limit)
    }

    fn same_side_run(&self, count: usize) -> bool {
        self.last(count).is_some_and(|points| {
            points.iter().all(|z| *z > 0.0) || points.iter().all(|z| *z < 0.0)
        })
    }

    /// `count` points, each strictly above (or each strictly below) the one before.
    fn trend(&self, count: usize) -> bool {
        self.last(count).is_some_and(|points| {
            // Newest first, so a rising series has each point above the next older one.
            let rising = points.windows(2).all(|pair| pair[0] > pair[1]);
            let falling = points.windows(2).all(|pair| pair[0] < pair[1]);
            rising || falling
        })
    }

    /// `count` points whose consecutive moves alternate up and down, with no ties.
    fn alternating(&self, count: usize) -> bool {
        self.last(count).is_some_and(|points| {
            let moves: Vec<f64> = points.windows(2).map(|pair| pair[0] - pair[1]).collect();
            moves.windows(2).all(|pair| pair[0] * pair[1] < 0.0)
        })
    }

    /// At least `k` of the last `m` points beyond `limit` on one side, the newest among them.
    fn k_of_m_beyond(&self, k: usize, m: usize, limit: f64) -> bool {
        let Some(points) = self.last(m) else {
            return false;
        };
        let newest = points[0];
        let above = points.iter().filter(|z| **z > limit).count();
        let below = points.iter().filter(|z| **z < -limit).count();
        (newest > limit && above >= k) || (newest < -limit && below >= k)
    }

    fn all_within(&self, count: usize, limit: f64) -> bool {
        self.last(count)
            .is_some_and(|points| points.iter().all(|z| z.abs() < limit))
    }

    /// `count` points all beyond `limit`, with at least one on each side.
    fn mixture(&self, count: usize, limit: f64) -> bool {
        self.last(count).is_some_and(|points| {
            points.iter().all(|z| z.abs() > limit)
                && points.iter().any(|z| *z > limit)
                && points.iter().any(|z| *z < -limit)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Chart points and signals
// ---------------------------------------------------------------------------------------------

/// Which chart produced a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// Individuals with a moving-range chart (I-MR).
    Individuals,
    /// Subgroup means with a range chart.
    XbarR,
    /// Subgroup means with a standard-deviation chart.
    XbarS,
    Ewma,
    Cusum,
}

impl ChartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChartKind::Individuals => "individuals_moving_range",
            ChartKind::XbarR => "xbar_r",
            ChartKind::XbarS => "xbar_s",
            ChartKind::Ewma => "ewma",
            ChartKind::Cusum => "cusum",
        }
    }
}

/// A lower limit, a centre line and an upper limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ControlLimits {
    pub lower: f64,
    pub centre: f64,
    pub upper: f64,
}

impl ControlLimits {
    fn excludes(&self, value: f64) -> bool {
        value > self.upper || value < self.lower
    }
}

/// Why a point is out of control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// A run rule fired on the location chart (individuals or X̄).
    Rule(Rule),
    /// The companion dispersion chart (moving range, R or S) is beyond its limits.
    DispersionBeyondLimits,
    /// The EWMA statistic is beyond its time-varying limits.
    EwmaBeyondLimits,
    /// The upper CUSUM exceeded the decision interval h: the mean has moved up.
    CusumUpper,
    /// The lower CUSUM exceeded the decision interval h: the mean has moved down.
    CusumLower,
}

impl Signal {
    /// The stable name written into records.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Rule(rule) => rule.as_str(),
            Signal::DispersionBeyondLimits => "dispersion_beyond_limits",
            Signal::EwmaBeyondLimits => "ewma_beyond_limits",
            Signal::CusumUpper => "cusum_upper",
            Signal::CusumLower => "cusum_lower",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Signal::Rule(rule) => rule.description(),
            Signal::DispersionBeyondLimits => {
                "the spread (moving range, range or standard deviation) is beyond its control \
                 limits: the process variability changed"
            }
            Signal::EwmaBeyondLimits => {
                "the exponentially weighted moving average is beyond its limits: a small \
                 sustained shift"
            }
            Signal::CusumUpper => "the upper cumulative sum crossed h: the mean shifted up",
            Signal::CusumLower => "the lower cumulative sum crossed h: the mean shifted down",
        }
    }

    /// Whether the point itself (not only a pattern) says the process is off: these warrant
    /// holding product, while pattern-only rules warrant a look.
    fn demands_hold(self) -> bool {
        matches!(
            self,
            Signal::Rule(Rule::Nelson1 | Rule::WesternElectric1)
                | Signal::DispersionBeyondLimits
                | Signal::EwmaBeyondLimits
                | Signal::CusumUpper
                | Signal::CusumLower
        )
    }
}

/// The companion dispersion chart's point (moving range, range or standard deviation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DispersionPoint {
    pub statistic: f64,
    pub limits: ControlLimits,
}

/// One observation as a chart sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartPoint {
    pub chart: ChartKind,
    /// 1 for the first point observed after fitting (or after a reset), then 2, 3, …
    pub index: u64,
    /// What was measured: the individual value, or the subgroup mean.
    pub observed: f64,
    /// What is plotted: the individual or mean, the EWMA, or the signed CUSUM (the upper sum
    /// when it is the larger, else minus the lower sum).
    pub statistic: f64,
    /// The limits at this point (EWMA limits widen with the index; CUSUM's are ±h·σ about 0).
    pub limits: ControlLimits,
    /// The statistic standardised: (statistic − centre) / σ of the statistic.
    pub z: f64,
    pub dispersion: Option<DispersionPoint>,
    /// Every reason the point is out of control; empty when it is in control.
    pub signals: Vec<Signal>,
    /// The CUSUM's estimate of the shifted mean when it signals (Montgomery eq. 9.4).
    pub estimated_mean: Option<f64>,
}

impl ChartPoint {
    pub fn in_control(&self) -> bool {
        self.signals.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Phase-I helpers
// ---------------------------------------------------------------------------------------------

fn check_finite(values: &[f64]) -> Result<(), SpcError> {
    match values.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(SpcError::NonFinite { index }),
        None => Ok(()),
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The sample standard deviation (n − 1 in the denominator).
fn standard_deviation(values: &[f64]) -> f64 {
    let centre = mean(values);
    let squares: f64 = values.iter().map(|x| (x - centre) * (x - centre)).sum();
    (squares / (values.len() as f64 - 1.0)).sqrt()
}

fn mean_moving_range(values: &[f64]) -> f64 {
    let ranges: Vec<f64> = values
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).abs())
        .collect();
    mean(&ranges)
}

/// Checks a fitted centre and sigma: finite (else the sums overflowed) and sigma above zero.
fn check_fitted(centre: f64, sigma: f64) -> Result<(), SpcError> {
    if !centre.is_finite() || !sigma.is_finite() {
        return Err(SpcError::Overflow);
    }
    if sigma <= 0.0 {
        return Err(SpcError::ZeroSigma);
    }
    Ok(())
}

/// The phase-I location and short-term sigma (MR̄ / d2) of individual values.
fn individuals_baseline(sample: &[f64]) -> Result<(f64, f64, f64), SpcError> {
    if sample.len() < 2 {
        return Err(SpcError::TooFewPoints {
            needed: 2,
            found: sample.len(),
        });
    }
    check_finite(sample)?;
    let centre = mean(sample);
    let moving_range = mean_moving_range(sample);
    let sigma = moving_range / D2_MOVING_RANGE;
    check_fitted(centre, sigma)?;
    Ok((centre, sigma, moving_range))
}

fn standardise(value: f64, centre: f64, sigma: f64) -> f64 {
    (value - centre) / sigma
}

// ---------------------------------------------------------------------------------------------
// Individuals / moving range
// ---------------------------------------------------------------------------------------------

/// Individuals and moving-range chart: centre = phase-I mean, σ = MR̄ / 1.128, limits ±3σ;
/// moving-range limits 0 and 3.267 · MR̄.
#[derive(Debug, Clone)]
pub struct IndividualsChart {
    centre: f64,
    sigma: f64,
    mean_moving_range: f64,
    detector: RuleDetector,
    /// The previous phase-II value, for the moving range. The first phase-II point has no
    /// moving range: the last phase-I value may be far from it in time.
    previous: Option<f64>,
    observed: u64,
}

impl IndividualsChart {
    /// Fits the limits on an in-control sample of at least two finite values.
    pub fn fit(sample: &[f64], rules: RuleSet) -> Result<IndividualsChart, SpcError> {
        let (centre, sigma, mean_moving_range) = individuals_baseline(sample)?;
        Ok(IndividualsChart {
            centre,
            sigma,
            mean_moving_range,
            detector: RuleDetector::new(rules),
            previous: None,
            observed: 0,
        })
    }

    pub fn centre(&self) -> f64 {
        self.centre
    }

    /// The estimated process sigma, MR̄ / d2.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    pub fn limits(&self) -> ControlLimits {
        ControlLimits {
            lower: self.centre - 3.0 * self.sigma,
            centre: self.centre,
            upper: self.centre + 3.0 * self.sigma,
        }
    }

    pub fn moving_range_limits(&self) -> ControlLimits {
        ControlLimits {
            lower: 0.0,
            centre: self.mean_moving_range,
            upper: D4_MOVING_RANGE * self.mean_moving_range,
        }
    }

    /// Plots one new value. A non-finite value is refused and changes nothing.
    pub fn observe(&mut self, value: f64) -> Result<ChartPoint, SpcError> {
        check_finite(&[value])?;
        let z = standardise(value, self.centre, self.sigma);
        let mut signals: Vec<Signal> = self
            .detector
            .push(z)?
            .into_iter()
            .map(Signal::Rule)
            .collect();
        let dispersion = self.previous.map(|previous| DispersionPoint {
            statistic: (value - previous).abs(),
            limits: self.moving_range_limits(),
        });
        if dispersion.is_some_and(|d| d.limits.excludes(d.statistic)) {
            signals.push(Signal::DispersionBeyondLimits);
        }
        self.previous = Some(value);
        self.observed += 1;
        Ok(ChartPoint {
            chart: ChartKind::Individuals,
            index: self.observed,
            observed: value,
            statistic: value,
            limits: self.limits(),
            z,
            dispersion,
            signals,
            estimated_mean: None,
        })
    }

    /// Starts phase II afresh (after a corrective action): forgets the run-rule window, the
    /// previous value and the point count; keeps the limits.
    pub fn reset(&mut self) {
        self.detector.reset();
        self.previous = None;
        self.observed = 0;
    }
}

// ---------------------------------------------------------------------------------------------
// X̄-R and X̄-S
// ---------------------------------------------------------------------------------------------

/// Which dispersion statistic an [`XbarChart`] pairs with the subgroup means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dispersion {
    /// The subgroup range: X̄ ± A2·R̄, R in [D3·R̄, D4·R̄], σ̂ = R̄ / d2.
    Range,
    /// The subgroup standard deviation: X̄ ± A3·S̄, S in [B3·S̄, B4·S̄], σ̂ = S̄ / c4.
    StandardDeviation,
}

/// X̄-R or X̄-S chart for subgroups of a fixed size between 2 and 10.
#[derive(Debug, Clone)]
pub struct XbarChart {
    dispersion: Dispersion,
    constants: SubgroupConstants,
    grand_mean: f64,
    /// R̄ or S̄.
    mean_dispersion: f64,
    /// The standard deviation of every phase-I value pooled, for Pp and Ppk.
    overall_sigma: f64,
    detector: RuleDetector,
    observed: u64,
}

fn subgroup_dispersion(dispersion: Dispersion, values: &[f64]) -> f64 {
    match dispersion {
        Dispersion::Range => {
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            max - min
        }
        Dispersion::StandardDeviation => standard_deviation(values),
    }
}

impl XbarChart {
    /// Fits on at least two in-control subgroups, all of the same size `n` (2 to 10).
    pub fn fit<S: AsRef<[f64]>>(
        subgroups: &[S],
        dispersion: Dispersion,
        rules: RuleSet,
    ) -> Result<XbarChart, SpcError> {
        if subgroups.len() < 2 {
            return Err(SpcError::TooFewPoints {
                needed: 2,
                found: subgroups.len(),
            });
        }
        let size = subgroups[0].as_ref().len();
        let constants = subgroup_constants(size)?;
        let mut means = Vec::with_capacity(subgroups.len());
        let mut spreads = Vec::with_capacity(subgroups.len());
        let mut pooled = Vec::with_capacity(subgroups.len() * size);
        for (index, subgroup) in subgroups.iter().enumerate() {
            let values = subgroup.as_ref();
            if values.len() != size {
                return Err(SpcError::SubgroupSizeMismatch {
                    index,
                    expected: size,
                    found: values.len(),
                });
            }
            // The index counts values across subgroups, in the order given.
            if let Some(position) = values.iter().position(|x| !x.is_finite()) {
                return Err(SpcError::NonFinite {
                    index: pooled.len() + position,
                });
            }
            means.push(mean(values));
            spreads.push(subgroup_dispersion(dispersion, values));
            pooled.extend_from_slice(values);
        }
        let grand_mean = mean(&means);
        let mean_dispersion = mean(&spreads);
        let overall_sigma = standard_deviation(&pooled);
        let chart = XbarChart {
            dispersion,
            constants,
            grand_mean,
            mean_dispersion,
            overall_sigma,
            detector: RuleDetector::new(rules),
            observed: 0,
        };
        check_fitted(grand_mean, chart.sigma())?;
        if !overall_sigma.is_finite() {
            return Err(SpcError::Overflow);
        }
        Ok(chart)
    }

    pub fn kind(&self) -> ChartKind {
        match self.dispersion {
            Dispersion::Range => ChartKind::XbarR,
            Dispersion::StandardDeviation => ChartKind::XbarS,
        }
    }

    pub fn subgroup_size(&self) -> usize {
        self.constants.n
    }

    pub fn constants(&self) -> SubgroupConstants {
        self.constants
    }

    /// The estimated process sigma (within subgroups): R̄ / d2 or S̄ / c4.
    pub fn sigma(&self) -> f64 {
        match self.dispersion {
            Dispersion::Range => self.mean_dispersion / self.constants.d2,
            Dispersion::StandardDeviation => self.mean_dispersion / self.constants.c4,
        }
    }

    /// The sigma of a subgroup mean as the limits imply it: a third of the A2·R̄ (or A3·S̄)
    /// half-width, so that z = ±3 lands exactly on the tabulated limits.
    pub fn mean_sigma(&self) -> f64 {
        self.half_width() / 3.0
    }

    fn half_width(&self) -> f64 {
        match self.dispersion {
            Dispersion::Range => self.constants.a2 * self.mean_dispersion,
            Dispersion::StandardDeviation => self.constants.a3 * self.mean_dispersion,
        }
    }

    pub fn mean_limits(&self) -> ControlLimits {
        ControlLimits {
            lower: self.grand_mean - self.half_width(),
            centre: self.grand_mean,
            upper: self.grand_mean + self.half_width(),
        }
    }

    pub fn dispersion_limits(&self) -> ControlLimits {
        let (lower, upper) = match self.dispersion {
            Dispersion::Range => (self.constants.r_lower, self.constants.r_upper),
            Dispersion::StandardDeviation => (self.constants.s_lower, self.constants.s_upper),
        };
        ControlLimits {
            lower: lower * self.mean_dispersion,
            centre: self.mean_dispersion,
            upper: upper * self.mean_dispersion,
        }
    }

    /// Cp, Cpk (σ̂ within subgroups) and Pp, Ppk (σ of all phase-I values) of the fitted sample.
    pub fn capability(&self, spec: SpecLimits) -> Result<Capability, SpcError> {
        Capability::from_estimates(self.grand_mean, self.sigma(), self.overall_sigma, spec)
    }

    /// Plots one new subgroup, which must have the fitted size and only finite values.
    pub fn observe(&mut self, subgroup: &[f64]) -> Result<ChartPoint, SpcError> {
        if subgroup.len() != self.constants.n {
            return Err(SpcError::SubgroupSizeMismatch {
                index: 0,
                expected: self.constants.n,
                found: subgroup.len(),
            });
        }
        check_finite(subgroup)?;
        let subgroup_mean = mean(subgroup);
        let z = standardise(subgroup_mean, self.grand_mean, self.mean_sigma());
        let mut signals: Vec<Signal> = self
            .detector
            .push(z)?
            .into_iter()
            .map(Signal::Rule)
            .collect();
        let dispersion = DispersionPoint {
            statistic: subgroup_dispersion(self.dispersion, subgroup),
            limits: self.dispersion_limits(),
        };
        if dispersion.limits.excludes(dispersion.statistic) {
            signals.push(Signal::DispersionBeyondLimits);
        }
        self.observed += 1;
        Ok(ChartPoint {
            chart: self.kind(),
            index: self.observed,
            observed: subgroup_mean,
            statistic: subgroup_mean,
            limits: self.mean_limits(),
            z,
            dispersion: Some(dispersion),
            signals,
            estimated_mean: None,
        })
    }

    /// Starts phase II afresh; keeps the limits.
    pub fn reset(&mut self) {
        self.detector.reset();
        self.observed = 0;
    }
}

// ---------------------------------------------------------------------------------------------
// EWMA
// ---------------------------------------------------------------------------------------------

/// EWMA parameters: the weight λ of the newest point and the limit width L in sigmas of the
/// EWMA. The default (λ = 0.2, L = 3) gives an in-control average run length near 560 and
/// detects a 1σ shift in about 10 points (Lucas and Saccucci, 1990).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EwmaParams {
    /// λ in (0, 1]; λ = 1 is the individuals chart.
    pub lambda: f64,
    /// L > 0.
    pub width: f64,
}

impl Default for EwmaParams {
    fn default() -> Self {
        EwmaParams {
            lambda: 0.2,
            width: 3.0,
        }
    }
}

impl EwmaParams {
    fn validate(self) -> Result<EwmaParams, SpcError> {
        // Written as negations so NaN fails them.
        if !(self.lambda > 0.0 && self.lambda <= 1.0) {
            return Err(SpcError::InvalidParameter {
                name: "lambda",
                value: self.lambda,
                expected: "0 < lambda <= 1",
            });
        }
        if !(self.width > 0.0 && self.width.is_finite()) {
            return Err(SpcError::InvalidParameter {
                name: "width",
                value: self.width,
                expected: "a finite L > 0",
            });
        }
        Ok(self)
    }
}

fn check_target_and_sigma(target: f64, sigma: f64) -> Result<(), SpcError> {
    if !target.is_finite() {
        return Err(SpcError::InvalidParameter {
            name: "target",
            value: target,
            expected: "a finite number",
        });
    }
    if !(sigma > 0.0 && sigma.is_finite()) {
        return Err(SpcError::InvalidParameter {
            name: "sigma",
            value: sigma,
            expected: "a finite sigma > 0",
        });
    }
    Ok(())
}

/// EWMA chart: zᵢ = λxᵢ + (1 − λ)zᵢ₋₁ from z₀ = target, signalling when zᵢ leaves
/// target ± L·σ·√(λ/(2 − λ)·(1 − (1 − λ)^{2i})).
#[derive(Debug, Clone)]
pub struct EwmaChart {
    target: f64,
    sigma: f64,
    params: EwmaParams,
    ewma: f64,
    observed: u64,
}

impl EwmaChart {
    /// Target and sigma from an in-control sample (mean and MR̄ / d2).
    pub fn fit(sample: &[f64], params: EwmaParams) -> Result<EwmaChart, SpcError> {
        let (centre, sigma, _) = individuals_baseline(sample)?;
        EwmaChart::new(centre, sigma, params)
    }

    /// A chart for a known target and process sigma (e.g. the nominal dimension).
    pub fn new(target: f64, sigma: f64, params: EwmaParams) -> Result<EwmaChart, SpcError> {
        check_target_and_sigma(target, sigma)?;
        let params = params.validate()?;
        Ok(EwmaChart {
            target,
            sigma,
            params,
            ewma: target,
            observed: 0,
        })
    }

    pub fn target(&self) -> f64 {
        self.target
    }

    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// The sigma of the EWMA statistic at point `index` (1-based).
    pub fn statistic_sigma(&self, index: u64) -> f64 {
        let lambda = self.params.lambda;
        let decay = (1.0 - lambda).powf(2.0 * index as f64);
        self.sigma * (lambda / (2.0 - lambda) * (1.0 - decay)).sqrt()
    }

    /// The limits at point `index` (1-based); they widen towards their asymptote.
    pub fn limits_at(&self, index: u64) -> ControlLimits {
        let half_width = self.params.width * self.statistic_sigma(index);
        ControlLimits {
            lower: self.target - half_width,
            centre: self.target,
            upper: self.target + half_width,
        }
    }

    /// Plots one new value. A non-finite value is refused and changes nothing.
    pub fn observe(&mut self, value: f64) -> Result<ChartPoint, SpcError> {
        check_finite(&[value])?;
        let lambda = self.params.lambda;
        self.ewma = lambda * value + (1.0 - lambda) * self.ewma;
        self.observed += 1;
        let limits = self.limits_at(self.observed);
        let signals = if limits.excludes(self.ewma) {
            vec![Signal::EwmaBeyondLimits]
        } else {
            Vec::new()
        };
        Ok(ChartPoint {
            chart: ChartKind::Ewma,
            index: self.observed,
            observed: value,
            statistic: self.ewma,
            limits,
            z: standardise(self.ewma, self.target, self.statistic_sigma(self.observed)),
            dispersion: None,
            signals,
            estimated_mean: None,
        })
    }

    /// Restarts from z₀ = target (after a corrective action).
    pub fn reset(&mut self) {
        self.ewma = self.target;
        self.observed = 0;
    }
}

// ---------------------------------------------------------------------------------------------
// CUSUM
// ---------------------------------------------------------------------------------------------

/// Tabular CUSUM parameters in units of the process sigma: the slack k (half the shift to
/// detect fastest) and the decision interval h. The default (k = 0.5, h = 5) has an in-control
/// average run length of about 465 and detects a 1σ shift in about 10 points (Montgomery,
/// Table 9.3); h = 4 trades false alarms (about 168 in-control) for speed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CusumParams {
    /// k ≥ 0.
    pub slack: f64,
    /// h > 0.
    pub decision_interval: f64,
}

impl Default for CusumParams {
    fn default() -> Self {
        CusumParams {
            slack: 0.5,
            decision_interval: 5.0,
        }
    }
}

impl CusumParams {
    fn validate(self) -> Result<CusumParams, SpcError> {
        if !(self.slack >= 0.0 && self.slack.is_finite()) {
            return Err(SpcError::InvalidParameter {
                name: "slack",
                value: self.slack,
                expected: "a finite k >= 0",
            });
        }
        if !(self.decision_interval > 0.0 && self.decision_interval.is_finite()) {
            return Err(SpcError::InvalidParameter {
                name: "decision_interval",
                value: self.decision_interval,
                expected: "a finite h > 0",
            });
        }
        Ok(self)
    }
}

/// Tabular CUSUM: C⁺ᵢ = max(0, xᵢ − (μ₀ + K) + C⁺ᵢ₋₁), C⁻ᵢ = max(0, (μ₀ − K) − xᵢ + C⁻ᵢ₋₁),
/// K = kσ, H = hσ; signals when either sum exceeds H, then both sums restart from 0.
#[derive(Debug, Clone)]
pub struct CusumChart {
    target: f64,
    sigma: f64,
    params: CusumParams,
    upper_sum: f64,
    lower_sum: f64,
    /// Consecutive points the upper sum has been above 0, for the shifted-mean estimate.
    upper_run: u64,
    lower_run: u64,
    observed: u64,
}

impl CusumChart {
    /// Target and sigma from an in-control sample (mean and MR̄ / d2).
    pub fn fit(sample: &[f64], params: CusumParams) -> Result<CusumChart, SpcError> {
        let (centre, sigma, _) = individuals_baseline(sample)?;
        CusumChart::new(centre, sigma, params)
    }

    /// A chart for a known target and process sigma.
    pub fn new(target: f64, sigma: f64, params: CusumParams) -> Result<CusumChart, SpcError> {
        check_target_and_sigma(target, sigma)?;
        let params = params.validate()?;
        Ok(CusumChart {
            target,
            sigma,
            params,
            upper_sum: 0.0,
            lower_sum: 0.0,
            upper_run: 0,
            lower_run: 0,
            observed: 0,
        })
    }

    pub fn target(&self) -> f64 {
        self.target
    }

    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// The current upper and lower sums (both ≥ 0).
    pub fn sums(&self) -> (f64, f64) {
        (self.upper_sum, self.lower_sum)
    }

    /// Plots one new value. A non-finite value is refused and changes nothing.
    pub fn observe(&mut self, value: f64) -> Result<ChartPoint, SpcError> {
        check_finite(&[value])?;
        let slack = self.params.slack * self.sigma;
        let interval = self.params.decision_interval * self.sigma;
        self.upper_sum = (value - (self.target + slack) + self.upper_sum).max(0.0);
        self.lower_sum = ((self.target - slack) - value + self.lower_sum).max(0.0);
        self.upper_run = if self.upper_sum > 0.0 {
            self.upper_run + 1
        } else {
            0
        };
        self.lower_run = if self.lower_sum > 0.0 {
            self.lower_run + 1
        } else {
            0
        };
        self.observed += 1;

        let mut signals = Vec::new();
        let mut estimated_mean = None;
        if self.upper_sum > interval {
            signals.push(Signal::CusumUpper);
            estimated_mean =
                Some(self.target + slack + self.upper_sum / self.upper_run.max(1) as f64);
        }
        if self.lower_sum > interval {
            signals.push(Signal::CusumLower);
            estimated_mean =
                Some(self.target - slack - self.lower_sum / self.lower_run.max(1) as f64);
        }
        let statistic = if self.upper_sum >= self.lower_sum {
            self.upper_sum
        } else {
            -self.lower_sum
        };
        let point = ChartPoint {
            chart: ChartKind::Cusum,
            index: self.observed,
            observed: value,
            statistic,
            limits: ControlLimits {
                lower: -interval,
                centre: 0.0,
                upper: interval,
            },
            z: statistic / self.sigma,
            dispersion: None,
            signals,
            estimated_mean,
        };
        if !point.in_control() {
            // Restart so that the next alarm needs fresh evidence, not the old excess.
            self.restart_sums();
        }
        Ok(point)
    }

    fn restart_sums(&mut self) {
        self.upper_sum = 0.0;
        self.lower_sum = 0.0;
        self.upper_run = 0;
        self.lower_run = 0;
    }

    /// Restarts both sums and the point count.
    pub fn reset(&mut self) {
        self.restart_sums();
        self.observed = 0;
    }
}

// ---------------------------------------------------------------------------------------------
// Capability
// ---------------------------------------------------------------------------------------------

/// Two-sided specification limits, lower strictly below upper.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpecLimits {
    lower: f64,
    upper: f64,
}

impl SpecLimits {
    pub fn new(lower: f64, upper: f64) -> Result<SpecLimits, SpcError> {
        if !lower.is_finite() {
            return Err(SpcError::NonFinite { index: 0 });
        }
        if !upper.is_finite() {
            return Err(SpcError::NonFinite { index: 1 });
        }
        if lower >= upper {
            return Err(SpcError::SpecLimitsInverted { lower, upper });
        }
        Ok(SpecLimits { lower, upper })
    }

    pub fn lower(&self) -> f64 {
        self.lower
    }

    pub fn upper(&self) -> f64 {
        self.upper
    }
}

/// Process capability: Cp and Cpk use the short-term (within) sigma, Pp and Ppk the overall
/// sample standard deviation. Cp = (USL − LSL) / 6σ; Cpk = min(USL − μ, μ − LSL) / 3σ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    pub mean: f64,
    pub sigma_within: f64,
    pub sigma_overall: f64,
    pub cp: f64,
    pub cpk: f64,
    pub pp: f64,
    pub ppk: f64,
}

impl Capability {
    /// From a phase-I sample of individual values: σ within = MR̄ / d2, σ overall = the sample
    /// standard deviation (n − 1).
    pub fn from_individuals(sample: &[f64], spec: SpecLimits) -> Result<Capability, SpcError> {
        let (centre, sigma_within, _) = individuals_baseline(sample)?;
        let sigma_overall = standard_deviation(sample);
        Capability::from_estimates(centre, sigma_within, sigma_overall, spec)
    }

    /// From estimates already in hand (e.g. a fitted chart's).
    pub fn from_estimates(
        mean: f64,
        sigma_within: f64,
        sigma_overall: f64,
        spec: SpecLimits,
    ) -> Result<Capability, SpcError> {
        if !mean.is_finite() || !sigma_within.is_finite() || !sigma_overall.is_finite() {
            return Err(SpcError::Overflow);
        }
        if sigma_within <= 0.0 || sigma_overall <= 0.0 {
            return Err(SpcError::ZeroSigma);
        }
        let width = spec.upper - spec.lower;
        let nearest_side = (spec.upper - mean).min(mean - spec.lower);
        let capability = Capability {
            mean,
            sigma_within,
            sigma_overall,
            cp: width / (6.0 * sigma_within),
            cpk: nearest_side / (3.0 * sigma_within),
            pp: width / (6.0 * sigma_overall),
            ppk: nearest_side / (3.0 * sigma_overall),
        };
        // A tiny sigma against a wide spec can overflow the ratios.
        if [capability.cp, capability.cpk, capability.pp, capability.ppk]
            .iter()
            .all(|index| index.is_finite())
        {
            Ok(capability)
        } else {
            Err(SpcError::Overflow)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Adaptive inspection
// ---------------------------------------------------------------------------------------------

/// A skip-lot style inspection rule (after Dodge's CSP-1 continuous sampling plan): inspect
/// every unit after any signal; after each run of `clean_points_to_step_down` in-control points
/// inspect `step_factor` times fewer, down to 1 unit in `max_one_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionPolicy {
    clean_points_to_step_down: u32,
    step_factor: u32,
    max_one_in: u32,
}

impl Default for InspectionPolicy {
    /// 25 clean points per step (the phase-I size a textbook asks for), halving each step, down
    /// to 1 unit in 8.
    fn default() -> Self {
        InspectionPolicy {
            clean_points_to_step_down: 25,
            step_factor: 2,
            max_one_in: 8,
        }
    }
}

/// Where inspection stands: inspect 1 unit in `one_in`, after `clean_run` in-control points
/// since the last step or signal. The default is 100 %: no evidence yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionState {
    pub one_in: u32,
    pub clean_run: u32,
}

impl Default for InspectionState {
    fn default() -> Self {
        InspectionState {
            one_in: 1,
            clean_run: 0,
        }
    }
}

impl InspectionState {
    /// The fraction of units to inspect, in (0, 1].
    pub fn fraction(&self) -> f64 {
        1.0 / f64::from(self.one_in.max(1))
    }

    /// Whether unit `unit_index` (0-based, in production order) is due: systematic 1 in k.
    pub fn inspect_unit(&self, unit_index: u64) -> bool {
        unit_index.is_multiple_of(u64::from(self.one_in.max(1)))
    }
}

impl InspectionPolicy {
    /// `clean_points_to_step_down` ≥ 1, `step_factor` ≥ 2, `max_one_in` ≥ 1.
    pub fn new(
        clean_points_to_step_down: u32,
        step_factor: u32,
        max_one_in: u32,
    ) -> Result<InspectionPolicy, SpcError> {
        if clean_points_to_step_down < 1 {
            return Err(SpcError::InvalidParameter {
                name: "clean_points_to_step_down",
                value: f64::from(clean_points_to_step_down),
                expected: "at least 1",
            });
        }
        if step_factor < 2 {
            return Err(SpcError::InvalidParameter {
                name: "step_factor",
                value: f64::from(step_factor),
                expected: "at least 2",
            });
        }
        if max_one_in < 1 {
            return Err(SpcError::InvalidParameter {
                name: "max_one_in",
                value: f64::from(max_one_in),
                expected: "at least 1",
            });
        }
        Ok(InspectionPolicy {
            clean_points_to_step_down,
            step_factor,
            max_one_in,
        })
    }

    /// The state after one more charted point: back to 100 % if it signalled, else one step
    /// down once enough clean points have accumulated.
    pub fn next(&self, state: InspectionState, signalled: bool) -> InspectionState {
        if signalled {
            return InspectionState::default();
        }
        let one_in = state.one_in.clamp(1, self.max_one_in);
        let clean_run = state.clean_run.saturating_add(1);
        if clean_run >= self.clean_points_to_step_down && one_in < self.max_one_in {
            InspectionState {
                one_in: one_in.saturating_mul(self.step_factor).min(self.max_one_in),
                clean_run: 0,
            }
        } else {
            InspectionState { one_in, clean_run }
        }
    }

    /// The state after a chart point.
    pub fn after_point(&self, state: InspectionState, point: &ChartPoint) -> InspectionState {
        self.next(state, !point.in_control())
    }
}

// ---------------------------------------------------------------------------------------------
// Alarms as decisions
// ---------------------------------------------------------------------------------------------

/// What the operator should do about an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecommendedAction {
    /// The point itself is out of control: hold the product since the last good point and
    /// inspect it.
    HoldAndInspect,
    /// A pattern among in-limit points: look for the cause; no need to stop.
    Investigate,
}

impl RecommendedAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RecommendedAction::HoldAndInspect => "hold_and_inspect",
            RecommendedAction::Investigate => "investigate",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            RecommendedAction::HoldAndInspect => "hold and inspect",
            RecommendedAction::Investigate => "investigate the cause; production may continue",
        }
    }
}

/// The model name a decision record carries.
pub const DECISION_MODEL: &str = "spc-nelson";
/// The model version a decision record carries; bump when rules or conventions change.
pub const DECISION_MODEL_VERSION: &str = "1";
/// The skill name a decision record carries.
pub const DECISION_SKILL: &str = "spc";

/// An out-of-control point on one quality characteristic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpcAlarm {
    /// What was measured, e.g. `"TURN-01 bore diameter"`.
    pub characteristic: String,
    pub point: ChartPoint,
    pub action: RecommendedAction,
}

impl SpcAlarm {
    /// The alarm for a point, or `None` when the point is in control.
    pub fn from_point(characteristic: impl Into<String>, point: &ChartPoint) -> Option<SpcAlarm> {
        if point.in_control() {
            return None;
        }
        let action = if point.signals.iter().any(|signal| signal.demands_hold()) {
            RecommendedAction::HoldAndInspect
        } else {
            RecommendedAction::Investigate
        };
        Some(SpcAlarm {
            characteristic: characteristic.into(),
            point: point.clone(),
            action,
        })
    }

    /// The decision record: advice (`executed_by: None`) until someone acts on it. Confidence
    /// is `None`: a run rule's false-alarm rate is a property of the rule, not of this point.
    pub fn to_decision(
        &self,
        id: impl Into<String>,
        at: Timestamp,
        inputs_ref: impl Into<String>,
    ) -> Decision {
        let point = &self.point;
        let signals: Vec<serde_json::Value> = point
            .signals
            .iter()
            .map(|signal| {
                serde_json::json!({
                    "code": signal.as_str(),
                    "description": signal.description(),
                })
            })
            .collect();
        let output = serde_json::json!({
            "characteristic": self.characteristic,
            "chart": point.chart.as_str(),
            "point": {
                "index": point.index,
                "observed": point.observed,
                "statistic": point.statistic,
                "z": point.z,
                "lower_limit": point.limits.lower,
                "centre": point.limits.centre,
                "upper_limit": point.limits.upper,
            },
            "rules_fired": signals,
            "estimated_mean": point.estimated_mean,
            "action": self.action.as_str(),
            "action_text": self.action.description(),
        });
        Decision {
            id: id.into(),
            at,
            skill: DECISION_SKILL.to_owned(),
            stage: LifecycleStage::Testing,
            inputs_ref: inputs_ref.into(),
            model: DECISION_MODEL.to_owned(),
            model_version: DECISION_MODEL_VERSION.to_owned(),
            output,
            confidence: None,
            executed_by: ExecutedBy::None,
            outcome: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    macro_rules! assert_close {
        ($actual:expr, $expected:expr, $tolerance:expr) => {{
            let (actual, expected) = ($actual, $expected);
            assert!(
                close(actual, expected, $tolerance),
                "{} = {actual}, expected {expected} ± {}",
                stringify!($actual),
                $tolerance
            );
        }};
    }

    // ----- constants --------------------------------------------------------------------------

    #[test]
    fn tabulated_constants_agree_with_their_closed_forms() {
        for constants in SUBGROUP_CONSTANTS {
            let n = constants.n as f64;
            let c4 =
                (2.0 / (n - 1.0)).sqrt() * libm::tgamma(n / 2.0) / libm::tgamma((n - 1.0) / 2.0);
            assert_close!(constants.c4, c4, 1e-4);
            assert_close!(constants.a2, 3.0 / (constants.d2 * n.sqrt()), 2e-3);
            assert_close!(constants.a3, 3.0 / (c4 * n.sqrt()), 2e-3);
            let spread = 3.0 * (1.0 - c4 * c4).sqrt() / c4;
            assert_close!(constants.s_lower, (1.0 - spread).max(0.0), 2e-3);
            assert_close!(constants.s_upper, 1.0 + spread, 2e-3);
            // D3 and D4 sit symmetrically about 1 whenever D3 is not clipped at 0.
            if constants.r_lower > 0.0 {
                assert_close!(constants.r_lower + constants.r_upper, 2.0, 1e-3);
            }
        }
        assert_eq!(subgroup_constants(5).unwrap().a2, 0.577);
        assert_eq!(subgroup_constants(2).unwrap().d2, D2_MOVING_RANGE);
        assert_eq!(subgroup_constants(2).unwrap().r_upper, D4_MOVING_RANGE);
    }

    #[test]
    fn subgroup_sizes_outside_two_to_ten_are_refused() {
        assert_eq!(
            subgroup_constants(1),
            Err(SpcError::UnsupportedSubgroupSize(1))
        );
        assert_eq!(
            subgroup_constants(11),
            Err(SpcError::UnsupportedSubgroupSize(11))
        );
    }

    // ----- individuals ------------------------------------------------------------------------

    // Mean 11.6; moving ranges 2, 1, 2, 1 so MR̄ = 1.5 and σ = 1.5 / 1.128.
    const SMALL_SAMPLE: [f64; 5] = [10.0, 12.0, 11.0, 13.0, 12.0];

    #[test]
    fn individuals_limits_match_a_hand_computation() {
        let chart = IndividualsChart::fit(&SMALL_SAMPLE, RuleSet::nelson()).unwrap();
        assert_close!(chart.centre(), 11.6, 1e-12);
        assert_close!(chart.sigma(), 1.329_787_234, 1e-9);
        let limits = chart.limits();
        assert_close!(limits.upper, 15.589_361_70, 1e-7);
        assert_close!(limits.lower, 7.610_638_30, 1e-7);
        let ranges = chart.moving_range_limits();
        assert_close!(ranges.centre, 1.5, 1e-12);
        assert_close!(ranges.upper, 4.9005, 1e-9);
        assert_eq!(ranges.lower, 0.0);
    }

    #[test]
    fn individuals_chart_flags_a_point_beyond_the_limits_and_its_moving_range() {
        let mut chart = IndividualsChart::fit(&SMALL_SAMPLE, RuleSet::nelson()).unwrap();
        let first = chart.observe(11.6).unwrap();
        assert!(first.in_control());
        assert_eq!(first.index, 1);
        assert_eq!(
            first.dispersion, None,
            "no moving range for the first point"
        );
        // 16.6 is 5 above the centre (UCL 15.59) and 5 above the previous point (MR UCL 4.90).
        let second = chart.observe(16.6).unwrap();
        assert_eq!(second.index, 2);
        assert_close!(second.z, 5.0 / 1.329_787_234, 1e-8);
        assert_eq!(
            second.signals,
            vec![Signal::Rule(Rule::Nelson1), Signal::DispersionBeyondLimits]
        );
        assert_close!(second.dispersion.unwrap().statistic, 5.0, 1e-12);
        // Inside both limits (15.5 is below the UCL, the range 1.1 is small), but with 16.6 it is
        // the second of three beyond 2 sigma on the same side.
        let third = chart.observe(15.5).unwrap();
        assert_eq!(third.signals, vec![Signal::Rule(Rule::Nelson5)]);
        let fourth = chart.observe(11.0).unwrap();
        assert!(fourth.in_control(), "{:?}", fourth.signals);
    }

    #[test]
    fn a_refused_observation_changes_nothing() {
        let mut chart = IndividualsChart::fit(&SMALL_SAMPLE, RuleSet::nelson()).unwrap();
        assert_eq!(
            chart.observe(f64::NAN),
            Err(SpcError::NonFinite { index: 0 })
        );
        assert_eq!(
            chart.observe(f64::INFINITY),
            Err(SpcError::NonFinite { index: 0 })
        );
        let point = chart.observe(12.0).unwrap();
        assert_eq!(point.index, 1);
        assert_eq!(point.dispersion, None);
    }

    #[test]
    fn reset_restarts_phase_two_but_keeps_the_limits() {
        let mut chart = IndividualsChart::fit(&SMALL_SAMPLE, RuleSet::nelson()).unwrap();
        for _ in 0..8 {
            chart.observe(12.0).unwrap();
        }
        assert_eq!(
            chart.observe(12.0).unwrap().signals,
            vec![Signal::Rule(Rule::Nelson2)]
        );
        chart.reset();
        let point = chart.observe(12.0).unwrap();
        assert!(point.in_control());
        assert_eq!(point.index, 1);
        assert_close!(chart.limits().upper, 15.589_361_70, 1e-7);
    }

    // ----- X̄-R and X̄-S -----------------------------------------------------------------------

    // Means 11, 11, 10, 12, 10 (X̿ = 10.8); ranges 4, 2, 4, 2, 2 (R̄ = 2.8);
    // standard deviations √2.5, √0.5, √2.5, √0.5, √0.5 (S̄ = 1.056 719 6).
    const SUBGROUPS: [[f64; 5]; 5] = [
        [10.0, 12.0, 11.0, 9.0, 13.0],
        [11.0, 11.0, 12.0, 10.0, 11.0],
        [9.0, 10.0, 11.0, 12.0, 8.0],
        [12.0, 13.0, 11.0, 12.0, 12.0],
        [10.0, 11.0, 9.0, 10.0, 10.0],
    ];

    #[test]
    fn xbar_r_limits_match_a_hand_computation_for_subgroups_of_five() {
        let chart = XbarChart::fit(&SUBGROUPS, Dispersion::Range, RuleSet::nelson()).unwrap();
        assert_eq!(chart.kind(), ChartKind::XbarR);
        assert_eq!(chart.subgroup_size(), 5);
        let means = chart.mean_limits();
        // X̿ ± A2·R̄ = 10.8 ± 0.577 · 2.8
        assert_close!(means.centre, 10.8, 1e-12);
        assert_close!(means.upper, 12.4156, 1e-12);
        assert_close!(means.lower, 9.1844, 1e-12);
        // D3·R̄ = 0, D4·R̄ = 2.114 · 2.8
        let ranges = chart.dispersion_limits();
        assert_close!(ranges.centre, 2.8, 1e-12);
        assert_close!(ranges.upper, 5.9192, 1e-12);
        assert_eq!(ranges.lower, 0.0);
        // σ̂ = R̄ / d2 = 2.8 / 2.326
        assert_close!(chart.sigma(), 1.203_783_319, 1e-9);
    }

    #[test]
    fn xbar_s_limits_match_a_hand_computation_for_subgroups_of_five() {
        let chart =
            XbarChart::fit(&SUBGROUPS, Dispersion::StandardDeviation, RuleSet::nelson()).unwrap();
        assert_eq!(chart.kind(), ChartKind::XbarS);
        let s_bar = (2.0 * 2.5_f64.sqrt() + 3.0 * 0.5_f64.sqrt()) / 5.0;
        assert_close!(s_bar, 1.056_719_6, 1e-7);
        let means = chart.mean_limits();
        assert_close!(means.upper, 10.8 + 1.427 * s_bar, 1e-12);
        assert_close!(means.upper, 12.307_939, 1e-6);
        let spreads = chart.dispersion_limits();
        assert_close!(spreads.upper, 2.089 * s_bar, 1e-12);
        assert_eq!(spreads.lower, 0.0);
        assert_close!(chart.sigma(), s_bar / 0.94, 1e-12);
    }

    #[test]
    fn xbar_chart_flags_a_shifted_mean_and_a_widened_range() {
        let mut chart = XbarChart::fit(&SUBGROUPS, Dispersion::Range, RuleSet::nelson()).unwrap();
        let shifted = chart.observe(&[12.5, 12.5, 12.5, 12.5, 12.5]).unwrap();
        assert_eq!(shifted.signals, vec![Signal::Rule(Rule::Nelson1)]);
        // z = 3 exactly at the UCL would be inside; 12.5 is 1.7 above X̿, A2·R̄ = 1.6156.
        assert_close!(shifted.z, 1.7 / (1.6156 / 3.0), 1e-9);
        let widened = chart.observe(&[8.0, 14.0, 11.0, 11.0, 10.0]).unwrap();
        assert_eq!(widened.signals, vec![Signal::DispersionBeyondLimits]);
        assert_close!(widened.dispersion.unwrap().statistic, 6.0, 1e-12);
        let calm = chart.observe(&[10.0, 11.0, 12.0, 11.0, 10.0]).unwrap();
        assert!(calm.in_control());
        assert_eq!(calm.index, 3);
    }

    #[test]
    fn xbar_chart_refuses_bad_subgroups() {
        assert_eq!(
            XbarChart::fit(&SUBGROUPS[..1], Dispersion::Range, RuleSet::nelson()).unwrap_err(),
            SpcError::TooFewPoints {
                needed: 2,
                found: 1
            }
        );
        let ragged: Vec<Vec<f64>> = vec![vec![1.0, 2.0, 3.0], vec![1.0, 2.0]];
        assert_eq!(
            XbarChart::fit(&ragged, Dispersion::Range, RuleSet::nelson()).unwrap_err(),
            SpcError::SubgroupSizeMismatch {
                index: 1,
                expected: 3,
                found: 2
            }
        );
        let singletons: Vec<Vec<f64>> = vec![vec![1.0], vec![2.0]];
        assert_eq!(
            XbarChart::fit(&singletons, Dispersion::Range, RuleSet::nelson()).unwrap_err(),
            SpcError::UnsupportedSubgroupSize(1)
        );
        let with_nan: Vec<Vec<f64>> = vec![vec![1.0, 2.0], vec![3.0, f64::NAN]];
        assert_eq!(
            XbarChart::fit(&with_nan, Dispersion::Range, RuleSet::nelson()).unwrap_err(),
            SpcError::NonFinite { index: 3 }
        );
        let constant: Vec<Vec<f64>> = vec![vec![4.0, 4.0], vec![5.0, 5.0]];
        assert_eq!(
            XbarChart::fit(&constant, Dispersion::StandardDeviation, RuleSet::nelson())
                .unwrap_err(),
            SpcError::ZeroSigma
        );
        let mut chart = XbarChart::fit(&SUBGROUPS, Dispersion::Range, RuleSet::nelson()).unwrap();
        assert_eq!(
            chart.observe(&[1.0, 2.0]).unwrap_err(),
            SpcError::SubgroupSizeMismatch {
                index: 0,
                expected: 5,
                found: 2
            }
        );
        assert_eq!(
            chart
                .observe(&[1.0, 2.0, f64::NEG_INFINITY, 4.0, 5.0])
                .unwrap_err(),
            SpcError::NonFinite { index: 2 }
        );
    }

    // ----- run rules --------------------------------------------------------------------------

    /// Feeds `points` to a detector running only `rule`; whether it fires at the last point.
    fn fires_at_last(rule: Rule, points: &[f64]) -> bool {
        let mut detector = RuleDetector::new(RuleSet::only(&[rule]));
        let mut fired = Vec::new();
        for z in points {
            fired = detector.push(*z).unwrap();
        }
        assert!(fired.is_empty() || fired == vec![rule]);
        !fired.is_empty()
    }

    fn repeated(z: f64, count: usize) -> Vec<f64> {
        vec![z; count]
    }

    fn alternating(count: usize, magnitude: f64) -> Vec<f64> {
        (0..count)
            .map(|i| if i % 2 == 0 { magnitude } else { -magnitude })
            .collect()
    }

    #[test]
    fn rule_one_fires_strictly_beyond_three_sigma() {
        for rule in [Rule::Nelson1, Rule::WesternElectric1] {
            assert!(fires_at_last(rule, &[3.01]));
            assert!(fires_at_last(rule, &[-3.5]));
            assert!(!fires_at_last(rule, &[3.0]), "on the limit is inside");
            assert!(!fires_at_last(rule, &[4.0, 0.0]), "fires at the point only");
        }
    }

    #[test]
    fn nelson_two_needs_nine_on_one_side() {
        assert!(fires_at_last(Rule::Nelson2, &repeated(0.5, 9)));
        assert!(fires_at_last(Rule::Nelson2, &repeated(-0.1, 9)));
        assert!(!fires_at_last(Rule::Nelson2, &repeated(0.5, 8)));
        let mut broken = repeated(0.5, 9);
        broken[4] = 0.0;
        assert!(
            !fires_at_last(Rule::Nelson2, &broken),
            "on the centre breaks"
        );
    }

    #[test]
    fn western_electric_four_needs_eight_on_one_side() {
        assert!(fires_at_last(Rule::WesternElectric4, &repeated(0.5, 8)));
        assert!(!fires_at_last(Rule::WesternElectric4, &repeated(0.5, 7)));
        let mut crossing = repeated(0.5, 8);
        crossing[0] = -0.5;
        assert!(!fires_at_last(Rule::WesternElectric4, &crossing));
    }

    #[test]
    fn nelson_three_needs_six_points_steadily_moving() {
        let rising = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5];
        assert!(fires_at_last(Rule::Nelson3, &rising));
        let falling: Vec<f64> = rising.iter().map(|z| -z).collect();
        assert!(fires_at_last(Rule::Nelson3, &falling));
        assert!(!fires_at_last(Rule::Nelson3, &rising[1..]), "five points");
        let with_tie = [-1.0, -0.5, 0.0, 0.0, 1.0, 1.5];
        assert!(!fires_at_last(Rule::Nelson3, &with_tie), "a tie breaks");
    }

    #[test]
    fn nelson_four_needs_fourteen_alternating() {
        assert!(fires_at_last(Rule::Nelson4, &alternating(14, 0.5)));
        assert!(!fires_at_last(Rule::Nelson4, &alternating(13, 0.5)));
        let mut stalled = alternating(14, 0.5);
        stalled[7] = stalled[6];
        assert!(!fires_at_last(Rule::Nelson4, &stalled));
    }

    #[test]
    fn two_of_three_beyond_two_sigma_on_one_side() {
        for rule in [Rule::Nelson5, Rule::WesternElectric2] {
            assert!(fires_at_last(rule, &[2.5, 0.0, 2.5]));
            assert!(fires_at_last(rule, &[-2.1, 0.0, -2.1]));
            assert!(!fires_at_last(rule, &[2.5, 0.0, -2.5]), "opposite sides");
            assert!(!fires_at_last(rule, &[2.5, 0.0, 0.0, 2.5]), "one of three");
            assert!(
                !fires_at_last(rule, &[2.0, 0.0, 2.0]),
                "on 2 sigma is inside"
            );
            assert!(
                !fires_at_last(rule, &[0.0, 2.5, 2.5, 0.0]),
                "the newest point must be one of the two"
            );
        }
    }

    #[test]
    fn four_of_five_beyond_one_sigma_on_one_side() {
        for rule in [Rule::Nelson6, Rule::WesternElectric3] {
            assert!(fires_at_last(rule, &[1.5, 1.5, 0.0, 1.5, 1.5]));
            assert!(fires_at_last(rule, &[0.0, -1.1, -1.1, -1.1, -1.1]));
            assert!(
                !fires_at_last(rule, &[1.5, 0.0, 0.0, 1.5, 1.5]),
                "three of five"
            );
            assert!(
                !fires_at_last(rule, &[1.5, -1.5, 1.5, -1.5, 1.5]),
                "three above, two below"
            );
        }
    }

    #[test]
    fn nelson_seven_needs_fifteen_hugging_the_centre() {
        assert!(fires_at_last(Rule::Nelson7, &alternating(15, 0.5)));
        assert!(!fires_at_last(Rule::Nelson7, &alternating(14, 0.5)));
        let mut touching = alternating(15, 0.5);
        touching[3] = 1.0;
        assert!(
            !fires_at_last(Rule::Nelson7, &touching),
            "1 sigma is not within"
        );
    }

    #[test]
    fn nelson_eight_needs_eight_beyond_one_sigma_on_both_sides() {
        assert!(fires_at_last(Rule::Nelson8, &alternating(8, 1.5)));
        assert!(!fires_at_last(Rule::Nelson8, &alternating(7, 1.5)));
        assert!(
            !fires_at_last(Rule::Nelson8, &repeated(1.5, 8)),
            "one side is rule 6's business"
        );
        let mut one_inside = alternating(8, 1.5);
        one_inside[2] = 0.9;
        assert!(!fires_at_last(Rule::Nelson8, &one_inside));
    }

    #[test]
    fn every_rule_that_fires_is_reported_in_a_fixed_order() {
        let mut detector = RuleDetector::new(RuleSet::all());
        let mut fired = Vec::new();
        for _ in 0..9 {
            fired = detector.push(2.5).unwrap();
        }
        assert_eq!(
            fired,
            vec![
                Rule::Nelson2,
                Rule::Nelson5,
                Rule::Nelson6,
                Rule::WesternElectric2,
                Rule::WesternElectric3,
                Rule::WesternElectric4,
            ]
        );
    }

    #[test]
    fn the_detector_keeps_only_the_last_fifteen_points_and_refuses_nan() {
        let mut detector = RuleDetector::new(RuleSet::nelson());
        for i in 0..1000 {
            detector.push(f64::from(i % 3) - 1.0).unwrap();
        }
        assert_eq!(detector.len, RULE_WINDOW);
        assert_eq!(detector.recent(0), Some(f64::from(999 % 3) - 1.0));
        assert_eq!(detector.recent(RULE_WINDOW), None);
        assert_eq!(
            detector.push(f64::NAN),
            Err(SpcError::NonFinite { index: 0 })
        );
        assert_eq!(detector.recent(0), Some(f64::from(999 % 3) - 1.0));
        assert_eq!(
            detector.push(f64::INFINITY).unwrap(),
            vec![Rule::Nelson1],
            "infinity is beyond every limit"
        );
    }

    #[test]
    fn rule_names_are_stable_and_match_serde() {
        let names: Vec<&str> = Rule::ALL.iter().map(|rule| rule.as_str()).collect();
        assert_eq!(names[2], "nelson_3");
        assert_eq!(names[11], "western_electric_4");
        for rule in Rule::ALL {
            assert_eq!(
                serde_json::to_value(rule).unwrap(),
                serde_json::json!(rule.as_str())
            );
            assert!(!rule.description().is_empty());
        }
        assert_eq!(Rule::WesternElectric4.number(), 4);
        assert_eq!(Rule::Nelson8.number(), 8);
        assert_eq!(Rule::WesternElectric2.family(), RuleFamily::WesternElectric);
        assert_eq!(RuleSet::nelson().rules().count(), 8);
        assert_eq!(RuleSet::western_electric().rules().count(), 4);
        assert!(!RuleSet::nelson().contains(Rule::WesternElectric1));
    }

    // ----- EWMA and CUSUM ---------------------------------------------------------------------

    #[test]
    fn ewma_limits_widen_from_the_first_point_to_the_asymptote() {
        let chart = EwmaChart::new(0.0, 1.0, EwmaParams::default()).unwrap();
        // λ = 0.2: λ/(2 − λ) · (1 − 0.8²) = 0.04, so the first half-width is 3 · 0.2.
        assert_close!(chart.limits_at(1).upper, 0.6, 1e-12);
        assert_close!(chart.limits_at(1).lower, -0.6, 1e-12);
        // Asymptote: 3 · √(0.2 / 1.8) = 1.
        assert_close!(chart.limits_at(10_000).upper, 1.0, 1e-12);
        assert!(chart.limits_at(2).upper > chart.limits_at(1).upper);
    }

    #[test]
    fn ewma_signals_when_the_average_leaves_its_limits() {
        let mut chart = EwmaChart::new(0.0, 1.0, EwmaParams::default()).unwrap();
        let inside = chart.observe(2.9).unwrap();
        assert_close!(inside.statistic, 0.58, 1e-12);
        assert!(inside.in_control());
        chart.reset();
        let outside = chart.observe(3.1).unwrap();
        assert_close!(outside.statistic, 0.62, 1e-12);
        assert_eq!(outside.signals, vec![Signal::EwmaBeyondLimits]);
        assert_close!(outside.z, 0.62 / 0.2, 1e-12);
    }

    #[test]
    fn cusum_accumulates_signals_estimates_the_new_mean_and_restarts() {
        let mut chart = CusumChart::new(10.0, 1.0, CusumParams::default()).unwrap();
        // Each 12.5 adds 12.5 − 10.5 = 2 to the upper sum: 2, 4, then 6 > h = 5.
        assert_close!(chart.observe(12.5).unwrap().statistic, 2.0, 1e-12);
        assert!(chart.observe(12.5).unwrap().in_control());
        let alarm = chart.observe(12.5).unwrap();
        assert_eq!(alarm.signals, vec![Signal::CusumUpper]);
        assert_close!(alarm.statistic, 6.0, 1e-12);
        // μ̂ = μ₀ + K + C⁺ / N⁺ = 10 + 0.5 + 6 / 3.
        assert_close!(alarm.estimated_mean.unwrap(), 12.5, 1e-12);
        assert_eq!(chart.sums(), (0.0, 0.0), "restarted after the signal");
        let after = chart.observe(10.0).unwrap();
        assert_eq!(after.statistic, 0.0);

        // Downward, landing exactly on h: 2.5 + 2.5 = 5 is not beyond it.
        let mut chart = CusumChart::new(10.0, 1.0, CusumParams::default()).unwrap();
        let first = chart.observe(7.0).unwrap();
        assert_close!(first.statistic, -2.5, 1e-12);
        let on_h = chart.observe(7.0).unwrap();
        assert!(on_h.in_control());
        let beyond = chart.observe(9.4).unwrap();
        assert_eq!(beyond.signals, vec![Signal::CusumLower]);
        assert_close!(beyond.estimated_mean.unwrap(), 9.5 - 5.1 / 3.0, 1e-12);
    }

    /// SplitMix64 with Box–Muller: a fixed-seed normal stream without a dependency.
    struct Normals {
        state: u64,
    }

    impl Normals {
        fn uniform(&mut self) -> f64 {
            self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = self.state;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 31;
            // 53 random bits, shifted off zero so the logarithm is finite.
            ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn next(&mut self) -> f64 {
            let radius = (-2.0 * self.uniform().ln()).sqrt();
            radius * (std::f64::consts::TAU * self.uniform()).cos()
        }
    }

    #[test]
    fn ewma_and_cusum_catch_a_one_sigma_shift_sooner_than_the_individuals_chart() {
        let mut normals = Normals { state: 20_240_917 };
        let phase_one: Vec<f64> = (0..500).map(|_| normals.next()).collect();
        let individuals =
            IndividualsChart::fit(&phase_one, RuleSet::only(&[Rule::Nelson1])).unwrap();
        let ewma = EwmaChart::fit(&phase_one, EwmaParams::default()).unwrap();
        let cusum = CusumChart::fit(&phase_one, CusumParams::default()).unwrap();
        let shift = individuals.sigma();

        const REPLICATIONS: usize = 300;
        const HORIZON: u64 = 2000;
        let mut run_lengths = [0u64; 3];
        for _ in 0..REPLICATIONS {
            let (mut i_chart, mut e_chart, mut c_chart) =
                (individuals.clone(), ewma.clone(), cusum.clone());
            let mut first = [None::<u64>; 3];
            for index in 1..=HORIZON {
                // The same shifted value feeds all three charts (common random numbers).
                let value = individuals.centre() + shift + normals.next();
                let signalled = [
                    !i_chart.observe(value).unwrap().in_control(),
                    !e_chart.observe(value).unwrap().in_control(),
                    !c_chart.observe(value).unwrap().in_control(),
                ];
                for (slot, fired) in first.iter_mut().zip(signalled) {
                    if fired && slot.is_none() {
                        *slot = Some(index);
                    }
                }
                if first.iter().all(Option::is_some) {
                    break;
                }
            }
            for (total, run) in run_lengths.iter_mut().zip(first) {
                *total += run.unwrap_or(HORIZON);
            }
        }
        let [i_arl, ewma_arl, cusum_arl] = run_lengths.map(|t| t as f64 / REPLICATIONS as f64);
        // Theory with known parameters: about 44 points for the individuals chart, about 10 for
        // EWMA (λ 0.2, L 3) and CUSUM (k 0.5, h 5). Limits estimated from 500 points move these
        // a little (this seed gives about 33, 10 and 10).
        assert!((25.0..60.0).contains(&i_arl), "individuals ARL {i_arl}");
        assert!((7.0..14.0).contains(&ewma_arl), "EWMA ARL {ewma_arl}");
        assert!((7.0..14.0).contains(&cusum_arl), "CUSUM ARL {cusum_arl}");
        assert!(ewma_arl * 2.0 < i_arl && cusum_arl * 2.0 < i_arl);
    }

    #[test]
    fn ewma_and_cusum_parameters_are_checked() {
        let bad_lambda =
            |lambda: f64| EwmaChart::new(0.0, 1.0, EwmaParams { lambda, width: 3.0 }).unwrap_err();
        for lambda in [0.0, 1.5, f64::NAN] {
            assert!(matches!(
                bad_lambda(lambda),
                SpcError::InvalidParameter { name: "lambda", .. }
            ));
        }
        let zero_width = EwmaParams {
            lambda: 0.2,
            width: 0.0,
        };
        assert!(matches!(
            EwmaChart::new(0.0, 1.0, zero_width).unwrap_err(),
            SpcError::InvalidParameter { name: "width", .. }
        ));
        let negative_slack = CusumParams {
            slack: -1.0,
            decision_interval: 5.0,
        };
        assert!(matches!(
            CusumChart::new(0.0, 1.0, negative_slack).unwrap_err(),
            SpcError::InvalidParameter { name: "slack", .. }
        ));
        let zero_interval = CusumParams {
            slack: 0.5,
            decision_interval: 0.0,
        };
        assert!(matches!(
            CusumChart::new(0.0, 1.0, zero_interval).unwrap_err(),
            SpcError::InvalidParameter {
                name: "decision_interval",
                ..
            }
        ));
        assert!(matches!(
            CusumChart::new(f64::NAN, 1.0, CusumParams::default()).unwrap_err(),
            SpcError::InvalidParameter { name: "target", .. }
        ));
        assert!(matches!(
            EwmaChart::new(0.0, 0.0, EwmaParams::default()).unwrap_err(),
            SpcError::InvalidParameter { name: "sigma", .. }
        ));
        assert_eq!(
            EwmaChart::fit(&[1.0], EwmaParams::default()).unwrap_err(),
            SpcError::TooFewPoints {
                needed: 2,
                found: 1
            }
        );
        assert_eq!(
            CusumChart::fit(&[2.0, 2.0, 2.0], CusumParams::default()).unwrap_err(),
            SpcError::ZeroSigma
        );
    }

    // ----- capability and phase-I errors ------------------------------------------------------

    #[test]
    fn capability_of_a_known_sample() {
        let spec = SpecLimits::new(8.0, 16.0).unwrap();
        let capability = Capability::from_individuals(&SMALL_SAMPLE, spec).unwrap();
        // σ within = 1.5 / 1.128; σ overall = √(5.2 / 4); the mean 11.6 is 3.6 from the LSL.
        assert_close!(capability.sigma_within, 1.329_787_234, 1e-9);
        assert_close!(capability.sigma_overall, 1.140_175_425, 1e-9);
        assert_close!(capability.cp, 8.0 / (6.0 * 1.329_787_234), 1e-8);
        assert_close!(capability.cp, 1.002_667, 1e-6);
        assert_close!(capability.cpk, 0.902_400, 1e-6);
        assert_close!(capability.pp, 1.169_411, 1e-6);
        assert_close!(capability.ppk, 1.052_470, 1e-6);
    }

    #[test]
    fn capability_from_an_xbar_r_chart_uses_r_bar_over_d2() {
        let chart = XbarChart::fit(&SUBGROUPS, Dispersion::Range, RuleSet::nelson()).unwrap();
        let capability = chart
            .capability(SpecLimits::new(7.0, 15.0).unwrap())
            .unwrap();
        let sigma = 2.8 / 2.326;
        assert_close!(capability.cp, 8.0 / (6.0 * sigma), 1e-12);
        assert_close!(capability.cpk, (10.8 - 7.0) / (3.0 * sigma), 1e-12);
        assert!(capability.pp > 0.0 && capability.pp.is_finite());
    }

    #[test]
    fn every_phase_one_error_is_reported() {
        let nelson = RuleSet::nelson();
        assert_eq!(
            IndividualsChart::fit(&[], nelson).unwrap_err(),
            SpcError::TooFewPoints {
                needed: 2,
                found: 0
            }
        );
        assert_eq!(
            IndividualsChart::fit(&[1.0, 2.0, f64::NAN], nelson).unwrap_err(),
            SpcError::NonFinite { index: 2 }
        );
        assert_eq!(
            IndividualsChart::fit(&[f64::INFINITY, 2.0], nelson).unwrap_err(),
            SpcError::NonFinite { index: 0 }
        );
        assert_eq!(
            IndividualsChart::fit(&[7.0, 7.0], nelson).unwrap_err(),
            SpcError::ZeroSigma
        );
        assert_eq!(
            IndividualsChart::fit(&[f64::MAX, -f64::MAX], nelson).unwrap_err(),
            SpcError::Overflow
        );
        assert_eq!(
            SpecLimits::new(5.0, 5.0),
            Err(SpcError::SpecLimitsInverted {
                lower: 5.0,
                upper: 5.0
            })
        );
        assert_eq!(
            SpecLimits::new(6.0, 5.0),
            Err(SpcError::SpecLimitsInverted {
                lower: 6.0,
                upper: 5.0
            })
        );
        assert_eq!(
            SpecLimits::new(f64::NAN, 5.0),
            Err(SpcError::NonFinite { index: 0 })
        );
        assert_eq!(
            SpecLimits::new(0.0, f64::INFINITY),
            Err(SpcError::NonFinite { index: 1 })
        );
        let spec = SpecLimits::new(0.0, 1.0).unwrap();
        assert_eq!(
            Capability::from_individuals(&[0.5], spec).unwrap_err(),
            SpcError::TooFewPoints {
                needed: 2,
                found: 1
            }
        );
        assert_eq!(
            Capability::from_individuals(&[0.5, 0.5, 0.5], spec).unwrap_err(),
            SpcError::ZeroSigma
        );
        assert_eq!(
            Capability::from_estimates(0.5, 0.1, 0.0, spec).unwrap_err(),
            SpcError::ZeroSigma
        );
        assert_eq!(
            Capability::from_estimates(0.5, 1e-320, 1e-320, spec).unwrap_err(),
            SpcError::Overflow
        );
        // Messages are lowercase sentences an operator can act on.
        assert_eq!(
            SpcError::TooFewPoints {
                needed: 2,
                found: 1
            }
            .to_string(),
            "need at least 2 points, got 1"
        );
    }

    // ----- adaptive inspection ----------------------------------------------------------------

    #[test]
    fn inspection_steps_down_with_clean_runs_and_snaps_back_on_a_signal() {
        let policy = InspectionPolicy::new(3, 2, 8).unwrap();
        let mut state = InspectionState::default();
        assert_eq!(state.one_in, 1);
        let mut rates = Vec::new();
        for _ in 0..12 {
            state = policy.next(state, false);
            rates.push(state.one_in);
        }
        assert_eq!(rates, vec![1, 1, 2, 2, 2, 4, 4, 4, 8, 8, 8, 8]);
        assert_close!(state.fraction(), 0.125, 1e-12);
        assert!(state.inspect_unit(16) && !state.inspect_unit(17));
        state = policy.next(state, true);
        assert_eq!(state, InspectionState::default());
        assert_close!(state.fraction(), 1.0, 1e-12);
        assert!(state.inspect_unit(17));
    }

    #[test]
    fn inspection_follows_chart_points_and_checks_its_parameters() {
        let policy = InspectionPolicy::default();
        // Rule 1 only: a hand-made "clean" stream would otherwise have to avoid every pattern
        // (a steady alternation, for one, fires Nelson 4 and 7).
        let mut chart =
            IndividualsChart::fit(&SMALL_SAMPLE, RuleSet::only(&[Rule::Nelson1])).unwrap();
        let mut state = InspectionState::default();
        for value in [11.0, 12.0].repeat(13) {
            state = policy.after_point(state, &chart.observe(value).unwrap());
        }
        assert_eq!(state.one_in, 2, "25 clean points halve the rate");
        state = policy.after_point(state, &chart.observe(20.0).unwrap());
        assert_eq!(state.one_in, 1);
        // A state from elsewhere beyond the policy's bound is pulled back within it.
        let foreign = InspectionState {
            one_in: 1000,
            clean_run: 0,
        };
        assert_eq!(policy.next(foreign, false).one_in, 8);
        for (run, factor, max, name) in [
            (0, 2, 8, "clean_points_to_step_down"),
            (3, 1, 8, "step_factor"),
            (3, 2, 0, "max_one_in"),
        ] {
            assert!(matches!(
                InspectionPolicy::new(run, factor, max).unwrap_err(),
                SpcError::InvalidParameter { name: n, .. } if n == name
            ));
        }
    }

    // ----- decisions --------------------------------------------------------------------------

    #[test]
    fn an_alarm_becomes_a_testing_decision_naming_chart_point_rules_and_action() {
        let mut chart = IndividualsChart::fit(&SMALL_SAMPLE, RuleSet::nelson()).unwrap();
        let calm = chart.observe(11.6).unwrap();
        assert_eq!(SpcAlarm::from_point("bore", &calm), None);
        let point = chart.observe(16.6).unwrap();
        let alarm = SpcAlarm::from_point("TURN-01 bore diameter", &point).unwrap();
        assert_eq!(alarm.action, RecommendedAction::HoldAndInspect);
        let at = Timestamp::from_civil(2026, 3, 2, 8, 0, 0, 0);
        let decision = alarm.to_decision("D-20260302-000001", at, "telemetry:TURN-01/bore@2");
        assert_eq!(decision.id, "D-20260302-000001");
        assert_eq!(decision.at, at);
        assert_eq!(decision.skill, "spc");
        assert_eq!(decision.stage, LifecycleStage::Testing);
        assert_eq!(decision.inputs_ref, "telemetry:TURN-01/bore@2");
        assert_eq!(decision.model, "spc-nelson");
        assert_eq!(decision.model_version, "1");
        assert_eq!(decision.confidence, None);
        assert_eq!(decision.executed_by, ExecutedBy::None);
        assert_eq!(decision.outcome, None);
        let output = &decision.output;
        assert_eq!(output["chart"], "individuals_moving_range");
        assert_eq!(output["characteristic"], "TURN-01 bore diameter");
        assert_eq!(output["point"]["index"], 2);
        assert_eq!(output["point"]["observed"], 16.6);
        assert_eq!(output["rules_fired"][0]["code"], "nelson_1");
        assert_eq!(output["rules_fired"][1]["code"], "dispersion_beyond_limits");
        assert_eq!(output["action"], "hold_and_inspect");
        assert_eq!(output["action_text"], "hold and inspect");
        // The record survives the ledger's serde round trip.
        let text = serde_json::to_string(&decision).unwrap();
        assert_eq!(serde_json::from_str::<Decision>(&text).unwrap(), decision);
    }

    #[test]
    fn a_pattern_inside_the_limits_asks_for_investigation_not_a_hold() {
        let mut chart = IndividualsChart::fit(&SMALL_SAMPLE, RuleSet::nelson()).unwrap();
        let mut last = None;
        for _ in 0..9 {
            last = Some(chart.observe(12.0).unwrap());
        }
        let alarm = SpcAlarm::from_point("bore", &last.unwrap()).unwrap();
        assert_eq!(alarm.action, RecommendedAction::Investigate);
        let decision = alarm.to_decision("D-1", Timestamp(0), "window");
        assert_eq!(decision.output["rules_fired"][0]["code"], "nelson_2");
        assert_eq!(decision.output["action"], "investigate");
    }

    // ----- no panics --------------------------------------------------------------------------

    proptest::proptest! {
        #[test]
        fn arbitrary_numbers_never_panic(
            sample in proptest::collection::vec(proptest::num::f64::ANY, 0..40),
            stream in proptest::collection::vec(proptest::num::f64::ANY, 0..40),
            lower in proptest::num::f64::ANY,
            upper in proptest::num::f64::ANY,
            lambda in proptest::num::f64::ANY,
            slack in proptest::num::f64::ANY,
        ) {
            let rules = RuleSet::all();
            let mut detector = RuleDetector::new(rules);
            for z in &stream {
                let _ = detector.push(*z);
            }
            if let Ok(spec) = SpecLimits::new(lower, upper) {
                let _ = Capability::from_individuals(&sample, spec);
            }
            let params = EwmaParams { lambda, width: 3.0 };
            let cusum_params = CusumParams { slack, decision_interval: 4.0 };
            let mut policy_state = InspectionState::default();
            let policy = InspectionPolicy::default();
            if let Ok(mut chart) = IndividualsChart::fit(&sample, rules) {
                for x in &stream {
                    if let Ok(point) = chart.observe(*x) {
                        policy_state = policy.after_point(policy_state, &point);
                        if let Some(alarm) = SpcAlarm::from_point("x", &point) {
                            let _ = alarm.to_decision("D", Timestamp(0), "p");
                        }
                    }
                }
            }
            if let Ok(mut chart) = EwmaChart::fit(&sample, params) {
                for x in &stream {
                    let _ = chart.observe(*x);
                }
            }
            if let Ok(mut chart) = CusumChart::fit(&sample, cusum_params) {
                for x in &stream {
                    let _ = chart.observe(*x);
                }
            }
            let subgroups: Vec<&[f64]> = sample.chunks(3).collect();
            for dispersion in [Dispersion::Range, Dispersion::StandardDeviation] {
                if let Ok(mut chart) = XbarChart::fit(&subgroups, dispersion, rules) {
                    for subgroup in stream.chunks(3) {
                        let _ = chart.observe(subgroup);
                    }
                    if let Ok(spec) = SpecLimits::new(lower, upper) {
                        let _ = chart.capability(spec);
                    }
                }
            }
        }

        #[test]
        fn fitted_charts_on_finite_samples_have_ordered_finite_limits(
            sample in proptest::collection::vec(-1e6f64..1e6, 2..60),
        ) {
            if let Ok(chart) = IndividualsChart::fit(&sample, RuleSet::nelson()) {
                let limits = chart.limits();
                proptest::prop_assert!(limits.lower < limits.centre && limits.centre < limits.upper);
                proptest::prop_assert!(limits.upper.is_finite() && limits.lower.is_finite());
            } else {
                // Only a sample without any movement may be refused.
                proptest::prop_assert!(sample.windows(2).all(|pair| pair[0] == pair[1]));
            }
        }
    }
}
