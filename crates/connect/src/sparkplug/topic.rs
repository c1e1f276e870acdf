//! `spBv1.0/{group_id}/{message_type}/{edge_node_id}[/{device_id}]`.

use crate::Reason;
use std::fmt;

pub const NAMESPACE: &str = "spBv1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    NBirth,
    NDeath,
    DBirth,
    DDeath,
    NData,
    DData,
    NCmd,
    DCmd,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::NData => "NDATA",
            MessageType::DData => "DDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DCmd => "DCMD",
        }
    }

    /// Whether the message is about a device (its topic has a device id).
    pub fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
        )
    }

    fn parse(s: &str) -> Option<MessageType> {
        Some(match s {
            "NBIRTH" => MessageType::NBirth,
            "NDEATH" => MessageType::NDeath,
            "DBIRTH" => MessageType::DBirth,
            "DDEATH" => MessageType::DDeath,
            "NDATA" => MessageType::NData,
            "DDATA" => MessageType::DData,
            "NCMD" => MessageType::NCmd,
            "DCMD" => MessageType::DCmd,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    pub group: String,
    pub kind: MessageType,
    pub node: String,
    pub device: Option<String>,
}

impl Topic {
    /// Parses a Sparkplug topic. `spBv1.0/STATE/{host}` (host state) is not an edge topic and is
    /// refused here; hosts handle it apart.
    pub fn parse(topic: &str) -> Result<Topic, Reason> {
        let err = |why: &str| Reason::NotSparkplugTopic {
            topic: topic.to_owned(),
            why: why.to_owned(),
        };
        let parts: Vec<&str> = topic.split('/').collect();
        if parts.first() != Some(&NAMESPACE) {
            return Err(err("it must start with `spBv1.0/`"));
        }
        if parts.len() < 4 {
            return Err(err("expected spBv1.0/{group}/{type}/{node}[/{device}]"));
        }
        let kind = MessageType::parse(parts[2]).ok_or_else(|| Reason::UnknownMessageType {
            topic: topic.to_owned(),
            kind: parts[2].to_owned(),
        })?;
        let expected = if kind.is_device() { 5 } else { 4 };
        if parts.len() != expected {
            return Err(err(if kind.is_device() {
                "a device message needs spBv1.0/{group}/{type}/{node}/{device}"
            } else {
                "a node message needs spBv1.0/{group}/{type}/{node} and nothing after"
            }));
        }
        for part in &parts[1..] {
            if part.is_empty() {
                return Err(err("an id is empty"));
            }
            if part.contains(['+', '#']) {
                return Err(err("an id contains an MQTT wildcard"));
            }
        }
        Ok(Topic {
            group: parts[1].to_owned(),
            kind,
            node: parts[3].to_owned(),
            device: parts.get(4).map(|d| (*d).to_owned()),
        })
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{NAMESPACE}/{}/{}/{}",
            self.group,
            self.kind.as_str(),
            self.node
        )?;
        if let Some(d) = &self.device {
            write!(f, "/{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        for t in ["spBv1.0/hz/NBIRTH/line-1", "spBv1.0/hz/DDATA/line-1/cnc-1"] {
            assert_eq!(
                Topic::parse(t).map(|t| t.to_string()).ok().as_deref(),
                Some(t)
            );
        }
    }

    #[test]
    fn malformed_topics_say_why() {
        for (t, kind) in [
            ("spAv1.0/hz/NBIRTH/n", "not_sparkplug_topic"),
            ("spBv1.0/hz/NBIRTH", "not_sparkplug_topic"),
            ("spBv1.0/hz/NFOO/n", "unknown_message_type"),
            ("spBv1.0/hz/DDATA/n", "not_sparkplug_topic"),
            ("spBv1.0/hz/NDATA/n/d", "not_sparkplug_topic"),
            ("spBv1.0//NDATA/n", "not_sparkplug_topic"),
        ] {
            assert_eq!(Topic::parse(t).err().map(|r| r.kind()), Some(kind), "{t}");
        }
    }
}
