//! The plant contract's envelope (`docs/PLANT-CONTRACT.md`) on MQTT: events a plant publishes on
//! `aifactory/{site}/_events`, acknowledgements on `aifactory/{site}/_acks`, and the commands
//! aifactory publishes on `aifactory/{site}/_commands/{machine}`.
//!
//! Decoding checks the envelope only — spec version, ids, source, time, sequence, the kind's
//! name — and hands the event to the plant-state projection, which checks its fields against
//! the master data. Every refusal is a [`Reason`] naming the field and what is wrong with it.

use crate::json::ROOT;
use crate::{MAX_PAYLOAD_BYTES, Reason};
use aifactory_core::{EventKind, PlantEvent, Timestamp};
use aifactory_plant::ask::Ask;
use aifactory_plant::projection::Arrival;
use aifactory_plant::{Ack, AckStatus, Command};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The contract version this side speaks.
pub const SPEC: &str = "aifactory/1";
/// The longest id, source or correlation accepted, in bytes.
pub const MAX_ID_BYTES: usize = 200;
/// The latest time accepted: the end of year 9999, in ms since the epoch.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Where a command for `machine` at `site` is published (`_plant` for plant-wide commands).
pub fn command_topic(site: &str, machine: Option<&str>) -> String {
    format!("{ROOT}/{site}/_commands/{}", machine.unwrap_or("_plant"))
}

/// The topics a runtime subscribes to for one site's events and acknowledgements.
pub fn plant_topics(site: &str) -> [String; 2] {
    [
        format!("{ROOT}/{site}/_events"),
        format!("{ROOT}/{site}/_acks"),
    ]
}

/// An acknowledgement as it came, with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedAck {
    pub id: String,
    pub source: String,
    pub seq: u64,
    pub ack: Ack,
}

/// A source saying what time it is; with `answer`, a lockstep plant waiting for aifactory's
/// decisions up to that time.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub id: String,
    pub source: String,
    pub seq: u64,
    pub at: Timestamp,
    pub answer: bool,
}

/// A plant asking for a decision (`decision_request`): it waits for the commands that answer
/// it and the `answered` message on `_sync`.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: String,
    pub source: String,
    pub seq: u64,
    pub at: Timestamp,
    pub ask: Ask,
}

/// What a plant has on file from before it connected (`records_on_file`): units ordered per
/// product id and day (oldest first, the last day the one before `time`), and per machine id
/// the running hours at each renewal and whether it was a failure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Records {
    #[serde(default)]
    pub order_book: BTreeMap<String, Vec<f64>>,
    #[serde(default)]
    pub maintenance: BTreeMap<String, Vec<(f64, bool)>>,
}

/// One contract message from a plant.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// An event, ready to offer to the projection (its id is qualified by its source: ids are
    /// unique per source).
    Event(Arrival),
    Ack(ReceivedAck),
    Heartbeat(Heartbeat),
    Request(Request),
    Records(Records),
}

/// What aifactory tells a plant on `_sync`.
#[derive(Debug, Clone, PartialEq)]
pub enum Sync {
    /// Every command answering `correlation` (a lockstep heartbeat or a decision request) has
    /// been published; these are their ids.
    Answered {
        correlation: String,
        commands: Vec<String>,
    },
    /// aifactory has read the plant's records and is ready to answer its requests: the policy
    /// it runs, whether it wants the floor at each replan and a replan when a service starts or
    /// ends.
    Ready {
        policy: String,
        wants_floor: bool,
        replan_on_service: bool,
    },
}

