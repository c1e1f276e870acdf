//! The evidence bundle: a plant's ledger, its data coverage and the assessment computed from
//! them, signed with the plant's ed25519 key. Verification checks the signature, the hash
//! chain, that the head matches, and recomputes the assessment — a bundle cannot claim a tier
//! its own ledger does not earn.

use crate::ledger::{ChainError, GENESIS, LedgerEntry, canonical, verify_chain};
use crate::rules::{Assessment, Coverage, assess};
use aifactory_core::Timestamp;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Written into every bundle; verification refuses any other.
pub const FORMAT: &str = "aifactory-evidence/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceBundle {
    pub format: String,
    pub plant: String,
    pub generated_at: Timestamp,
    pub coverage: Coverage,
    pub ledger: Vec<LedgerEntry>,
    /// Hash of the last ledger entry.
    pub ledger_head: String,
    pub assessment: Assessment,
    /// The signer's ed25519 public key (hex).
    pub public_key: String,
    /// ed25519 signature (hex) over the canonical JSON of the bundle with this field empty.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BundleError {
    #[error("not an evidence bundle of format {FORMAT}: {0:?}")]
    Format(String),
    #[error("public key: {0}")]
    Key(String),
    #[error(
        "signature does not match the bundle's content (the bundle was changed after signing, or signed by another key)"
    )]
    Signature,
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("ledger head {claimed} is not the hash of the last entry ({actual})")]
    Head { claimed: String, actual: String },
    #[error("the bundle claims tier {claimed}, its ledger and coverage give tier {recomputed}")]
    Assessment { claimed: u8, recomputed: u8 },
    #[error("the bundle's assessment details differ from those its ledger gives")]
    AssessmentDetail,
    #[error("encoding: {0}")]
    Encoding(String),
}

fn signed_bytes(bundle: &EvidenceBundle) -> Result<Vec<u8>, BundleError> {
    let unsigned = EvidenceBundle {
        signature: String::new(),
        ..bundle.clone()
    };
    canonical(&unsigned)
        .map(String::into_bytes)
        .map_err(|e| BundleError::Encoding(e.to_string()))
}

/// Assesses `ledger` and signs the result.
pub fn sign(
    plant: &str,
    generated_at: Timestamp,
    coverage: Coverage,
    ledger: Vec<LedgerEntry>,
    key: &SigningKey,
) -> Result<EvidenceBundle, BundleError> {
    verify_chain(&ledger)?;
    let assessment = assess(&ledger, &coverage);
    let mut bundle = EvidenceBundle {
        format: FORMAT.to_owned(),
        plant: plant.to_owned(),
        generated_at,
        ledger_head: ledger
            .last()
            .map_or_else(|| GENESIS.to_owned(), |e| e.hash.clone()),
        coverage,
        ledger,
        assessment,
        public_key: hex::encode(key.verifying_key().to_bytes()),
        signature: String::new(),
    };
    let signature = key.sign(&signed_bytes(&bundle)?);
    bundle.signature = hex::encode(signature.to_bytes());
    Ok(bundle)
}

/// Verifies a bundle and returns the assessment recomputed from its evidence.
pub fn verify(bundle: &EvidenceBundle) -> Result<Assessment, BundleError> {
    if bundle.format != FORMAT {
        return Err(BundleError::Format(bundle.format.clone()));
    }
    let key_bytes: [u8; 32] = hex::decode(&bundle.public_key)
        .map_err(|e| BundleError::Key(e.to_string()))?
        .try_into()
        .map_err(|_| BundleError::Key("must be 32 bytes".into()))?;
    let key = VerifyingKey::from_bytes(&key_bytes).map_err(|e| BundleError::Key(e.to_string()))?;
    let signature_bytes: [u8; 64] = hex::decode(&bundle.signature)
        .map_err(|_| BundleError::Signature)?
        .try_into()
        .map_err(|_| BundleError::Signature)?;
    let signature = Signature::from_bytes(&signature_bytes);
    // The chain first: an edited row is named even when the signature also fails.
    verify_chain(&bundle.ledger)?;
    key.verify(&signed_bytes(bundle)?, &signature)
        .map_err(|_| BundleError::Signature)?;
    let actual = bundle
        .ledger
        .last()
        .map_or_else(|| GENESIS.to_owned(), |e| e.hash.clone());
    if bundle.ledger_head != actual {
        return Err(BundleError::Head {
            claimed: bundle.ledger_head.clone(),
            actual,
        });
    }
    let recomputed = assess(&bundle.ledger, &bundle.coverage);
    if recomputed.tier != bundle.assessment.tier {
        return Err(BundleError::Assessment {
            claimed: bundle.assessment.tier,
            recomputed: recomputed.tier,
        });
    }
    if recomputed != bundle.assessment {
        return Err(BundleError::AssessmentDetail);
    }
    Ok(recomputed)
}

/// A signing key from 32 secret bytes (e.g. read from the plant's key file).
pub fn signing_key(secret: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(secret)
}
