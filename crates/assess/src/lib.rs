//! The AI-factory tier as a computed fact. This crate owns the hash-chained decision ledger
//! format ([`ledger`]), the tier rules — per-stage depth, typical scenarios, the links of a shared
//! plan, the plant's tier and what is missing for the next ([`rules`], documented in
//! `docs/TIERS.md`) — the signed evidence bundle ([`bundle`]) and its HTML report ([`report`]).
//!
//! It must never take a tier from anything but evidence: no declared tiers, no questionnaire
//! answers, no I/O and no clock (callers pass the ledger, the coverage and the time).

pub mod bundle;
pub mod ledger;
pub mod report;
pub mod rules;

pub use bundle::{BundleError, EvidenceBundle, sign, signing_key, verify};
pub use ledger::{ChainError, Ledger, LedgerEntry, Record, verify_chain};
pub use rules::{Assessment, Coverage, StageAssessment, assess};
