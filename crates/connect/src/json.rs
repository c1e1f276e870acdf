//! Plain JSON topics for simple gateways (Node-RED flows, PLC scripts), documented in
//! `docs/CONNECT.md`:
//!
//! - `aifactory/{site}/{machine}/{signal}` with a bare value (`42.5`, `true`, `"RUN"`) or
//!   `{"value": 42.5, "ts": 1767225600000, "seq": 7}` (`ts` in ms since the epoch, default: when
//!   received; `seq` optional);
//! - `aifactory/{site}/{machine}` with `{"ts": …, "seq": …, "values": {"signal": value, …}}`
//!   for many signals of one machine at once.

use crate::quarantine::check_timestamp;
use crate::{MAX_PAYLOAD_BYTES, Point, Reason, SeriesName, Value};
use serde_json::Map;

/// The first topic level of every aifactory JSON topic.
pub const ROOT: &str = "aifactory";

/// One decoded JSON message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    pub points: Vec<Point>,
    /// Whether the message carried its own `ts`. Only then is a redelivery recognisable: without
    /// it, the same payload twice may well be two readings.
    pub timestamped: bool,
}

/// The node level of every series that comes in over plain JSON topics.
pub const NODE: &str = "mqtt";

/// Decodes one JSON message into points. `received_ms` stands in for a missing `ts`.
pub fn decode(topic: &str, payload: &[u8], received_ms: i64) -> Result<Decoded, Reason> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Reason::PayloadTooLarge {
            bytes: payload.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    let (site, machine, signal) = parse_topic(topic)?;
    let body: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| Reason::JsonSyntax(e.to_string()))?;
    // Named by the plant's own names — machine and signal — as every path names them; the
    // node says only which path brought them.
    let key = |metric: &str| SeriesName::new(site, NODE, machine, metric);
    match signal {
        Some(signal) => {
            let timestamped = matches!(&body, serde_json::Value::Object(f) if f.contains_key("ts"));
            let (value, ts, seq) = match &body {
                serde_json::Value::Object(fields) => {
                    let allowed = ["value", "ts", "seq"];
                    if let Some(extra) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
                        return Err(Reason::JsonShape(format!(
                            "unknown field `{extra}`; expected value, ts, seq"
                        )));
                    }
                    let value = fields
                        .get("value")
                        .ok_or_else(|| Reason::JsonShape("missing field `value`".to_owned()))?;
                    (
                        value_of("value", value)?,
                        timestamp_of(fields, received_ms)?,
                        seq_of(fields)?,
                    )
                }
                other => (value_of("payload", other)?, received_ms, None),
            };
            Ok(Decoded {
                points: vec![Point {
                    series: key(signal),
                    timestamp_ms: ts,
                    value,
                    seq,
                }],
                timestamped,
            })
        }
        None => {
            let serde_json::Value::Object(fields) = &body else {
                return Err(Reason::JsonShape(
                    "a machine topic takes an object {\"ts\", \"seq\", \"values\": {…}}".to_owned(),
                ));
            };
            let allowed = ["values", "ts", "seq"];
            if let Some(extra) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(Reason::JsonShape(format!(
                    "unknown field `{extra}`; expected values, ts, seq"
                )));
            }
            let ts = timestamp_of(fields, received_ms)?;
            let seq = seq_of(fields)?;
            let Some(serde_json::Value::Object(values)) = fields.get("values") else {
                return Err(Reason::JsonShape(
                    "`values` must be an object of signal → value".to_owned(),
                ));
            };
            let mut points = Vec::with_capacity(values.len());
            for (signal, v) in values {
                check_segment(signal).map_err(|why| {
                    Reason::JsonShape(format!("values: signal name `{signal}`: {why}"))
                })?;
                points.push(Point {
                    series: key(signal),
                    timestamp_ms: ts,
                    value: value_of(&format!("values.{signal}"), v)?,
                    seq,
                });
            }
            Ok(Decoded {
                points,
                timestamped: fields.contains_key("ts"),
            })
        }
    }
}

