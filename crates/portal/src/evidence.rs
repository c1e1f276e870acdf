//! Evidence in: a plant's signed bundle is parsed, verified (signature, hash chain, head,
//! recomputed tier — `aifactory_assess::verify`), checked against what the portal already holds
//! for the plant (the pinned key; a ledger that only grows from the head accepted before), and
//! recorded — accepted with its tier, or refused with the reason. Both are history.

use crate::error::PortalError;
use crate::model::Caller;
use crate::portal::{Named, Portal, audit, require};
use aifactory_assess::{Assessment, EvidenceBundle};
use aifactory_core::Timestamp;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// One bundle as the portal recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceRecord {
    pub id: i64,
    pub plant: String,
    pub received_at_ms: i64,
    pub via: String,
    pub bundle_sha256: String,
    pub accepted: bool,
    /// Why it was refused (absent when accepted).
    pub reason: Option<String>,
    pub generated_at_ms: Option<i64>,
    pub claimed_tier: Option<i16>,
    /// The tier the portal recomputed (accepted bundles only).
    pub tier: Option<i16>,
    pub entries: Option<i64>,
    pub ledger_head: Option<String>,
    pub scenario_share: Option<f64>,
    pub streaming_share: Option<f64>,
    /// Depth per stage: design, testing, production, management, sales.
    pub depths: Option<Vec<i16>>,
    pub missing_for_next_tier: Option<serde_json::Value>,
}

const EVIDENCE_COLUMNS: &str = "id, plant_id, received_at_ms, via, bundle_sha256, accepted, reason, \
    generated_at_ms, claimed_tier, tier, entries, ledger_head, scenario_share, streaming_share, depths, \
    missing_for_next_tier::text AS missing";

fn evidence_from_row(row: &PgRow) -> Result<EvidenceRecord, sqlx::Error> {
    let missing: Option<String> = row.try_get("missing")?;
    Ok(EvidenceRecord {
        id: row.try_get("id")?,
        plant: row.try_get("plant_id")?,
        received_at_ms: row.try_get("received_at_ms")?,
        via: row.try_get("via")?,
        bundle_sha256: row.try_get("bundle_sha256")?,
        accepted: row.try_get("accepted")?,
        reason: row.try_get("reason")?,
        generated_at_ms: row.try_get("generated_at_ms")?,
        claimed_tier: row.try_get("claimed_tier")?,
        tier: row.try_get("tier")?,
        entries: row.try_get("entries")?,
        ledger_head: row.try_get("ledger_head")?,
        scenario_share: row.try_get("scenario_share")?,
        streaming_share: row.try_get("streaming_share")?,
        depths: row.try_get("depths")?,
        missing_for_next_tier: missing.and_then(|m| serde_json::from_str(&m).ok()),
    })
}

/// How a bundle reached the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Upload,
    Nats,
    Seed,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Upload => "upload",
            Via::Nats => "nats",
            Via::Seed => "seed",
        }
    }
}

/// What verification made of the bytes, before the portal's own history is consulted.
struct Checked {
    sha256: String,
    bundle: Option<EvidenceBundle>,
    verdict: Result<Assessment, String>,
}

/// Parses and verifies; CPU only, so it runs off the async threads.
fn check(bytes: &[u8]) -> Checked {
    let sha256 = hex::encode(Sha256::digest(bytes));
    match serde_json::from_slice::<EvidenceBundle>(bytes) {
        Err(e) => Checked {
            sha256,
            bundle: None,
            verdict: Err(format!("not an evidence bundle: {e}")),
        },
        Ok(bundle) => {
            let verdict = aifactory_assess::verify(&bundle).map_err(|e| e.to_string());
            Checked {
                sha256,
                bundle: Some(bundle),
                verdict,
            }
        }
    }
}