/// The `ready` message on `_sync`.
pub fn encode_ready(source: &str, seq: u64, at: Timestamp, ready: &Sync) -> Vec<u8> {
    let Sync::Ready {
        policy,
        wants_floor,
        replan_on_service,
    } = ready
    else {
        return Vec::new();
    };
    let body = serde_json::json!({
        "spec": SPEC,
        "type": "ready",
        "id": format!("{source}-{seq}"),
        "source": source,
        "seq": seq,
        "time": at.0,
        "data": {
            "policy": policy,
            "wants_floor": wants_floor,
            "replan_on_service": replan_on_service,
        },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Decodes a message aifactory published on `_sync`.
pub fn decode_sync(payload: &[u8]) -> Result<Sync, Reason> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| Reason::JsonSyntax(e.to_string()))?;
    let Value::Object(body) = value else {
        return Err(Reason::JsonShape("an envelope is a JSON object".to_owned()));
    };
    match required(&body, "type")? {
        "answered" => {
            let correlation = required(&body, "correlation")?.to_owned();
            let commands = body
                .get("commands")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("commands", "is missing or not a list"))?
                .iter()
                .map(|c| {
                    c.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("commands", format!("{c} is not an id")))
                })
                .collect::<Result<_, _>>()?;
            Ok(Sync::Answered {
                correlation,
                commands,
            })
        }
        "ready" => {
            let data = body.get("data");
            let flag = |k: &str| data.and_then(|d| d.get(k)).and_then(Value::as_bool);
            Ok(Sync::Ready {
                policy: data
                    .and_then(|d| d.get("policy"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                wants_floor: flag("wants_floor")
                    .ok_or_else(|| bad("data.wants_floor", "is missing or not true/false"))?,
                replan_on_service: flag("replan_on_service")
                    .ok_or_else(|| bad("data.replan_on_service", "is missing or not true/false"))?,
            })
        }
        other => Err(bad("type", format!("`{other}` is not a _sync message"))),
    }
}

/// Decodes a command aifactory published on `_commands/…`.
pub fn decode_command(payload: &[u8]) -> Result<Command, Reason> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Reason::PayloadTooLarge {
            bytes: payload.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    serde_json::from_slice(payload).map_err(|e| bad("command", e.to_string()))
}

/// An event as a plant publishes it on `_events`: `id` unique per `source`, `seq` its place in
/// the source's stream.
pub fn encode_event(event: &PlantEvent, source: &str, id: &str, seq: u64) -> Vec<u8> {
    let mut body = serde_json::json!({
        "spec": SPEC,
        "id": id,
        "source": source,
        "seq": seq,
        "type": event.kind.as_str(),
        "time": event.at.0,
        "data": event.detail,
    });
    if let Some(m) = &event.machine {
        body["machine"] = Value::from(m.as_str());
    }
    if let Some(o) = &event.order {
        body["order"] = Value::from(o.as_str());
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A decision request as a plant publishes it on `_events`.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let body = serde_json::json!({
        "spec": SPEC,
        "id": request.id,
        "source": request.source,
        "seq": request.seq,
        "type": "decision_request",
        "time": request.at.0,
        "data": request.ask,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The plant's records on file as it publishes them on `_events` before its first request.
pub fn encode_records(
    records: &Records,
    source: &str,
    id: &str,
    seq: u64,
    at: Timestamp,
) -> Vec<u8> {
    let body = serde_json::json!({
        "spec": SPEC,
        "id": id,
        "source": source,
        "seq": seq,
        "type": "records_on_file",
        "time": at.0,
        "data": records,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// An acknowledgement as a plant publishes it on `_acks`.
pub fn encode_ack(ack: &Ack, source: &str, id: &str, seq: u64) -> Vec<u8> {
    let mut body = serde_json::json!({
        "spec": SPEC,
        "id": id,
        "source": source,
        "seq": seq,
        "type": "ack",
        "time": ack.at.0,
        "correlation": ack.command,
        "status": ack.status.as_str(),
    });
    if let Some(r) = &ack.reason {
        body["reason"] = Value::from(r.as_str());
    }
    if let Some(v) = ack.read_back {
        body["read_back"] = Value::from(v);
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Where aifactory answers a lockstep heartbeat.
pub fn sync_topic(site: &str) -> String {
    format!("{ROOT}/{site}/_sync")
}

/// The answer to a lockstep heartbeat: every command decided up to its time has been published,
/// and these are their ids.
pub fn encode_answer(
    heartbeat: &Heartbeat,
    source: &str,
    seq: u64,
    commands: &[String],
) -> Vec<u8> {
    let body = serde_json::json!({
        "spec": SPEC,
        "type": "answered",
        "id": format!("{source}-{seq}"),
        "source": source,
        "seq": seq,
        "time": heartbeat.at.0,
        "correlation": heartbeat.id,
        "commands": commands,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The command as aifactory publishes it at plant time `at`: the envelope's fields around the
/// command's own.
pub fn encode_command(command: &Command, source: &str, seq: u64, at: Timestamp) -> Vec<u8> {
    let mut body = match serde_json::to_value(command) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    body.insert("spec".into(), Value::from(SPEC));
    body.insert("type".into(), Value::from("command"));
    body.insert("source".into(), Value::from(source));
    body.insert("seq".into(), Value::from(seq));
    body.insert("time".into(), Value::from(at.0));
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

fn bad(field: &str, problem: impl Into<String>) -> Reason {
    Reason::Envelope {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

fn text<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, Reason> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(bad(field, "is empty")),
        Some(Value::String(s)) if s.len() > MAX_ID_BYTES => Err(bad(
            field,
            format!("is {} bytes; at most {MAX_ID_BYTES}", s.len()),
        )),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(bad(field, format!("is {other}, not text"))),
    }
}

fn required<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, Reason> {
    text(body, field)?.ok_or_else(|| bad(field, "is missing"))
}

/// `time`: milliseconds since the epoch, or an RFC 3339 string.
fn time(body: &Map<String, Value>) -> Result<Timestamp, Reason> {
    let ms = match body.get("time") {
        None | Some(Value::Null) => return Err(bad("time", "is missing")),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| bad("time", format!("{n} is not a whole number of milliseconds")))?,
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|_| bad("time", format!("`{s}` is not an RFC 3339 time")))?
            .timestamp_millis(),
        Some(other) => return Err(bad("time", format!("is {other}, not a time"))),
    };
    if !(0..=MAX_TIME_MS).contains(&ms) {
        return Err(bad("time", format!("{ms} ms is outside 1970..=9999")));
    }
    Ok(Timestamp(ms))
}

fn seq(body: &Map<String, Value>) -> Result<u64, Reason> {
    match body.get("seq") {
        None | Some(Value::Null) => Err(bad("seq", "is missing")),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad("seq", format!("{v} is not a whole number ≥ 0"))),
    }
}

fn status(body: &Map<String, Value>) -> Result<AckStatus, Reason> {
    let given = required(body, "status")?;
    serde_json::from_value(Value::from(given)).map_err(|_| {
        bad(
            "status",
            format!(
                "`{given}` is not one of received, accepted, rejected, completed, failed, expired"
            ),
        )
    })
}

/// Decodes one message published on a site's `_events` or `_acks` topic.
pub fn decode(topic: &str, payload: &[u8]) -> Result<Message, Reason> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Reason::PayloadTooLarge {
            bytes: payload.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    let channel = match topic.split('/').collect::<Vec<_>>().as_slice() {
        [root, site, channel] if *root == ROOT && !site.is_empty() => *channel,
        _ => {
            return Err(Reason::JsonTopic {
                topic: topic.to_owned(),
                why: "expected aifactory/{site}/_events or aifactory/{site}/_acks".to_owned(),
            });
        }
    };
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| Reason::JsonSyntax(e.to_string()))?;
    let Value::Object(body) = value else {
        return Err(Reason::JsonShape("an envelope is a JSON object".to_owned()));
    };
    let spec = required(&body, "spec")?;
    if spec != SPEC {
        return Err(bad("spec", format!("`{spec}` is not {SPEC}")));
    }
    let id = required(&body, "id")?;
    let source = required(&body, "source")?;
    let kind = required(&body, "type")?;
    let seq = seq(&body)?;
    let at = time(&body)?;
    match (channel, kind) {
        ("_acks", "ack") => {
            let command = text(&body, "correlation")?
                .ok_or_else(|| bad("correlation", "is missing: it names the command"))?;
            let status = status(&body)?;
            let reason = text(&body, "reason")?.map(str::to_owned);
            if status == AckStatus::Rejected && reason.is_none() {
                return Err(bad("reason", "is missing: a rejection says why"));
            }
            let read_back = match body.get("read_back") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_f64()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| bad("read_back", format!("{v} is not a finite number")))?,
                ),
            };
            Ok(Message::Ack(ReceivedAck {
                id: id.to_owned(),
                source: source.to_owned(),
                seq,
                ack: Ack {
                    command: command.to_owned(),
                    status,
                    at,
                    reason,
                    read_back,
                },
            }))
        }
        ("_acks", other) => Err(bad(
            "type",
            format!("`{other}` on an _acks topic; acknowledgements have type `ack`"),
        )),
        ("_events", "heartbeat") => {
            let answer = match body.get("data").and_then(|d| d.get("answer")) {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(bad("data.answer", format!("is {other}, not true or false")));
                }
            };
            Ok(Message::Heartbeat(Heartbeat {
                id: id.to_owned(),
                source: source.to_owned(),
                seq,
                at,
                answer,
            }))
        }
        ("_events", "decision_request") => {
            let data = match body.get("data") {
                None | Some(Value::Null) => {
                    return Err(bad(
                        "data",
                        "is missing: a decision request names its `call` and what the plant sees",
                    ));
                }
                Some(d) => d.clone(),
            };
            let ask: Ask = serde_json::from_value(data).map_err(|e| bad("data", e.to_string()))?;
            Ok(Message::Request(Request {
                id: id.to_owned(),
                source: source.to_owned(),
                seq,
                at,
                ask,
            }))
        }
        ("_events", "records_on_file") => {
            let data = body.get("data").cloned().unwrap_or(Value::Null);
            let records: Records =
                serde_json::from_value(data).map_err(|e| bad("data", e.to_string()))?;
            Ok(Message::Records(records))
        }
        ("_events", "ack" | "command" | "command_ack") => Err(bad(
            "type",
            format!("`{kind}` is not an event; acknowledgements go to _acks with type `ack`"),
        )),
        ("_events", name) => {
            let kind: EventKind = serde_json::from_value(Value::from(name)).map_err(|_| {
                bad(
                    "type",
                    format!("`{name}` is not an event kind of the contract"),
                )
            })?;
            let mut data = match body.get("data") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(other) => return Err(bad("data", format!("is {other}, not an object"))),
            };
            // The command that caused it stays with the event, for the decision's outcome.
            if let Some(c) = text(&body, "correlation")? {
                data.entry("correlation")
                    .or_insert_with(|| Value::from(c.to_owned()));
            }
            let data = Value::Object(data);
            Ok(Message::Event(Arrival {
                id: format!("{source}/{id}"),
                source: source.to_owned(),
                seq,
                event: PlantEvent {
                    at,
                    kind,
                    machine: text(&body, "machine")?.map(str::to_owned),
                    order: text(&body, "order")?.map(str::to_owned),
                    detail: data,
                },
            }))
        }
        (other, _) => Err(Reason::JsonTopic {
            topic: topic.to_owned(),
            why: format!("`{other}` is not a channel of the plant contract (_events, _acks)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_plant::Action;
    use serde_json::json;

    const EVENTS: &str = "aifactory/hz/_events";
    const ACKS: &str = "aifactory/hz/_acks";

    fn envelope(extra: Value) -> Vec<u8> {
        let mut base = json!({
            "spec": "aifactory/1", "id": "e1", "source": "mes-1", "seq": 1,
            "time": 1_767_229_200_000i64,
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        serde_json::to_vec(&base).unwrap_or_default()
    }

    #[test]
    fn an_event_becomes_an_arrival_for_the_projection() {
        let m = decode(
            EVENTS,
            &envelope(json!({
                "type": "operation_completed", "machine": "TURN-01", "order": "WO-1",
                "data": {"step": 0, "good": 38, "scrapped": 2},
            })),
        );
        let Ok(Message::Event(a)) = m else {
            panic!("{m:?}")
        };
        assert_eq!(a.id, "mes-1/e1");
        assert_eq!(a.source, "mes-1");
        assert_eq!(a.seq, 1);
        assert_eq!(a.event.kind, EventKind::OperationCompleted);
        assert_eq!(a.event.at, Timestamp(1_767_229_200_000));
        assert_eq!(a.event.machine.as_deref(), Some("TURN-01"));
        assert_eq!(a.event.detail["good"], 38);
        // An RFC 3339 time is the same instant.
        let m = decode(
            EVENTS,
            &envelope(json!({"type": "machine_failed", "time": "2026-01-01T01:00:00Z"})),
        );
        assert!(
            matches!(&m, Ok(Message::Event(a)) if a.event.at == Timestamp(1_767_229_200_000)),
            "{m:?}"
        );
    }

    #[test]
    fn an_ack_names_its_command_and_carries_the_read_back() {
        let m = decode(
            ACKS,
            &envelope(json!({
                "type": "ack", "correlation": "C-H-1", "status": "completed", "read_back": 205.0,
            })),
        );
        let Ok(Message::Ack(r)) = m else {
            panic!("{m:?}")
        };
        assert_eq!(r.ack.command, "C-H-1");
        assert_eq!(r.ack.status, AckStatus::Completed);
        assert_eq!(r.ack.read_back, Some(205.0));
    }

    #[test]
    fn bad_envelopes_are_refused_naming_the_field() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                EVENTS,
                b"{not json".to_vec(),
                "JSON payload is not valid JSON",
            ),
            (EVENTS, b"[1,2]".to_vec(), "an envelope is a JSON object"),
            (
                EVENTS,
                envelope(json!({"type": "machine_failed", "spec": "aifactory/2"})),
                "spec: `aifactory/2` is not aifactory/1",
            ),
            (
                EVENTS,
                envelope(json!({"type": "machine_failed", "id": ""})),
                "id: is empty",
            ),
            (
                EVENTS,
                envelope(json!({"type": "machine_failed", "id": 7})),
                "id: is 7, not text",
            ),
            (
                EVENTS,
                envelope(json!({"type": "machine_failed", "source": null})),
                "source: is missing",
            ),
            (
                EVENTS,
                envelope(json!({"type": "machine_failed", "seq": -1})),
                "seq: -1 is not a whole number ≥ 0",
            ),
            (
                EVENTS,
                envelope(json!({"type": "machine_failed", "time": "yesterday"})),
                "time: `yesterday` is not an RFC 3339 time",
            ),
            (
                EVENTS,
                envelope(json!({"type": "machine_failed", "time": -5})),
                "time: -5 ms is outside 1970..=9999",
            ),
            (
                EVENTS,
                envelope(json!({"type": "machine_failed", "time": 1.5})),
                "time: 1.5 is not a whole number of milliseconds",
            ),
            (
                EVENTS,
                envelope(json!({"type": "machine_exploded"})),
                "type: `machine_exploded` is not an event kind of the contract",
            ),
            (
                EVENTS,
                envelope(json!({"type": "command_ack"})),
                "type: `command_ack` is not an event",
            ),
            (
                EVENTS,
                envelope(json!({"type": "machine_failed", "data": [1]})),
                "data: is [1], not an object",
            ),
            (
                ACKS,
                envelope(json!({"type": "machine_failed"})),
                "type: `machine_failed` on an _acks topic",
            ),
            (
                ACKS,
                envelope(json!({"type": "ack", "status": "completed"})),
                "correlation: is missing",
            ),
            (
                ACKS,
                envelope(json!({"type": "ack", "correlation": "C-1", "status": "done"})),
                "status: `done` is not one of",
            ),
            (
                ACKS,
                envelope(json!({"type": "ack", "correlation": "C-1", "status": "rejected"})),
                "reason: is missing: a rejection says why",
            ),
            (
                ACKS,
                envelope(
                    json!({"type": "ack", "correlation": "C-1", "status": "completed", "read_back": "high"}),
                ),
                "read_back: \"high\" is not a finite number",
            ),
            (
                "aifactory/hz/_orders",
                envelope(json!({"type": "machine_failed"})),
                "is not a channel of the plant contract",
            ),
            (
                "spBv1.0/hz/DDATA/n",
                envelope(json!({"type": "machine_failed"})),
                "expected aifactory/{site}/_events",
            ),
        ];
        for (topic, payload, expected) in cases {
            let got = decode(topic, &payload);
            let message = match &got {
                Err(e) => e.to_string(),
                Ok(m) => format!("accepted {m:?}"),
            };
            assert!(
                message.contains(expected),
                "{topic} {}: {message} (expected `{expected}`)",
                String::from_utf8_lossy(&payload)
            );
        }
    }

    #[test]
    fn a_command_goes_out_in_the_envelope_with_its_action_flat() {
        let command = Command {
            id: "C-H-1".into(),
            decision: Some("H-1".into()),
            expires: Some(Timestamp(1_767_312_000_000)),
            action: Action::SetPoint {
                machine: "TURN-01".into(),
                param: "cutting_speed".into(),
                value: 205.0,
            },
        };
        let bytes = encode_command(
            &command,
            "aifactory-runtime",
            3,
            Timestamp(1_767_225_600_000),
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(v["spec"], SPEC);
        assert_eq!(v["type"], "command");
        assert_eq!(v["id"], "C-H-1");
        assert_eq!(v["decision"], "H-1");
        assert_eq!(v["expires"], 1_767_312_000_000i64);
        assert_eq!(v["action"], "set_point");
        assert_eq!(v["value"], 205.0);
        assert_eq!(v["seq"], 3);
        assert_eq!(v["time"], 1_767_225_600_000i64);
        assert_eq!(
            command_topic("hz", Some("TURN-01")),
            "aifactory/hz/_commands/TURN-01"
        );
        assert_eq!(plant_topics("hz")[1], "aifactory/hz/_acks");
    }

    #[test]
    fn a_heartbeat_asks_for_an_answer_and_the_answer_lists_the_commands() {
        let m = decode(
            EVENTS,
            &envelope(json!({"type": "heartbeat", "data": {"answer": true}})),
        );
        let Ok(Message::Heartbeat(h)) = m else {
            panic!("expected a heartbeat, got {m:?}");
        };
        assert!(h.answer);
        assert_eq!((h.id.as_str(), h.seq), ("e1", 1));
        let plain = decode(EVENTS, &envelope(json!({"type": "heartbeat"})));
        assert!(matches!(
            plain,
            Ok(Message::Heartbeat(Heartbeat { answer: false, .. }))
        ));
        let wrong = decode(
            EVENTS,
            &envelope(json!({"type": "heartbeat", "data": {"answer": "yes"}})),
        );
        assert!(
            matches!(&wrong, Err(Reason::Envelope { field, .. }) if field == "data.answer"),
            "{wrong:?}"
        );
        let answer = encode_answer(&h, "aifactory", 9, &["C-1".to_owned(), "C-2".to_owned()]);
        let v: Value = serde_json::from_slice(&answer).unwrap_or_default();
        assert_eq!(v["type"], "answered");
        assert_eq!(v["correlation"], "e1");
        assert_eq!(v["time"], 1_767_229_200_000i64);
        assert_eq!(v["commands"], json!(["C-1", "C-2"]));
        assert_eq!(sync_topic("hz"), "aifactory/hz/_sync");
    }

    #[test]
    fn an_event_keeps_the_command_it_answers() {
        let m = decode(
            EVENTS,
            &envelope(json!({
                "type": "maintenance_started", "machine": "TURN-01", "correlation": "C-7",
            })),
        );
        let Ok(Message::Event(a)) = m else {
            panic!("expected an event, got {m:?}");
        };
        assert_eq!(a.event.detail["correlation"], "C-7");
    }

    #[test]
    fn a_dispatch_list_goes_out_with_its_jobs() {
        let command = Command {
            id: "C-D-1".into(),
            decision: Some("D-1".into()),
            expires: None,
            action: Action::DispatchList {
                machine: "MILL-01".into(),
                jobs: vec![aifactory_plant::DispatchJob {
                    order: "WO-000003".into(),
                    step: 1,
                }],
            },
        };
        let v: Value =
            serde_json::from_slice(&encode_command(&command, "aifactory", 1, Timestamp(0)))
                .unwrap_or_default();
        assert_eq!(v["action"], "dispatch_list");
        assert_eq!(v["machine"], "MILL-01");
        assert_eq!(v["jobs"], json!([{"order": "WO-000003", "step": 1}]));
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes on either channel decode or are refused; none panic.
            #[test]
            fn arbitrary_payloads_never_panic(payload in prop::collection::vec(any::<u8>(), 0..300), acks in any::<bool>()) {
                let _ = decode(if acks { ACKS } else { EVENTS }, &payload);
            }

            /// Any JSON object with envelope-like fields decodes or is refused; none panic.
            #[test]
            fn arbitrary_envelopes_never_panic(
                fields in prop::collection::vec((
                    "spec|id|source|type|seq|time|machine|order|data|status|correlation|read_back|reason",
                    prop_oneof![
                        any::<i64>().prop_map(Value::from),
                        any::<f64>().prop_map(|f| json!(f)),
                        "[a-z_/0-9]{0,12}".prop_map(Value::from),
                        Just(Value::Null),
                        Just(json!({})),
                        Just(Value::from("aifactory/1")),
                    ],
                ), 0..12),
                acks in any::<bool>(),
            ) {
                let body: Map<String, Value> = fields.into_iter().collect();
                let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
                match decode(if acks { ACKS } else { EVENTS }, &bytes) {
                    Ok(Message::Event(a)) => {
                        prop_assert!(!acks, "an event only from _events");
                        let prefix = format!("{}/", a.source);
                        prop_assert!(a.id.starts_with(&prefix), "id {} of source {}", a.id, a.source);
                    }
                    Ok(Message::Ack(r)) => {
                        prop_assert!(acks, "an acknowledgement only from _acks");
                        let explained = r.ack.status != AckStatus::Rejected || r.ack.reason.is_some();
                        prop_assert!(explained, "a rejection without a reason");
                    }
                    Ok(Message::Heartbeat(h)) => {
                        prop_assert!(!acks, "a heartbeat only from _events");
                        prop_assert!(!h.id.is_empty() && !h.source.is_empty());
                    }
                    Ok(Message::Request(_) | Message::Records(_)) => {
                        prop_assert!(!acks, "requests and records only from _events");
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }
        }
    }

    #[test]
    fn requests_records_and_what_aifactory_says_back_round_trip_and_bad_ones_name_the_field() {
        let ask = json!({"call": "release", "now": 5, "orders": ["SO-000001"],
            "pending": [{"order": 0, "product": 1, "quantity": 3, "received": 0, "due": 9}]});
        let m = decode(
            EVENTS,
            &envelope(json!({"type": "decision_request", "data": ask})),
        );
        let Ok(Message::Request(request)) = m else {
            panic!("expected a request, got {m:?}");
        };
        assert_eq!(request.ask.call(), "release");
        let again = decode(EVENTS, &encode_request(&request));
        assert_eq!(again, Ok(Message::Request(request)));
        for (data, expected) in [
            (json!({"call": "guess"}), "guess"),
            (json!({"call": "dispatch", "now": 1}), "machine"),
            (json!(null), "is missing"),
        ] {
            let bad = decode(
                EVENTS,
                &envelope(json!({"type": "decision_request", "data": data})),
            );
            assert!(
                matches!(&bad, Err(Reason::Envelope { field, problem })
                    if field == "data" && problem.contains(expected)),
                "{bad:?}"
            );
        }
        let records = Records {
            order_book: [("SHAFT".to_owned(), vec![1.5, 0.0])].into(),
            maintenance: [("M1".to_owned(), vec![(812.25, true)])].into(),
        };
        let m = decode(
            EVENTS,
            &encode_records(&records, "twin", "r1", 1, Timestamp(0)),
        );
        assert_eq!(m, Ok(Message::Records(records)));
        let bad = decode(
            EVENTS,
            &envelope(json!({"type": "records_on_file", "data": {"maintenance": {"M1": [[1.0]]}}})),
        );
        assert!(
            matches!(&bad, Err(Reason::Envelope { field, .. }) if field == "data"),
            "{bad:?}"
        );
        let ready = Sync::Ready {
            policy: "tier 2".into(),
            wants_floor: true,
            replan_on_service: false,
        };
        assert_eq!(
            decode_sync(&encode_ready("aifactory", 1, Timestamp(0), &ready)),
            Ok(ready)
        );
        let h = Heartbeat {
            id: "Q7".into(),
            source: "twin".into(),
            seq: 7,
            at: Timestamp(0),
            answer: true,
        };
        assert_eq!(
            decode_sync(&encode_answer(&h, "aifactory", 2, &["C-Q7-0".to_owned()])),
            Ok(Sync::Answered {
                correlation: "Q7".into(),
                commands: vec!["C-Q7-0".into()]
            })
        );
        for (bad, field) in [
            (json!({"type": "answered", "correlation": "Q1"}), "commands"),
            (
                json!({"type": "ready", "data": {"wants_floor": true}}),
                "data.replan_on_service",
            ),
            (json!({"type": "hello"}), "type"),
        ] {
            let got = decode_sync(&serde_json::to_vec(&bad).unwrap_or_default());
            assert!(
                matches!(&got, Err(Reason::Envelope { field: f, .. }) if f == field),
                "{got:?}"
            );
        }
        let command = Command {
            id: "C-1".into(),
            decision: None,
            expires: None,
            action: Action::Hold {
                machine: "M1".into(),
                until: Timestamp(7),
            },
        };
        let sent = encode_command(&command, "aifactory", 3, Timestamp(1));
        assert_eq!(decode_command(&sent), Ok(command));
        assert!(matches!(
            decode_command(br#"{"id": "C-2", "action": "teleport"}"#),
            Err(Reason::Envelope { field, .. }) if field == "command"
        ));
        let ack = Ack {
            command: "C-1".into(),
            status: AckStatus::Completed,
            at: Timestamp(9),
            reason: None,
            read_back: Some(0.3),
        };
        let m = decode(ACKS, &encode_ack(&ack, "twin", "a1", 4));
        assert!(matches!(m, Ok(Message::Ack(ReceivedAck { ack: a, .. })) if a == ack));
    }
}
