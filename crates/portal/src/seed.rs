//! A synthetic city for demos and benchmarks: plants across Hangzhou's districts and common
//! industries, each with a maturity it grows into over the year, and the evidence a plant at
//! that maturity would produce — a hash-chained ledger of decisions, outcomes and model updates
//! that grows quarter by quarter, signed with the plant's own key. Everything follows from the
//! seed: the same seed gives the same city, the same keys and byte-identical bundles.
//!
//! The ledgers are built to exercise the tier rules, not to imitate a plant's volume: a level-3
//! plant logs `decisions_per_skill` decisions per skill per quarter (the portal's cost grows
//! with entries, so the benchmark states the size it used).

use crate::error::PortalError;
use crate::evidence::Via;
use crate::model::{Caller, Role};
use crate::money::Yuan;
use crate::portal::Portal;
use crate::registry::{NewProvider, NewUser, Offer};
use crate::vouchers::{NewBudget, NewRedemption, NewVoucher};
use aifactory_assess::rules::Coverage;
use aifactory_assess::{EvidenceBundle, Ledger};
use aifactory_core::{Decision, ExecutedBy, LedgerRecord, LifecycleStage, Outcome, Timestamp};
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub const DISTRICTS: [&str; 13] = [
    "Shangcheng",
    "Gongshu",
    "Xihu",
    "Binjiang",
    "Xiaoshan",
    "Yuhang",
    "Linping",
    "Qiantang",
    "Fuyang",
    "Linan",
    "Tonglu",
    "Chunan",
    "Jiande",
];

pub const INDUSTRIES: [&str; 8] = [
    "auto-parts",
    "textiles",
    "chemicals",
    "electronics",
    "equipment",
    "food",
    "pharma",
    "metals",
];

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CitySpec {
    pub plants: usize,
    pub providers: usize,
    pub year: i32,
    pub seed: u64,
    /// Decisions per active skill per quarter.
    pub decisions_per_skill: usize,
}

impl Default for CitySpec {
    fn default() -> Self {
        CitySpec {
            plants: 7_500,
            providers: 60,
            year: 2026,
            seed: 7,
            decisions_per_skill: 6,
        }
    }
}

/// One plant of the synthetic city.
#[derive(Debug, Clone, PartialEq)]
pub struct CityPlant {
    pub index: usize,
    pub id: String,
    pub name: String,
    pub industry: String,
    pub district: String,
    pub revenue_myuan: f64,
    /// The level (0–3) the plant reaches by the end of the year.
    pub maturity: u8,
    secret: [u8; 32],
}

impl CityPlant {
    pub fn key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.secret)
    }

    /// The plant's level in a quarter (1–4): mature plants get there during the year.
    pub fn level(&self, quarter: u32) -> u8 {
        if quarter <= 2 && self.maturity >= 2 {
            self.maturity - 1
        } else {
            self.maturity
        }
    }
}

/// The city's plants: about half at level 1, a third at 2, one in ten at 3, the rest at 0.
pub fn city(spec: &CitySpec) -> Vec<CityPlant> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    (0..spec.plants)
        .map(|index| {
            let district = DISTRICTS[rng.random_range(0..DISTRICTS.len())];
            let industry = INDUSTRIES[rng.random_range(0..INDUSTRIES.len())];
            let roll: f64 = rng.random();
            let maturity = if roll < 0.08 {
                0
            } else if roll < 0.56 {
                1
            } else if roll < 0.90 {
                2
            } else {
                3
            };
            // Log-normal-ish revenue: most plants are large-scale (≥ 20 M yuan), some are SMEs.
            let revenue_myuan = (10f64.powf(rng.random_range(0.9..3.2)) * 100.0).round() / 100.0;
            let mut secret = [0u8; 32];
            rng.fill(&mut secret);
            CityPlant {
                index,
                id: format!("HZ-{index:05}"),
                name: format!("{district} {industry} works {index}"),
                industry: industry.to_owned(),
                district: district.to_owned(),
                revenue_myuan,
                maturity,
                secret,
            }
        })
        .collect()
}

