//! The registry: plants, providers with their offers, users and their tokens; targets by
//! district and industry and the dashboard of progress toward them; benchmark designation.

use crate::error::PortalError;
use crate::model::{Caller, Role};
use crate::portal::{Portal, audit, require_officer};
use crate::tokens::{IssuedToken, insert_token, new_token};
use aifactory_assess::rules::CATALOGUE;
use aifactory_core::LifecycleStage;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// Annual revenue, million yuan, from which a plant is large-scale (规模以上).
pub const LARGE_SCALE_MYUAN: f64 = 20.0;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPlant {
    pub id: String,
    pub name: String,
    pub industry: String,
    pub district: String,
    /// Annual revenue in million yuan; decides the size class.
    pub revenue_myuan: f64,
    /// The plant's evidence signing key (64 hex digits); pinned by the first bundle if absent.
    #[serde(default)]
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlantRecord {
    pub id: String,
    pub name: String,
    pub industry: String,
    pub district: String,
    pub size_class: String,
    pub revenue_myuan: Option<f64>,
    pub public_key: Option<String>,
    /// The tier of the latest accepted evidence (0 before any).
    pub tier: u8,
    pub tier_at_ms: Option<i64>,
    pub ledger_entries: i64,
    pub benchmark_since_ms: Option<i64>,
    pub registered_at_ms: i64,
}

const PLANT_COLUMNS: &str = "id, name, industry, district, size_class, revenue_myuan, public_key, \
    tier, tier_at_ms, ledger_entries, benchmark_since_ms, registered_at_ms";

fn plant_from_row(row: &PgRow) -> Result<PlantRecord, sqlx::Error> {
    Ok(PlantRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        industry: row.try_get("industry")?,
        district: row.try_get("district")?,
        size_class: row.try_get("size_class")?,
        revenue_myuan: row.try_get("revenue_myuan")?,
        public_key: row.try_get("public_key")?,
        tier: u8::try_from(row.try_get::<i16, _>("tier")?).unwrap_or(0),
        tier_at_ms: row.try_get("tier_at_ms")?,
        ledger_entries: row.try_get("ledger_entries")?,
        benchmark_since_ms: row.try_get("benchmark_since_ms")?,
        registered_at_ms: row.try_get("registered_at_ms")?,
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantFilter {
    pub district: Option<String>,
    pub industry: Option<String>,
    pub tier: Option<u8>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A scenario of the tier rules' catalogue that a provider delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    pub scenario: String,
    /// Filled from the catalogue when omitted; must match it when given.
    #[serde(default)]
    pub stage: Option<LifecycleStage>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub offers: Vec<Offer>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderRecord {
    pub id: String,
    pub name: String,
    pub offers: Vec<Offer>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub plant: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
}

/// A user as the registry lists it (never a token or a password hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRecord {
    pub name: String,
    pub role: String,
    pub plant: Option<String>,
    pub provider: Option<String>,
    pub has_password: bool,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub year: i32,
    pub district: String,
    /// `*` for every industry of the district.
    pub industry: String,
    pub tier: u8,
    pub plants: i32,
}

/// One district × industry line of the targets dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRow {
    pub district: String,
    pub industry: String,
    pub plants: i64,
    /// Plants whose latest verified tier is at least 1, 2, 3.
    pub at_least: [i64; 3],
    pub benchmarks: i64,
    /// Targets for tiers 1, 2, 3 where set, and the share reached (reached / target).
    pub targets: [Option<i32>; 3],
    pub progress: [Option<f64>; 3],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetsDashboard {
    pub year: i32,
    pub plants: i64,
    pub at_least: [i64; 3],
    pub benchmarks: i64,
    pub rows: Vec<TargetRow>,
}

/// Checks an identifier the same way the database does, with a message that says so.
pub(crate) fn check_id(what: &str, id: &str) -> Result<(), PortalError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PortalError::invalid(format!(
            "{what} id {id:?}: 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), PortalError> {
    if text.trim().is_empty() || text.chars().count() > max {
        Err(PortalError::invalid(format!(
            "{what}: must be 1–{max} characters"
        )))
    } else {
        Ok(())
    }
}

pub(crate) fn check_public_key(key: &str) -> Result<(), PortalError> {
    if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(PortalError::invalid(
            "public_key: an ed25519 public key is 64 hex digits",
        ))
    }
}

/// The catalogue's stage of a scenario, or a message listing the scenarios.
pub(crate) fn scenario_stage(
    scenario: &str,
    stage: Option<LifecycleStage>,
) -> Result<LifecycleStage, PortalError> {
    let Some(entry) = CATALOGUE.iter().find(|s| s.id == scenario) else {
        let known: Vec<&str> = CATALOGUE.iter().map(|s| s.id).collect();
        return Err(PortalError::invalid(format!(
            "unknown scenario {scenario:?}; the typical scenarios are: {}",
            known.join(", ")
        )));
    };
    match stage {
        Some(given) if given != entry.stage => Err(PortalError::invalid(format!(
            "scenario {scenario} belongs to the {} stage, not {given}",
            entry.stage
        ))),
        _ => Ok(entry.stage),
    }
}

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Portal {
    /// Registers a plant (officers).
    pub async fn register_plant(
        &self,
        caller: &Caller,
        plant: &NewPlant,
    ) -> Result<PlantRecord, PortalError> {
        require_officer(caller, "register plants")?;
        check_new_plant(plant)?;
        let size_class = if plant.revenue_myuan >= LARGE_SCALE_MYUAN {
            "large"
        } else {
            "sme"
        };
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO plants (id, name, industry, district, size_class, revenue_myuan, public_key, registered_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO NOTHING RETURNING {PLANT_COLUMNS}"
        )))
        .bind(&plant.id)
        .bind(plant.name.trim())
        .bind(plant.industry.trim())
        .bind(plant.district.trim())
        .bind(size_class)
        .bind(plant.revenue_myuan)
        .bind(plant.public_key.as_deref().map(str::to_ascii_lowercase))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(PortalError::Conflict(format!(
                "plant {} is already registered",
                plant.id
            )));
        };
        let record = plant_from_row(&row)?;
        audit(
            &mut tx,
            caller,
            now,
            "plant.register",
            &plant.id,
            json!({"industry": record.industry, "district": record.district, "size_class": record.size_class}),
        )
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn plant(&self, caller: &Caller, id: &str) -> Result<PlantRecord, PortalError> {
        if !caller.owns_plant(id) {
            return Err(PortalError::Forbidden(format!(
                "plant {id} is not yours to read"
            )));
        }
        let mut tx = self.begin(caller).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PLANT_COLUMNS} FROM plants WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match row {
            Some(row) => Ok(plant_from_row(&row)?),
            None => Err(PortalError::not_found("plant", id)),
        }
    }

    /// Plants the caller may see (a plant user: its own), filtered and paged by id.
    pub async fn plants(
        &self,
        caller: &Caller,
        filter: &PlantFilter,
    ) -> Result<Vec<PlantRecord>, PortalError> {
        let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
        let offset = filter.offset.unwrap_or(0).max(0);
        let mut tx = self.begin(caller).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PLANT_COLUMNS} FROM plants \
             WHERE ($1::text IS NULL OR district = $1) AND ($2::text IS NULL OR industry = $2) \
               AND ($3::smallint IS NULL OR tier = $3) \
             ORDER BY id LIMIT $4 OFFSET $5"
        )))
        .bind(filter.district.as_deref())
        .bind(filter.industry.as_deref())
        .bind(filter.tier.map(i16::from))
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(plant_from_row).collect::<Result<_, _>>()?)
    }

    /// Designates a plant a benchmark factory (staff); only a plant at verified tier 3 qualifies.
    pub async fn designate_benchmark(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<PlantRecord, PortalError> {
        if !caller.role.is_staff() {
            return Err(PortalError::Forbidden(
                "only assessors and officers designate benchmark factories".into(),
            ));
        }
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PLANT_COLUMNS} FROM plants WHERE id = $1 FOR UPDATE"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| PortalError::not_found("plant", id))?;
        let plant = plant_from_row(&row)?;
        if plant.tier < 3 {
            return Err(PortalError::Conflict(format!(
                "plant {id} is at verified tier {}; a benchmark factory needs tier 3",
                plant.tier
            )));
        }
        if plant.benchmark_since_ms.is_some() {
            return Ok(plant);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE plants SET benchmark_since_ms = $2 WHERE id = $1 RETURNING {PLANT_COLUMNS}"
        )))
        .bind(id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            caller,
            now,
            "plant.benchmark",
            id,
            json!({"tier": plant.tier}),
        )
        .await?;
        tx.commit().await?;
        Ok(plant_from_row(&row)?)
    }

    /// Registers a provider and its offers (officers).
    pub async fn register_provider(
        &self,
        caller: &Caller,
        provider: &NewProvider,
    ) -> Result<ProviderRecord, PortalError> {
        require_officer(caller, "register providers")?;
        check_id("provider", &provider.id)?;
        check_text("name", &provider.name, 200)?;
        let offers = checked_offers(&provider.offers)?;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let inserted = sqlx::query(
            "INSERT INTO providers (id, name, registered_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&provider.id)
        .bind(provider.name.trim())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(PortalError::Conflict(format!(
                "provider {} is already registered",
                provider.id
            )));
        }
        write_offers(&mut tx, &provider.id, &offers).await?;
        audit(
            &mut tx,
            caller,
            now,
            "provider.register",
            &provider.id,
            json!({"offers": offers.len()}),
        )
        .await?;
        tx.commit().await?;
        Ok(ProviderRecord {
            id: provider.id.clone(),
            name: provider.name.trim().to_owned(),
            offers,
        })
    }

    /// Replaces a provider's offers (the provider itself, or officers).
    pub async fn set_offers(
        &self,
        caller: &Caller,
        provider: &str,
        offers: &[Offer],
    ) -> Result<ProviderRecord, PortalError> {
        if !(caller.role.is_officer() || caller.provider.as_deref() == Some(provider)) {
            return Err(PortalError::Forbidden(format!(
                "only provider {provider} and programme officers change its offers"
            )));
        }
        let offers = checked_offers(offers)?;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM providers WHERE id = $1")
            .bind(provider)
            .fetch_optional(&mut *tx)
            .await?;
        let name = name.ok_or_else(|| PortalError::not_found("provider", provider))?;
        sqlx::query("DELETE FROM offers WHERE provider_id = $1")
            .bind(provider)
            .execute(&mut *tx)
            .await?;
        write_offers(&mut tx, provider, &offers).await?;
        audit(
            &mut tx,
            caller,
            now,
            "provider.offers",
            provider,
            json!({"offers": offers}),
        )
        .await?;
        tx.commit().await?;
        Ok(ProviderRecord {
            id: provider.to_owned(),
            name,
            offers,
        })
    }

    /// The provider directory (everyone signed in).
    pub async fn providers(&self, caller: &Caller) -> Result<Vec<ProviderRecord>, PortalError> {
        let mut tx = self.begin(caller).await?;
        let rows = sqlx::query(
            "SELECT p.id, p.name, o.scenario, o.stage FROM providers p \
             LEFT JOIN offers o ON o.provider_id = p.id ORDER BY p.id, o.scenario",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out: Vec<ProviderRecord> = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            if out.last().is_none_or(|p| p.id != id) {
                out.push(ProviderRecord {
                    id: id.clone(),
                    name: row.try_get("name")?,
                    offers: Vec::new(),
                });
            }
            let scenario: Option<String> = row.try_get("scenario")?;
            let stage: Option<String> = row.try_get("stage")?;
            if let (Some(scenario), Some(stage), Some(last)) = (scenario, stage, out.last_mut()) {
                last.offers.push(Offer {
                    scenario,
                    stage: stage.parse().ok(),
                });
            }
        }
        Ok(out)
    }

    /// Adds a user and returns its first API token, valid for [`crate::TOKEN_DAYS`] (shown once;
    /// only its hash is kept).
    pub async fn add_user(
        &self,
        caller: &Caller,
        user: &NewUser,
    ) -> Result<IssuedToken, PortalError> {
        require_officer(caller, "add users")?;
        if user.role == Role::System {
            return Err(PortalError::invalid("`system` is not a user's role"));
        }
        match (user.role, &user.plant, &user.provider) {
            (Role::Plant, Some(_), None) | (Role::Provider, None, Some(_)) => {}
            (Role::Officer | Role::Assessor, None, None) => {}
            (Role::Plant, _, _) => {
                return Err(PortalError::invalid(
                    "a plant user names its plant (and no provider)",
                ));
            }
            (Role::Provider, _, _) => {
                return Err(PortalError::invalid(
                    "a provider user names its provider (and no plant)",
                ));
            }
            _ => {
                return Err(PortalError::invalid(
                    "officers and assessors belong to no plant or provider",
                ));
            }
        }
        self.insert_user(caller, user, new_token()).await
    }

    /// Adds a user with a token chosen by the caller (seeding, tests), valid for
    /// [`crate::TOKEN_DAYS`].
    pub async fn add_user_with_token(
        &self,
        caller: &Caller,
        user: &NewUser,
        token: &str,
    ) -> Result<(), PortalError> {
        self.insert_user(caller, user, token.to_owned()).await?;
        Ok(())
    }

    async fn insert_user(
        &self,
        caller: &Caller,
        user: &NewUser,
        token: String,
    ) -> Result<IssuedToken, PortalError> {
        require_officer(caller, "add users")?;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        sqlx::query(
            "INSERT INTO users (name, role, plant_id, provider_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(user.plant.as_deref())
        .bind(user.provider.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (id, expires_at_ms) = insert_token(&mut tx, &user.name, &token, now, None).await?;
        audit(
            &mut tx,
            caller,
            now,
            "user.add",
            &user.name,
            json!({"role": user.role, "plant": user.plant, "provider": user.provider,
                   "token": id, "expires_at_ms": expires_at_ms}),
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedToken {
            id,
            user: user.name.clone(),
            token,
            created_at_ms: now,
            expires_at_ms,
        })
    }

    /// The users the caller may see: officers every user, a plant's or provider's people their
    /// own organisation's (row-level security decides).
    pub async fn users(&self, caller: &Caller) -> Result<Vec<UserRecord>, PortalError> {
        let mut tx = self.begin(caller).await?;
        let rows = sqlx::query(
            "SELECT name, role, plant_id, provider_id, password_hash IS NOT NULL AS has_password, \
                    created_at_ms FROM users ORDER BY name LIMIT 10000",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(UserRecord {
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    plant: r.try_get("plant_id")?,
                    provider: r.try_get("provider_id")?,
                    has_password: r.try_get("has_password")?,
                    created_at_ms: r.try_get("created_at_ms")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(PortalError::from)
    }

    /// Sets (or with `plants` = 0 keeps at zero) a target (officers).
    pub async fn set_target(&self, caller: &Caller, target: &Target) -> Result<(), PortalError> {
        require_officer(caller, "set targets")?;
        if !(1..=3).contains(&target.tier) {
            return Err(PortalError::invalid("tier: 1, 2 or 3"));
        }
        if target.plants < 0 {
            return Err(PortalError::invalid("plants: zero or more"));
        }
        check_text("district", &target.district, 80)?;
        check_text("industry", &target.industry, 80)?;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        sqlx::query(
            "INSERT INTO targets (year, district, industry, tier, plants) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (year, district, industry, tier) DO UPDATE SET plants = excluded.plants",
        )
        .bind(target.year)
        .bind(&target.district)
        .bind(&target.industry)
        .bind(i16::from(target.tier))
        .bind(target.plants)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            caller,
            now,
            "target.set",
            &format!("{}/{}/{}", target.year, target.district, target.industry),
            serde_json::to_value(target).unwrap_or_default(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Progress toward the year's targets by district and industry (staff), from each plant's
    /// latest verified tier.
    pub async fn targets_dashboard(
        &self,
        caller: &Caller,
        year: i32,
    ) -> Result<TargetsDashboard, PortalError> {
        if !caller.role.is_staff() {
            return Err(PortalError::Forbidden(
                "the targets dashboard is for programme staff".into(),
            ));
        }
        let mut tx = self.begin(caller).await?;
        let rows = sqlx::query(
            "SELECT district, industry, count(*) AS plants, \
                    count(*) FILTER (WHERE tier >= 1) AS t1, count(*) FILTER (WHERE tier >= 2) AS t2, \
                    count(*) FILTER (WHERE tier >= 3) AS t3, \
                    count(*) FILTER (WHERE benchmark_since_ms IS NOT NULL) AS benchmarks \
             FROM plants GROUP BY district, industry ORDER BY district, industry",
        )
        .fetch_all(&mut *tx)
        .await?;
        let targets =
            sqlx::query("SELECT district, industry, tier, plants FROM targets WHERE year = $1")
                .bind(year)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let mut out: Vec<TargetRow> = Vec::new();
        for row in &rows {
            out.push(TargetRow {
                district: row.try_get("district")?,
                industry: row.try_get("industry")?,
                plants: row.try_get("plants")?,
                at_least: [row.try_get("t1")?, row.try_get("t2")?, row.try_get("t3")?],
                benchmarks: row.try_get("benchmarks")?,
                targets: [None; 3],
                progress: [None; 3],
            });
        }
        // District-wide targets (`*`) get a line of their own, summing the district's plants.
        let mut district_totals: Vec<TargetRow> = Vec::new();
        for t in &targets {
            let industry: String = t.try_get("industry")?;
            if industry != "*" {
                continue;
            }
            let district: String = t.try_get("district")?;
            if district_totals.iter().any(|r| r.district == district) {
                continue;
            }
            let mut total = TargetRow {
                district: district.clone(),
                industry: "*".into(),
                plants: 0,
                at_least: [0; 3],
                benchmarks: 0,
                targets: [None; 3],
                progress: [None; 3],
            };
            for r in out.iter().filter(|r| r.district == district) {
                total.plants += r.plants;
                total.benchmarks += r.benchmarks;
                for i in 0..3 {
                    total.at_least[i] += r.at_least[i];
                }
            }
            district_totals.push(total);
        }
        out.extend(district_totals);
        for t in &targets {
            let district: String = t.try_get("district")?;
            let industry: String = t.try_get("industry")?;
            let tier: i16 = t.try_get("tier")?;
            let plants: i32 = t.try_get("plants")?;
            let Some(index) = usize::try_from(tier - 1).ok().filter(|i| *i < 3) else {
                continue;
            };
            match out
                .iter_mut()
                .find(|r| r.district == district && r.industry == industry)
            {
                Some(row) => row.targets[index] = Some(plants),
                None => {
                    let mut row = TargetRow {
                        district,
                        industry,
                        plants: 0,
                        at_least: [0; 3],
                        benchmarks: 0,
                        targets: [None; 3],
                        progress: [None; 3],
                    };
                    row.targets[index] = Some(plants);
                    out.push(row);
                }
            }
        }
        for row in &mut out {
            for i in 0..3 {
                row.progress[i] = row.targets[i].map(|t| {
                    if t == 0 {
                        1.0
                    } else {
                        row.at_least[i] as f64 / f64::from(t)
                    }
                });
            }
        }
        out.sort_by(|a, b| (&a.district, &a.industry).cmp(&(&b.district, &b.industry)));
        let plain = out.iter().filter(|r| r.industry != "*");
        let mut dashboard = TargetsDashboard {
            year,
            plants: 0,
            at_least: [0; 3],
            benchmarks: 0,
            rows: Vec::new(),
        };
        for r in plain {
            dashboard.plants += r.plants;
            dashboard.benchmarks += r.benchmarks;
            for i in 0..3 {
                dashboard.at_least[i] += r.at_least[i];
            }
        }
        dashboard.rows = out;
        Ok(dashboard)
    }
}

/// Reads a registry CSV (`id,name,industry,district,revenue_myuan[,public_key]`, a header row
/// first) into plants to register; every bad row is reported as `file:line: what`, and nothing
/// is returned unless every row is good.
pub fn parse_plants_csv(file: &str, text: &str) -> Result<Vec<NewPlant>, Vec<String>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Row {
        id: String,
        name: String,
        industry: String,
        district: String,
        revenue_myuan: f64,
        #[serde(default)]
        public_key: Option<String>,
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut plants = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        // Line 1 is the header.
        let line = i + 2;
        match row {
            Err(e) => errors.push(format!("{file}:{line}: {e}")),
            Ok(r) => {
                let plant = NewPlant {
                    id: r.id,
                    name: r.name,
                    industry: r.industry,
                    district: r.district,
                    revenue_myuan: r.revenue_myuan,
                    public_key: r.public_key.filter(|k| !k.is_empty()),
                };
                if let Err(e) = check_new_plant(&plant) {
                    errors.push(format!("{file}:{line}: {e}"));
                } else if !seen.insert(plant.id.clone()) {
                    errors.push(format!("{file}:{line}: plant {} is listed twice", plant.id));
                } else {
                    plants.push(plant);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(plants)
    } else {
        Err(errors)
    }
}

/// The checks a new plant passes before the database sees it.
fn check_new_plant(plant: &NewPlant) -> Result<(), PortalError> {
    check_id("plant", &plant.id)?;
    check_text("name", &plant.name, 200)?;
    check_text("industry", &plant.industry, 80)?;
    check_text("district", &plant.district, 80)?;
    if !(plant.revenue_myuan.is_finite() && plant.revenue_myuan >= 0.0) {
        return Err(PortalError::invalid(
            "revenue_myuan: annual revenue in million yuan, zero or more",
        ));
    }
    if let Some(key) = &plant.public_key {
        check_public_key(key)?;
    }
    Ok(())
}

fn checked_offers(offers: &[Offer]) -> Result<Vec<Offer>, PortalError> {
    let mut out: Vec<Offer> = Vec::new();
    for offer in offers {
        let stage = scenario_stage(&offer.scenario, offer.stage)?;
        if out.iter().any(|o| o.scenario == offer.scenario) {
            return Err(PortalError::invalid(format!(
                "offer {} is listed twice",
                offer.scenario
            )));
        }
        out.push(Offer {
            scenario: offer.scenario.clone(),
            stage: Some(stage),
        });
    }
    Ok(out)
}

async fn write_offers(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    provider: &str,
    offers: &[Offer],
) -> Result<(), PortalError> {
    for offer in offers {
        sqlx::query("INSERT INTO offers (provider_id, scenario, stage) VALUES ($1, $2, $3)")
            .bind(provider)
            .bind(&offer.scenario)
            .bind(offer.stage.map(LifecycleStage::as_str))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_csv_reads_or_says_which_rows_are_wrong() {
        let good = "id,name,industry,district,revenue_myuan,public_key\n\
                    HZ-1,Works one,textiles,Xiaoshan,35.5,\n\
                    HZ-2, Works two ,food,Yuhang,8,\n";
        let plants = parse_plants_csv("r.csv", good).unwrap();
        assert_eq!(plants.len(), 2);
        assert_eq!(plants[1].name, "Works two");
        let bad = "id,name,industry,district,revenue_myuan\n\
                   HZ-1,Works one,textiles,Xiaoshan,lots\n\
                   HZ 2,Works two,food,Yuhang,8\n\
                   HZ-3,Works three,food,Yuhang,-1\n\
                   HZ-4,Works four,food,Yuhang,3\n\
                   HZ-4,Works four again,food,Yuhang,3\n";
        let errors = parse_plants_csv("r.csv", bad).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("r.csv:2:"), "{errors:?}");
        assert!(
            errors[1].starts_with("r.csv:3:") && errors[1].contains("plant id"),
            "{errors:?}"
        );
        assert!(
            errors[2].starts_with("r.csv:4:") && errors[2].contains("revenue"),
            "{errors:?}"
        );
        assert!(
            errors[3].starts_with("r.csv:6:") && errors[3].contains("twice"),
            "{errors:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_reads_or_fails_without_panicking(text in "\\PC{0,300}") {
            let _ = parse_plants_csv("x.csv", &text);
        }
    }
}
