//! What every adapter produces: one value of one signal at one time.

use serde::Serialize;

/// Which signal a value belongs to: the one series name from the plant to the store. Sparkplug:
/// group → `site`, edge node → `node`, device → `device` (empty for node metrics); JSON topics:
/// `aifactory/{site}/{machine}/{signal}` → site, node = machine, no device.
pub use aifactory_core::SeriesName;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    /// The value as a number for time series (booleans as 0/1); `None` for text and bytes.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            Value::Text(_) | Value::Bytes(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub series: SeriesName,
    /// Milliseconds since the Unix epoch, from the source (acquisition time).
    pub timestamp_ms: i64,
    pub value: Value,
    /// The message sequence number it came in (Sparkplug `seq`, JSON `seq`), which makes a
    /// redelivered message recognisable: (series, timestamp, seq) is unique.
    pub seq: Option<u64>,
}