/// The skills a level uses, with the skills each one cites (making the links of the plan).
fn skills(level: u8) -> &'static [(&'static str, LifecycleStage, &'static [&'static str])] {
    use LifecycleStage::*;
    const L1: &[(&str, LifecycleStage, &[&str])] =
        &[("anomaly", Production, &[]), ("spc", Testing, &[])];
    const L2: &[(&str, LifecycleStage, &[&str])] = &[
        ("maintenance", Production, &[]),
        ("forecast", Sales, &[]),
        ("spc", Testing, &[]),
        ("scheduling", Production, &["maintenance", "forecast"]),
        ("inspection", Testing, &["spc"]),
        ("ctp", Sales, &["scheduling"]),
    ];
    const L3: &[(&str, LifecycleStage, &[&str])] = &[
        ("maintenance", Production, &[]),
        ("forecast", Sales, &[]),
        ("spc", Testing, &[]),
        ("defect-risk", Testing, &[]),
        ("scheduling", Production, &["maintenance", "forecast"]),
        ("inspection", Testing, &["spc"]),
        ("process-settings", Design, &["defect-risk"]),
        ("replenishment", Management, &["forecast"]),
        ("ctp", Sales, &["scheduling"]),
    ];
    match level {
        0 => &[],
        1 => L1,
        2 => L2,
        _ => L3,
    }
}

/// Skills that run the closed loop at level 3 (guarded commands, measured outcomes, retraining).
const CLOSED_LOOP: [&str; 5] = [
    "maintenance",
    "scheduling",
    "spc",
    "inspection",
    "replenishment",
];

fn quarter_start(year: i32, quarter: u32) -> Timestamp {
    Timestamp::from_civil(year, 3 * (quarter - 1) + 1, 1, 0, 0, 0, 480)
}

/// The plant's ledger through the end of `quarter` (1–4); earlier quarters are a prefix of it.
pub fn ledger(plant: &CityPlant, spec: &CitySpec, quarter: u32) -> Ledger {
    let mut ledger = Ledger::new();
    for q in 1..=quarter {
        append_quarter(&mut ledger, plant, spec, q);
    }
    ledger
}

fn append_quarter(ledger: &mut Ledger, plant: &CityPlant, spec: &CitySpec, quarter: u32) {
    let mut rng = ChaCha8Rng::seed_from_u64(
        spec.seed ^ (plant.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(quarter),
    );
    let level = plant.level(quarter);
    let start = quarter_start(spec.year, quarter);
    let span_ms = 90 * 86_400_000_i64;
    let mut last_of: std::collections::HashMap<&str, String> = Default::default();
    let mut n = 0usize;
    for round in 0..spec.decisions_per_skill {
        for (skill, stage, cites) in skills(level) {
            n += 1;
            let at = Timestamp(
                start.0
                    + span_ms * (round as i64) / (spec.decisions_per_skill as i64)
                    + rng.random_range(0..3_600_000),
            );
            let id = format!("{}-Q{quarter}-{n:04}", plant.id);
            let cited: Vec<String> = cites
                .iter()
                .filter_map(|c| last_of.get(c).map(|d| format!("decision:{d}")))
                .collect();
            let closed = level >= 3 && CLOSED_LOOP.contains(skill);
            let executed_by = if closed {
                ExecutedBy::Auto
            } else if level >= 2 && rng.random_bool(0.5) {
                ExecutedBy::Human
            } else {
                ExecutedBy::None
            };
            let decision = Decision {
                id: id.clone(),
                at,
                skill: (*skill).to_owned(),
                stage: *stage,
                inputs_ref: if cited.is_empty() {
                    format!("window:{}", at.0)
                } else {
                    cited.join(";")
                },
                model: format!("{skill}-model"),
                model_version: format!("{}.{quarter}", spec.year),
                output: json!({"machine": format!("M-{:02}", rng.random_range(1..40)), "action": skill}),
                confidence: Some((rng.random_range(0.6..0.99_f64) * 100.0).round() / 100.0),
                executed_by,
                outcome: None,
            };
            // Appending to an in-memory ledger only fails on values JSON cannot hold.
            if ledger.append(LedgerRecord::Decision(decision)).is_err() {
                continue;
            }
            if closed {
                let outcome = Outcome {
                    measured_at: at.plus_seconds(86_400.0),
                    measured: json!({"met": true}),
                    success: Some(rng.random_bool(0.85)),
                };
                let _ = ledger.append(LedgerRecord::Outcome {
                    decision: id.clone(),
                    outcome,
                });
            }
            last_of.insert(skill, id);
        }
    }
    if level >= 3 {
        for skill in CLOSED_LOOP {
            let _ = ledger.append(LedgerRecord::ModelUpdate {
                at: Timestamp(start.0 + span_ms - 86_400_000),
                skill: skill.to_owned(),
                model: format!("{skill}-model"),
                from_version: format!("{}.{quarter}", spec.year),
                to_version: format!("{}.{}", spec.year, quarter + 1),
                trigger: "outcomes below target".into(),
            });
        }
    }
}

/// What the plant streams in a quarter, by level.
fn coverage(plant: &CityPlant, quarter: u32) -> Coverage {
    let machines = 20 + (plant.index % 60) as u32;
    let share = match plant.level(quarter) {
        0 => 0.0,
        1 => 0.3,
        2 => 0.6,
        _ => 0.95,
    };
    Coverage {
        machines,
        machines_streaming: (f64::from(machines) * share).ceil() as u32,
        days: 90.0 * f64::from(quarter),
    }
}

/// The plant's signed evidence bundle at the end of `quarter`.
pub fn bundle(
    plant: &CityPlant,
    spec: &CitySpec,
    quarter: u32,
) -> Result<EvidenceBundle, aifactory_assess::BundleError> {
    let ledger = ledger(plant, spec, quarter);
    let generated_at = if quarter >= 4 {
        Timestamp::from_civil(spec.year, 12, 31, 23, 0, 0, 480)
    } else {
        quarter_start(spec.year, quarter + 1)
    };
    aifactory_assess::sign(
        &plant.id,
        generated_at,
        coverage(plant, quarter),
        ledger.into_entries(),
        &plant.key(),
    )
}

/// The city's providers and what they deliver.
pub fn providers(spec: &CitySpec) -> Vec<NewProvider> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x5EED);
    let catalogue = aifactory_assess::rules::CATALOGUE;
    (0..spec.providers)
        .map(|i| {
            let count = rng.random_range(1..=4);
            let mut offers: Vec<Offer> = Vec::new();
            while offers.len() < count {
                let s = catalogue[rng.random_range(0..catalogue.len())];
                if !offers.iter().any(|o| o.scenario == s.id) {
                    offers.push(Offer {
                        scenario: s.id.to_owned(),
                        stage: Some(s.stage),
                    });
                }
            }
            NewProvider {
                id: format!("SP-{i:03}"),
                name: format!("Service provider {i}"),
                offers,
            }
        })
        .collect()
}