fn date(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

impl Portal {
    /// Takes a plant's evidence bundle. Accepted: the recorded evidence with the recomputed
    /// tier, and the plant's tier follows it. Refused: [`PortalError::Evidence`] with the
    /// reason, and the refusal is recorded in the plant's history too.
    pub async fn submit_evidence(
        &self,
        caller: &Caller,
        plant: &str,
        bytes: Vec<u8>,
    ) -> Result<EvidenceRecord, PortalError> {
        self.submit_evidence_via(caller, plant, bytes, Via::Upload)
            .await
    }

    pub(crate) async fn submit_evidence_via(
        &self,
        caller: &Caller,
        plant: &str,
        bytes: Vec<u8>,
        via: Via,
    ) -> Result<EvidenceRecord, PortalError> {
        if !(caller.role.is_officer() || caller.plant.as_deref() == Some(plant)) {
            return Err(PortalError::Forbidden(format!(
                "only plant {plant} and programme officers submit its evidence"
            )));
        }
        let checked = tokio::task::spawn_blocking(move || check(&bytes))
            .await
            .map_err(|e| PortalError::Invalid(format!("verifying the bundle failed: {e}")))?;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        // One submission per plant at a time: the continuity check reads what the last wrote.
        let row = sqlx::query(
            "SELECT public_key, ledger_entries, ledger_head, last_generated_at_ms, tier_at_ms \
             FROM plants WHERE id = $1 FOR UPDATE",
        )
        .bind(plant)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| PortalError::not_found("plant", plant))?;
        let pinned_key: Option<String> = row.try_get("public_key")?;
        let accepted_entries: i64 = row.try_get("ledger_entries")?;
        let accepted_head: Option<String> = row.try_get("ledger_head")?;
        let last_generated: Option<i64> = row.try_get("last_generated_at_ms")?;
        let accepted_at: Option<i64> = row.try_get("tier_at_ms")?;

        let refusal: Option<String> = match (&checked.bundle, &checked.verdict) {
            (_, Err(reason)) => Some(reason.clone()),
            (None, Ok(_)) => Some("not an evidence bundle".into()),
            (Some(bundle), Ok(_)) => {
                let entries = bundle.ledger.len() as i64;
                if via == Via::Nats && pinned_key.is_none() {
                    // Over NATS the signature is the only identity: it must match a key on record.
                    Some(format!(
                        "plant {plant} has no evidence key on record: register its key, or upload its first bundle over HTTPS"
                    ))
                } else if bundle.plant != plant {
                    Some(format!(
                        "the bundle is plant {:?}'s evidence, not {plant}'s",
                        bundle.plant
                    ))
                } else if pinned_key
                    .as_deref()
                    .is_some_and(|k| !k.eq_ignore_ascii_case(&bundle.public_key))
                {
                    Some(format!(
                        "signed with key {}, but plant {plant}'s evidence key is {}",
                        bundle.public_key,
                        pinned_key.as_deref().unwrap_or_default()
                    ))
                } else if entries < accepted_entries {
                    Some(format!(
                        "the ledger has {entries} entries, fewer than the {accepted_entries} accepted on {}: a ledger only grows",
                        date(accepted_at.unwrap_or_default())
                    ))
                } else if accepted_entries > 0
                    && bundle
                        .ledger
                        .get((accepted_entries - 1) as usize)
                        .map(|e| &e.hash)
                        != accepted_head.as_ref()
                {
                    Some(format!(
                        "ledger entry {accepted_entries} differs from the one accepted on {}: the history was rewritten",
                        date(accepted_at.unwrap_or_default())
                    ))
                } else if last_generated.is_some_and(|g| bundle.generated_at.0 < g) {
                    Some(format!(
                        "generated at {}, before the evidence already accepted ({})",
                        bundle.generated_at,
                        date(last_generated.unwrap_or_default())
                    ))
                } else {
                    None
                }
            }
        };

        if let Some(reason) = refusal {
            let claimed = checked
                .bundle
                .as_ref()
                .map(|b| i16::from(b.assessment.tier));
            let record = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO evidence (plant_id, received_at_ms, via, bundle_sha256, accepted, reason, \
                 generated_at_ms, claimed_tier, public_key) VALUES ($1, $2, $3, $4, false, $5, $6, $7, $8) \
                 RETURNING {EVIDENCE_COLUMNS}"
            )))
            .bind(plant)
            .bind(now)
            .bind(via.as_str())
            .bind(&checked.sha256)
            .bind(&reason)
            .bind(checked.bundle.as_ref().map(|b| b.generated_at.0))
            .bind(claimed)
            .bind(checked.bundle.as_ref().map(|b| b.public_key.clone()))
            .fetch_one(&mut *tx)
            .await?;
            let record = evidence_from_row(&record)?;
            audit(
                &mut tx,
                caller,
                now,
                "evidence.refuse",
                plant,
                json!({"evidence": record.id, "reason": reason, "sha256": checked.sha256}),
            )
            .await?;
            tx.commit().await?;
            return Err(PortalError::Evidence(reason));
        }
        let (Some(bundle), Ok(assessment)) = (checked.bundle, checked.verdict) else {
            return Err(PortalError::invalid("not an evidence bundle"));
        };
        let entries = bundle.ledger.len() as i64;
        if entries == accepted_entries && accepted_head.as_deref() == Some(&bundle.ledger_head) {
            // The same ledger again (a resend): nothing new to record.
            let latest = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE plant_id = $1 AND accepted \
                 ORDER BY id DESC LIMIT 1"
            )))
            .bind(plant)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(evidence_from_row(&latest)?);
        }
        let depths: Vec<i16> = assessment
            .stages
            .iter()
            .map(|s| i16::from(s.depth))
            .collect();
        let missing = serde_json::to_string(&assessment.missing_for_next_tier).unwrap_or_default();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO evidence (plant_id, received_at_ms, via, bundle_sha256, accepted, reason, \
             generated_at_ms, claimed_tier, tier, entries, ledger_head, public_key, scenario_share, \
             streaming_share, depths, missing_for_next_tier) \
             VALUES ($1, $2, $3, $4, true, NULL, $5, $6, $6, $7, $8, $9, $10, $11, $12, $13::jsonb) \
             RETURNING {EVIDENCE_COLUMNS}"
        )))
        .bind(plant)
        .bind(now)
        .bind(via.as_str())
        .bind(&checked.sha256)
        .bind(bundle.generated_at.0)
        .bind(i16::from(assessment.tier))
        .bind(entries)
        .bind(&bundle.ledger_head)
        .bind(&bundle.public_key)
        .bind(assessment.scenario_share)
        .bind(assessment.streaming_share)
        .bind(&depths)
        .bind(missing)
        .fetch_one(&mut *tx)
        .await?;
        let record = evidence_from_row(&row)?;
        sqlx::query(
            "UPDATE plants SET tier = $2, tier_at_ms = $3, ledger_entries = $4, ledger_head = $5, \
             last_generated_at_ms = $6, public_key = coalesce(public_key, $7) WHERE id = $1",
        )
        .bind(plant)
        .bind(i16::from(assessment.tier))
        .bind(now)
        .bind(entries)
        .bind(&bundle.ledger_head)
        .bind(bundle.generated_at.0)
        .bind(bundle.public_key.to_ascii_lowercase())
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            caller,
            now,
            "evidence.accept",
            plant,
            json!({"evidence": record.id, "tier": assessment.tier, "entries": entries, "sha256": record.bundle_sha256}),
        )
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// A plant's evidence history, newest first (the plant itself and staff).
    pub async fn evidence_history(
        &self,
        caller: &Caller,
        plant: &str,
        limit: i64,
    ) -> Result<Vec<EvidenceRecord>, PortalError> {
        if !caller.owns_plant(plant) {
            return Err(PortalError::Forbidden(format!(
                "plant {plant}'s evidence is not yours to read"
            )));
        }
        let mut tx = self.begin(caller).await?;
        require(&mut tx, Named::Plant, plant).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE plant_id = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(plant)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(evidence_from_row)
            .collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{self, CitySpec};
    use proptest::prelude::*;

    fn genuine() -> (EvidenceBundle, Vec<u8>) {
        let spec = CitySpec {
            plants: 12,
            providers: 1,
            decisions_per_skill: 2,
            ..CitySpec::default()
        };
        let plant = seed::city(&spec)
            .into_iter()
            .find(|p| p.maturity >= 2)
            .expect("a plant with decisions");
        let bundle = seed::bundle(&plant, &spec, 3).expect("signs");
        let bytes = serde_json::to_vec(&bundle).expect("encodes");
        (bundle, bytes)
    }

    #[test]
    fn a_genuine_bundle_checks() {
        let (_, bytes) = genuine();
        assert!(check(&bytes).verdict.is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn arbitrary_bytes_are_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert!(check(&bytes).verdict.is_err());
        }

        #[test]
        fn a_changed_byte_is_refused_unless_it_changes_nothing(at in any::<prop::sample::Index>(), to in any::<u8>()) {
            let (original, mut bytes) = genuine();
            let i = at.index(bytes.len());
            bytes[i] = to;
            let checked = check(&bytes);
            if checked.verdict.is_ok() {
                prop_assert_eq!(checked.bundle.as_ref(), Some(&original));
            }
        }
    }
}
