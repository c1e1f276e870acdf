//! Scenario matching: plants post needs (a typical scenario of the tier rules, hence its
//! stage), providers post offers, and the portal pairs them — the same scenario first, then
//! providers who deliver other scenarios of the same stage.

use crate::error::PortalError;
use crate::model::{Caller, Role};
use crate::portal::{Named, Portal, audit, require};
use crate::registry::scenario_stage;
use aifactory_core::LifecycleStage;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use sqlx::postgres::PgRow;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNeed {
    /// The plant in need: a plant user's own by default; officers name it.
    #[serde(default)]
    pub plant: Option<String>,
    pub scenario: String,
    #[serde(default)]
    pub stage: Option<LifecycleStage>,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeedRecord {
    pub id: i64,
    pub plant: String,
    pub scenario: String,
    pub stage: String,
    pub title: String,
    pub posted_at_ms: i64,
    pub open: bool,
}

fn need_from_row(row: &PgRow) -> Result<NeedRecord, sqlx::Error> {
    Ok(NeedRecord {
        id: row.try_get("id")?,
        plant: row.try_get("plant_id")?,
        scenario: row.try_get("scenario")?,
        stage: row.try_get("stage")?,
        title: row.try_get("title")?,
        posted_at_ms: row.try_get("posted_at_ms")?,
        open: row.try_get("open")?,
    })
}

/// A provider for a need, or a need for a provider.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub need: i64,
    pub plant: String,
    pub scenario: String,
    pub stage: String,
    pub title: String,
    pub provider: String,
    pub provider_name: String,
    /// `scenario` (delivers exactly this) or `stage` (delivers other scenarios of the stage).
    pub fit: String,
    /// How many scenarios of the stage the provider delivers.
    pub stage_offers: i64,
}

const MATCH_QUERY: &str = "SELECT n.id AS need, n.plant_id, n.scenario, n.stage, n.title, \
        p.id AS provider, p.name AS provider_name, \
        bool_or(o.scenario = n.scenario) AS exact, count(*) AS stage_offers \
     FROM needs n JOIN offers o ON o.stage = n.stage JOIN providers p ON p.id = o.provider_id \
     WHERE n.open AND ($1::bigint IS NULL OR n.id = $1) AND ($2::text IS NULL OR p.id = $2) \
     GROUP BY n.id, p.id \
     ORDER BY n.id, bool_or(o.scenario = n.scenario) DESC, count(*) DESC, p.id LIMIT $3";

fn match_from_row(row: &PgRow) -> Result<Match, sqlx::Error> {
    let exact: bool = row.try_get("exact")?;
    Ok(Match {
        need: row.try_get("need")?,
        plant: row.try_get("plant_id")?,
        scenario: row.try_get("scenario")?,
        stage: row.try_get("stage")?,
        title: row.try_get("title")?,
        provider: row.try_get("provider")?,
        provider_name: row.try_get("provider_name")?,
        fit: if exact { "scenario" } else { "stage" }.into(),
        stage_offers: row.try_get("stage_offers")?,
    })
}

impl Portal {
    /// Posts a need for a plant (the plant itself, or an officer on its behalf).
    pub async fn post_need(
        &self,
        caller: &Caller,
        need: &NewNeed,
    ) -> Result<NeedRecord, PortalError> {
        let plant = match (caller.role, &caller.plant, &need.plant) {
            (Role::Plant, Some(own), None) => own.clone(),
            (Role::Plant, Some(own), Some(named)) if named == own => own.clone(),
            (Role::Officer | Role::System, _, Some(named)) => named.clone(),
            (Role::Officer | Role::System, _, None) => {
                return Err(PortalError::invalid("plant: name the plant in need"));
            }
            _ => {
                return Err(PortalError::Forbidden(
                    "only a plant (for itself) and programme officers post needs".into(),
                ));
            }
        };
        let stage = scenario_stage(&need.scenario, need.stage)?;
        let title = need.title.trim();
        if title.is_empty() || title.chars().count() > 300 {
            return Err(PortalError::invalid("title: 1–300 characters"));
        }
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        require(&mut tx, Named::Plant, &plant).await?;
        let row = sqlx::query(
            "INSERT INTO needs (plant_id, scenario, stage, title, posted_at_ms) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, plant_id, scenario, stage, title, posted_at_ms, open",
        )
        .bind(&plant)
        .bind(&need.scenario)
        .bind(stage.as_str())
        .bind(title)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let record = need_from_row(&row)?;
        audit(
            &mut tx,
            caller,
            now,
            "need.post",
            &plant,
            json!({"need": record.id, "scenario": record.scenario}),
        )
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Needs the caller may see: a plant its own, a provider the open ones, staff all.
    pub async fn needs(&self, caller: &Caller) -> Result<Vec<NeedRecord>, PortalError> {
        let mut tx = self.begin(caller).await?;
        let rows = sqlx::query(
            "SELECT id, plant_id, scenario, stage, title, posted_at_ms, open FROM needs \
             ORDER BY id DESC LIMIT 500",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(need_from_row).collect::<Result<_, _>>()?)
    }

    /// Closes a need (its plant, or officers).
    pub async fn close_need(&self, caller: &Caller, id: i64) -> Result<NeedRecord, PortalError> {
        if !matches!(caller.role, Role::Plant | Role::Officer | Role::System) {
            return Err(PortalError::Forbidden(
                "only the plant and programme officers close a need".into(),
            ));
        }
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let row = sqlx::query(
            "UPDATE needs SET open = false WHERE id = $1 \
             RETURNING id, plant_id, scenario, stage, title, posted_at_ms, open",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| PortalError::not_found("need", id.to_string()))?;
        let record = need_from_row(&row)?;
        audit(
            &mut tx,
            caller,
            now,
            "need.close",
            &record.plant,
            json!({"need": id}),
        )
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Providers for one open need the caller may see, best fit first.
    pub async fn matches_for_need(
        &self,
        caller: &Caller,
        need: i64,
    ) -> Result<Vec<Match>, PortalError> {
        let mut tx = self.begin(caller).await?;
        let visible: Option<i64> = sqlx::query_scalar("SELECT id FROM needs WHERE id = $1")
            .bind(need)
            .fetch_optional(&mut *tx)
            .await?;
        if visible.is_none() {
            return Err(PortalError::not_found("need", need.to_string()));
        }
        let rows = sqlx::query(MATCH_QUERY)
            .bind(need)
            .bind(None::<String>)
            .bind(100_i64)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows.iter().map(match_from_row).collect::<Result<_, _>>()?)
    }

    /// Open needs a provider can serve, by its offers.
    pub async fn matches_for_provider(&self, caller: &Caller) -> Result<Vec<Match>, PortalError> {
        let Some(provider) = caller.provider.clone() else {
            return Err(PortalError::Forbidden(
                "matches by offer are for providers".into(),
            ));
        };
        let mut tx = self.begin(caller).await?;
        let rows = sqlx::query(MATCH_QUERY)
            .bind(None::<i64>)
            .bind(&provider)
            .bind(500_i64)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows.iter().map(match_from_row).collect::<Result<_, _>>()?)
    }
}