/// Tokens the seed gives its users: printed by `portal seed`, for demos and benchmarks only.
pub fn seed_token(spec: &CitySpec, user: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("aifactory-portal-seed/{}/{user}", spec.seed));
    format!("afp_seed_{}", &hex::encode(digest)[..40])
}

/// Registers the city's plants and providers, the demo users, budgets and targets; returns the
/// demo users' names (their tokens are [`seed_token`]).
pub async fn seed_registry(portal: &Portal, spec: &CitySpec) -> Result<Vec<String>, PortalError> {
    let system = Caller::system();
    let plants = city(spec);
    // One statement for thousands of plants: registration one by one is for people.
    let mut tx = portal.begin(&system).await?;
    let now = portal.now_ms();
    sqlx::query(
        "INSERT INTO plants (id, name, industry, district, size_class, revenue_myuan, registered_at_ms) \
         SELECT id, name, industry, district, CASE WHEN revenue >= 20 THEN 'large' ELSE 'sme' END, revenue, $6 \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[]) \
              AS p(id, name, industry, district, revenue) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(plants.iter().map(|p| p.id.as_str()).collect::<Vec<_>>())
    .bind(plants.iter().map(|p| p.name.as_str()).collect::<Vec<_>>())
    .bind(plants.iter().map(|p| p.industry.as_str()).collect::<Vec<_>>())
    .bind(plants.iter().map(|p| p.district.as_str()).collect::<Vec<_>>())
    .bind(plants.iter().map(|p| p.revenue_myuan).collect::<Vec<_>>())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    crate::portal::audit(
        &mut tx,
        &system,
        now,
        "seed.registry",
        "city",
        json!({"plants": plants.len(), "seed": spec.seed}),
    )
    .await?;
    tx.commit().await?;
    for provider in providers(spec) {
        match portal.register_provider(&system, &provider).await {
            Ok(_) | Err(PortalError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut users = vec![
        NewUser {
            name: "officer".into(),
            role: Role::Officer,
            plant: None,
            provider: None,
        },
        NewUser {
            name: "assessor".into(),
            role: Role::Assessor,
            plant: None,
            provider: None,
        },
    ];
    for p in plants.iter().take(3) {
        users.push(NewUser {
            name: format!("plant-{}", p.id),
            role: Role::Plant,
            plant: Some(p.id.clone()),
            provider: None,
        });
    }
    for i in 0..spec.providers.min(3) {
        users.push(NewUser {
            name: format!("provider-SP-{i:03}"),
            role: Role::Provider,
            plant: None,
            provider: Some(format!("SP-{i:03}")),
        });
    }
    for user in &users {
        match portal
            .add_user_with_token(&system, user, &seed_token(spec, &user.name))
            .await
        {
            Ok(()) | Err(PortalError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let budgets = [
        ("compute", 200_000_000, 30, 500_000),
        ("scenario", 300_000_000, 50, 2_000_000),
        ("services", 50_000_000, 50, 200_000),
    ];
    for (category, amount, share, cap) in budgets {
        let budget = NewBudget {
            id: format!("{category}-{}", spec.year),
            category: category.into(),
            year: spec.year,
            amount: Yuan(amount * 100),
            max_share_pct: share,
            cap_per_firm: Yuan(cap * 100),
        };
        match portal.create_budget(&system, &budget).await {
            Ok(_) | Err(PortalError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    // Targets: per district, a share of its plants at each tier by year end.
    let mut per_district = std::collections::BTreeMap::<&str, i32>::new();
    for p in &plants {
        *per_district.entry(p.district.as_str()).or_default() += 1;
    }
    for (district, count) in per_district {
        for (tier, share) in [(1u8, 0.9), (2, 0.4), (3, 0.1)] {
            portal
                .set_target(
                    &system,
                    &crate::registry::Target {
                        year: spec.year,
                        district: district.to_owned(),
                        industry: "*".into(),
                        tier,
                        plants: (f64::from(count) * share).round() as i32,
                    },
                )
                .await?;
        }
    }
    Ok(users.into_iter().map(|u| u.name).collect())
}

/// Submits every plant's bundle for `quarter` through the portal's evidence path, `workers`
/// at a time; `progress` is called after each. Returns (accepted, refused).
pub async fn seed_evidence(
    portal: &Portal,
    spec: &CitySpec,
    quarter: u32,
    workers: usize,
    progress: impl Fn() + Send + Sync + 'static,
) -> Result<(usize, usize), PortalError> {
    let bundles = prepare_bundles(spec, quarter, workers)?;
    ingest_bundles(portal, bundles, workers, progress).await
}

/// Signed bundles of every plant for `quarter`, as the bytes a plant would upload.
pub fn prepare_bundles(
    spec: &CitySpec,
    quarter: u32,
    threads: usize,
) -> Result<Vec<(String, Vec<u8>)>, PortalError> {
    let plants = city(spec);
    let chunk = plants.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = plants
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|p| {
                            let b = bundle(p, spec, quarter)
                                .map_err(|e| PortalError::invalid(format!("{}: {e}", p.id)))?;
                            let bytes = serde_json::to_vec(&b)
                                .map_err(|e| PortalError::invalid(format!("{}: {e}", p.id)))?;
                            Ok((p.id.clone(), bytes))
                        })
                        .collect::<Result<Vec<_>, PortalError>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(spec.plants);
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| PortalError::invalid("a bundle-signing thread panicked"))??;
            out.extend(part);
        }
        Ok(out)
    })
}

/// Feeds bundles to the portal's evidence path as the system (the NATS consumer's identity).
pub async fn ingest_bundles(
    portal: &Portal,
    bundles: Vec<(String, Vec<u8>)>,
    workers: usize,
    progress: impl Fn() + Send + Sync + 'static,
) -> Result<(usize, usize), PortalError> {
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(bundles));
    let progress = std::sync::Arc::new(progress);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let portal = portal.clone();
        let progress = progress.clone();
        tasks.spawn(async move {
            let (mut accepted, mut refused) = (0usize, 0usize);
            loop {
                let next = queue.lock().await.pop();
                let Some((plant, bytes)) = next else { break };
                match portal
                    .submit_evidence_via(&Caller::system(), &plant, bytes, Via::Seed)
                    .await
                {
                    Ok(_) => accepted += 1,
                    Err(PortalError::Evidence(_)) => refused += 1,
                    Err(e) => return Err(e),
                }
                progress();
            }
            Ok((accepted, refused))
        });
    }
    let (mut accepted, mut refused) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (a, r) = done.map_err(|e| PortalError::Invalid(format!("ingest worker: {e}")))??;
        accepted += a;
        refused += r;
    }
    Ok((accepted, refused))
}

/// Issues vouchers to about a third of the plants and has their providers redeem invoices
/// against them (through the same calls the API makes). Returns (vouchers, redemptions).
pub async fn seed_vouchers(
    portal: &Portal,
    spec: &CitySpec,
    workers: usize,
) -> Result<(usize, usize), PortalError> {
    let plants = city(spec);
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0xB0B);
    let expires = Timestamp::from_civil(spec.year + 1, 12, 31, 0, 0, 0, 480).0;
    let mut work = Vec::new();
    for p in &plants {
        if rng.random_bool(0.35) {
            let category = ["compute", "scenario", "services"][rng.random_range(0..3)];
            let amount = Yuan(rng.random_range(20..150) * 100_000);
            let provider = format!("SP-{:03}", rng.random_range(0..spec.providers.max(1)));
            let invoices: Vec<i64> = (0..rng.random_range(0..3))
                .map(|_| rng.random_range(10..200) * 1_000)
                .collect();
            work.push((p.id.clone(), category, amount, provider, invoices));
        }
    }
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(work));
    let year = spec.year;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let portal = portal.clone();
        tasks.spawn(async move {
            let (mut issued, mut redeemed) = (0usize, 0usize);
            loop {
                let next = queue.lock().await.pop();
                let Some((plant, category, amount, provider, invoices)) = next else {
                    break;
                };
                let voucher = match portal
                    .issue_voucher(
                        &Caller::system(),
                        &NewVoucher {
                            budget: format!("{category}-{year}"),
                            plant: plant.clone(),
                            amount,
                            expires_at_ms: expires,
                            provider: Some(provider.clone()),
                        },
                    )
                    .await
                {
                    Ok(v) => v,
                    Err(PortalError::Conflict(_)) => continue,
                    Err(e) => return Err(e),
                };
                issued += 1;
                let caller = Caller {
                    user: format!("provider-{provider}"),
                    role: Role::Provider,
                    plant: None,
                    provider: Some(provider.clone()),
                };
                for (i, total) in invoices.into_iter().enumerate() {
                    match portal
                        .redeem(
                            &caller,
                            &voucher.id,
                            &NewRedemption {
                                invoice_no: format!("{}-{i}", voucher.id),
                                kind: if i % 2 == 0 { "invoice" } else { "metered" }.into(),
                                invoice_total: Yuan(total * 100),
                            },
                        )
                        .await
                    {
                        Ok(_) => redeemed += 1,
                        Err(PortalError::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok((issued, redeemed))
        });
    }
    let (mut issued, mut redeemed) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (i, r) = done.map_err(|e| PortalError::Invalid(format!("voucher worker: {e}")))??;
        issued += i;
        redeemed += r;
    }
    Ok((issued, redeemed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> CitySpec {
        CitySpec {
            plants: 40,
            providers: 5,
            ..CitySpec::default()
        }
    }

    #[test]
    fn same_seed_same_city_and_bundles() {
        let spec = small();
        let a = city(&spec);
        let b = city(&spec);
        assert_eq!(a, b);
        let first = serde_json::to_vec(&bundle(&a[3], &spec, 2).unwrap()).unwrap();
        let again = serde_json::to_vec(&bundle(&b[3], &spec, 2).unwrap()).unwrap();
        assert_eq!(first, again);
        let other = city(&CitySpec { seed: 8, ..spec });
        assert_ne!(a, other);
    }

    #[test]
    fn each_maturity_earns_its_tier_by_year_end() {
        let spec = small();
        for plant in city(&spec) {
            let b = bundle(&plant, &spec, 4).unwrap();
            let verified = aifactory_assess::verify(&b).expect("generated bundles verify");
            assert_eq!(
                verified.tier, plant.maturity,
                "plant {} at maturity {} got tier {}: {:?}",
                plant.id, plant.maturity, verified.tier, verified.missing_for_next_tier
            );
        }
    }

    #[test]
    fn later_quarters_extend_earlier_ledgers() {
        let spec = small();
        let plant = &city(&spec)[5];
        let q2 = ledger(plant, &spec, 2).into_entries();
        let q3 = ledger(plant, &spec, 3).into_entries();
        assert!(q3.len() > q2.len());
        assert_eq!(&q3[..q2.len()], &q2[..]);
    }
}

#[cfg(test)]
mod roundtrip_tests {
    use super::*;

    #[test]
    fn a_bundle_verifies_after_a_trip_through_json() {
        let spec = CitySpec {
            plants: 4,
            providers: 1,
            ..CitySpec::default()
        };
        for plant in city(&spec) {
            let b = bundle(&plant, &spec, 1).unwrap();
            let bytes = serde_json::to_vec(&b).unwrap();
            let back: EvidenceBundle = serde_json::from_slice(&bytes).unwrap();
            if back != b {
                let x = serde_json::to_value(&b).unwrap();
                let y = serde_json::to_value(&back).unwrap();
                panic!("differs:\n{x}\n{y}");
            }
            aifactory_assess::verify(&back).unwrap();
        }
    }
}
