//! Why a payload was refused. Each reason names what was wrong and where, for the quarantine
//! table and for the engineer who reads it.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    #[error("payload is {bytes} bytes; the limit is {limit}")]
    PayloadTooLarge { bytes: usize, limit: usize },
    #[error("topic `{topic}` is not a Sparkplug B topic: {why}")]
    NotSparkplugTopic { topic: String, why: String },
    #[error("topic `{topic}`: unknown Sparkplug message type `{kind}`")]
    UnknownMessageType { topic: String, kind: String },
    #[error("not a Sparkplug B protobuf payload: {0}")]
    MalformedProtobuf(String),
    #[error("{message} has no `seq`")]
    MissingSeq { message: String },
    #[error("{message} has seq {seq}; it must be 0..=255")]
    SeqOutOfRange { message: String, seq: u64 },
    #[error("{message}: metric {index} ({metric}) has no timestamp and neither has the payload")]
    MissingTimestamp {
        message: String,
        index: usize,
        metric: String,
    },
    #[error("{message} has no `bdSeq` metric (an integer)")]
    MissingBdSeq { message: String },
    #[error("{message} from {node} before its birth certificate; a rebirth was requested")]
    DataBeforeBirth { message: String, node: String },
    #[error(
        "{message}: metric {index} has alias {alias}, unknown since the last birth; a rebirth was requested"
    )]
    UnknownAlias {
        message: String,
        index: usize,
        alias: u64,
    },
    #[error(
        "{message}: metric {index} ({metric}) was not in the birth certificate; a rebirth was requested"
    )]
    UnknownMetric {
        message: String,
        index: usize,
        metric: String,
    },
    #[error("{message}: alias {alias} is given to both {first} and {second}")]
    DuplicateAlias {
        message: String,
        alias: u64,
        first: String,
        second: String,
    },
    #[error("{message}: metric {index} has neither a name nor an alias")]
    MetricWithoutName { message: String, index: usize },
    #[error("{message}: metric {index} ({metric}) is declared {datatype} but carries {carried}")]
    TypeMismatch {
        message: String,
        index: usize,
        metric: String,
        datatype: String,
        carried: String,
    },
    #[error("topic `{topic}` is not an aifactory JSON topic: {why}")]
    JsonTopic { topic: String, why: String },
    #[error("JSON payload is not valid JSON: {0}")]
    JsonSyntax(String),
    #[error("JSON payload: {0}")]
    JsonShape(String),
    #[error("{field}: value {value} is not a finite number")]
    NonFiniteValue { field: String, value: String },
    #[error("{field}: timestamp {value} ms is outside 1970..=9999")]
    TimestampOutOfRange { field: String, value: String },
    /// A plant-contract envelope with a field missing or wrong (`docs/PLANT-CONTRACT.md`).
    #[error("envelope {field}: {problem}")]
    Envelope { field: String, problem: String },
}

impl Reason {
    /// A stable short name for counters and the quarantine table's `reason_kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::PayloadTooLarge { .. } => "payload_too_large",
            Reason::NotSparkplugTopic { .. } => "not_sparkplug_topic",
            Reason::UnknownMessageType { .. } => "unknown_message_type",
            Reason::MalformedProtobuf(_) => "malformed_protobuf",
            Reason::MissingSeq { .. } => "missing_seq",
            Reason::SeqOutOfRange { .. } => "seq_out_of_range",
            Reason::MissingTimestamp { .. } => "missing_timestamp",
            Reason::MissingBdSeq { .. } => "missing_bdseq",
            Reason::DataBeforeBirth { .. } => "data_before_birth",
            Reason::UnknownAlias { .. } => "unknown_alias",
            Reason::UnknownMetric { .. } => "unknown_metric",
            Reason::DuplicateAlias { .. } => "duplicate_alias",
            Reason::MetricWithoutName { .. } => "metric_without_name",
            Reason::TypeMismatch { .. } => "type_mismatch",
            Reason::JsonTopic { .. } => "json_topic",
            Reason::JsonSyntax(_) => "json_syntax",
            Reason::JsonShape(_) => "json_shape",
            Reason::NonFiniteValue { .. } => "non_finite_value",
            Reason::TimestampOutOfRange { .. } => "timestamp_out_of_range",
            Reason::Envelope { .. } => "envelope",
        }
    }
}

/// A refused message as it goes to the quarantine table: where it came from, the raw bytes and
/// why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quarantine {
    pub topic: String,
    pub received_ms: i64,
    pub payload: Vec<u8>,
    pub reason: Reason,
}

/// The latest valid timestamp: 9999-12-31T23:59:59.999Z.
pub(crate) const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

pub(crate) fn check_timestamp(field: &str, ms: i64) -> Result<i64, Reason> {
    if (0..=MAX_TIMESTAMP_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(Reason::TimestampOutOfRange {
            field: field.to_owned(),
            value: ms.to_string(),
        })
    }
}