fn parse_topic(topic: &str) -> Result<(&str, &str, Option<&str>), Reason> {
    let err = |why: String| Reason::JsonTopic {
        topic: topic.to_owned(),
        why,
    };
    let parts: Vec<&str> = topic.split('/').collect();
    if parts.first() != Some(&ROOT) {
        return Err(err(format!("it must start with `{ROOT}/`")));
    }
    if !(parts.len() == 3 || parts.len() == 4) {
        return Err(err(
            "expected aifactory/{site}/{machine}[/{signal}]".to_owned()
        ));
    }
    for part in &parts[1..] {
        check_segment(part).map_err(err)?;
    }
    if parts[2].starts_with('_') {
        return Err(err(format!(
            "`{}` is a channel of the plant contract (docs/PLANT-CONTRACT.md), not a machine",
            parts[2]
        )));
    }
    Ok((parts[1], parts[2], parts.get(3).copied()))
}

fn check_segment(part: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err("a level is empty".to_owned());
    }
    if part.contains(['+', '#', '/']) {
        return Err(format!("`{part}` contains an MQTT wildcard or `/`"));
    }
    if part.len() > 256 {
        return Err(format!("a level is {} bytes; at most 256", part.len()));
    }
    Ok(())
}

fn value_of(field: &str, v: &serde_json::Value) -> Result<Value, Reason> {
    match v {
        serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
        serde_json::Value::String(s) => Ok(Value::Text(s.clone())),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Value::Int(i))
            } else if let Some(u) = n.as_u64() {
                Ok(Value::UInt(u))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() => Ok(Value::Float(f)),
                    _ => Err(Reason::NonFiniteValue {
                        field: field.to_owned(),
                        value: n.to_string(),
                    }),
                }
            }
        }
        serde_json::Value::Null => Err(Reason::JsonShape(format!(
            "{field}: null is not a value (leave the signal out instead)"
        ))),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => Err(Reason::JsonShape(
            format!("{field}: expected a number, boolean or string"),
        )),
    }
}

fn timestamp_of(fields: &Map<String, serde_json::Value>, received_ms: i64) -> Result<i64, Reason> {
    match fields.get("ts") {
        None => Ok(received_ms),
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(ms) => check_timestamp("ts", ms),
            None => Err(Reason::TimestampOutOfRange {
                field: "ts".to_owned(),
                value: n.to_string(),
            }),
        },
        Some(_) => Err(Reason::JsonShape(
            "`ts` must be an integer: milliseconds since 1970-01-01T00:00:00Z".to_owned(),
        )),
    }
}

fn seq_of(fields: &Map<String, serde_json::Value>) -> Result<Option<u64>, Reason> {
    match fields.get("seq") {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            Reason::JsonShape(format!("`seq` must be a non-negative integer, got {v}"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_number_on_a_signal_topic() {
        let decoded = decode("aifactory/hz/cnc-1/spindle_temp", b"71.5", 1000).unwrap_or_default();
        assert!(!decoded.timestamped);
        let points = decoded.points;
        assert_eq!(points.len(), 1);
        assert_eq!(&*points[0].series.node, NODE);
        assert_eq!(&*points[0].series.device, "cnc-1");
        assert_eq!(&*points[0].series.metric, "spindle_temp");
        assert_eq!(points[0].value, Value::Float(71.5));
        assert_eq!(points[0].timestamp_ms, 1000);
    }

    #[test]
    fn a_machine_topic_carries_many_signals() {
        let body = br#"{"ts": 1767225600000, "seq": 3, "values": {"a": 1, "b": true, "c": "RUN"}}"#;
        let decoded = decode("aifactory/hz/cnc-1", body, 0).unwrap_or_default();
        assert!(decoded.timestamped);
        let points = decoded.points;
        assert_eq!(points.len(), 3);
        assert!(
            points
                .iter()
                .all(|p| p.timestamp_ms == 1_767_225_600_000 && p.seq == Some(3))
        );
    }
}
