//! Sparkplug B 3.0: topics, the protobuf payload, typed metric values, the host application's
//! session rules ([`HostSession`]) and the edge node's side ([`EdgeNode`]).

mod edge;
mod host;
mod topic;
mod value;

pub use edge::{EdgeNode, Message};
pub use host::{Accepted, HostSession, Rejected};
pub use topic::{MessageType, NAMESPACE, Topic};
pub use value::{DataType, metric_value, set_metric_value};

/// The generated protobuf types (`org.eclipse.tahu.protobuf`).
#[allow(missing_debug_implementations, unreachable_pub, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/org.eclipse.tahu.protobuf.rs"));
}

use crate::{MAX_PAYLOAD_BYTES, Reason};
use prost::Message as _;

/// Decodes a payload's bytes (size-checked first).
pub fn decode_payload(bytes: &[u8]) -> Result<proto::Payload, Reason> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(Reason::PayloadTooLarge {
            bytes: bytes.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    proto::Payload::decode(bytes).map_err(|e| Reason::MalformedProtobuf(e.to_string()))
}

/// A DCMD as the edge node reads it: the device it is for and its metrics by name.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceCommand {
    pub device: String,
    pub metrics: Vec<(String, crate::Value)>,
}

/// Reads a DCMD. Command metrics must carry their name and type (hosts send them so; an alias
/// alone is refused, as the edge cannot be sure which birth the host saw).
pub fn device_command(topic: &str, payload: &[u8]) -> Result<DeviceCommand, Reason> {
    let t = Topic::parse(topic)?;
    let device = match (t.kind, t.device) {
        (MessageType::DCmd, Some(d)) => d,
        _ => {
            return Err(Reason::NotSparkplugTopic {
                topic: topic.to_owned(),
                why: "not a DCMD topic".to_owned(),
            });
        }
    };
    let label = format!("DCMD {}/{}/{device}", t.group, t.node);
    let payload = decode_payload(payload)?;
    let mut metrics = Vec::with_capacity(payload.metrics.len());
    for (index, m) in payload.metrics.iter().enumerate() {
        let Some(name) = m.name.clone() else {
            return Err(Reason::MetricWithoutName {
                message: label,
                index,
            });
        };
        let datatype = DataType::from_code(m.datatype.unwrap_or(0));
        match metric_value(m, datatype) {
            Ok(Some(v)) => metrics.push((name, v)),
            Ok(None) => {}
            Err(carried) => {
                return Err(Reason::TypeMismatch {
                    message: label,
                    index,
                    metric: name,
                    datatype: format!("{datatype:?}"),
                    carried,
                });
            }
        }
    }
    Ok(DeviceCommand { device, metrics })
}

/// The DCMD a host sends to `device` of `node` in `group`: (topic, payload).
pub fn device_command_message(
    group: &str,
    node: &str,
    device: &str,
    now_ms: u64,
    metrics: &[(&str, crate::Value)],
) -> (String, Vec<u8>) {
    let topic = Topic {
        group: group.to_owned(),
        kind: MessageType::DCmd,
        node: node.to_owned(),
        device: Some(device.to_owned()),
    };
    let metrics = metrics
        .iter()
        .map(|(name, value)| {
            let mut m = proto::payload::Metric {
                name: Some((*name).to_owned()),
                timestamp: Some(now_ms),
                datatype: Some(DataType::of(value) as u32),
                ..Default::default()
            };
            set_metric_value(&mut m, value);
            m
        })
        .collect();
    let payload = proto::Payload {
        timestamp: Some(now_ms),
        metrics,
        ..Default::default()
    };
    (topic.to_string(), payload.encode_to_vec())
}

/// The metric an edge node obeys to publish its births again (specification 3.0, 6.4.4).
pub const REBIRTH_METRIC: &str = "Node Control/Rebirth";

/// The NCMD a host sends to ask `node` of `group` for a rebirth: (topic, payload).
pub fn rebirth_request(group: &str, node: &str, now_ms: u64) -> (String, Vec<u8>) {
    let topic = Topic {
        group: group.to_owned(),
        kind: MessageType::NCmd,
        node: node.to_owned(),
        device: None,
    };
    let mut metric = proto::payload::Metric {
        name: Some(REBIRTH_METRIC.to_owned()),
        timestamp: Some(now_ms),
        datatype: Some(DataType::Boolean as u32),
        ..Default::default()
    };
    set_metric_value(&mut metric, &crate::Value::Bool(true));
    let payload = proto::Payload {
        timestamp: Some(now_ms),
        metrics: vec![metric],
        ..Default::default()
    };
    (topic.to_string(), payload.encode_to_vec())
}
