//! Sparkplug B sessions end to end through the codec: what an edge node publishes, the host
//! reads back; every way a message can be wrong is refused with its reason, and nothing panics.

use aifactory_connect::sparkplug::proto::Payload;
use aifactory_connect::sparkplug::proto::payload::Metric;
use aifactory_connect::sparkplug::proto::payload::metric::Value as Wire;
use aifactory_connect::sparkplug::{
    DataType, EdgeNode, HostSession, Message, REBIRTH_METRIC, Rejected, decode_payload,
    rebirth_request,
};
use aifactory_connect::{Value, json};
use proptest::prelude::*;
use prost::Message as _;

const T0: u64 = 1_767_225_600_000;

fn born() -> (EdgeNode, HostSession) {
    let mut edge = EdgeNode::new("hz", "line-1", 3);
    let mut host = HostSession::new();
    let m = edge.birth(T0, &[("mode", Value::Text("auto".into()))]);
    expect_ok(&mut host, &m);
    let m = edge.device_birth(
        "cnc-1",
        T0,
        &[
            ("vibration_mm_s", Value::Float(2.5)),
            ("parts", Value::UInt(10)),
            ("running", Value::Bool(true)),
        ],
    );
    expect_ok(&mut host, &m);
    (edge, host)
}

fn expect_ok(host: &mut HostSession, m: &Message) -> aifactory_connect::sparkplug::Accepted {
    match host.handle(&m.topic, &m.payload) {
        Ok(a) => a,
        Err(e) => panic!("{}: {}", m.topic, e.reason),
    }
}

fn expect_refused(host: &mut HostSession, topic: &str, payload: &[u8]) -> Rejected {
    match host.handle(topic, payload) {
        Ok(a) => panic!("{topic}: accepted {a:?}"),
        Err(e) => e,
    }
}

#[test]
fn births_and_data_by_alias_come_back_named() {
    let (mut edge, mut host) = born();
    assert!(host.is_online("hz", "line-1"));
    let m = edge.data(
        Some("cnc-1"),
        T0 + 1000,
        &[
            ("vibration_mm_s", Value::Float(3.25)),
            ("parts", Value::UInt(11)),
        ],
    );
    // By alias only: the names are not on the wire.
    let wire = decode_payload(&m.payload).unwrap_or_default();
    assert!(
        wire.metrics
            .iter()
            .all(|x| x.name.is_none() && x.alias.is_some())
    );
    let a = expect_ok(&mut host, &m);
    assert_eq!(a.gap, None);
    let got: Vec<(String, String, Value, i64)> = a
        .points
        .iter()
        .map(|p| {
            (
                p.series.metric.to_string(),
                p.series.device.to_string(),
                p.value.clone(),
                p.timestamp_ms,
            )
        })
        .collect();
    let t = (T0 + 1000) as i64;
    assert_eq!(
        got,
        vec![
            (
                "vibration_mm_s".into(),
                "cnc-1".into(),
                Value::Float(3.25),
                t
            ),
            ("parts".into(), "cnc-1".into(), Value::UInt(11), t),
        ]
    );
    assert!(
        a.points
            .iter()
            .all(|p| &*p.series.site == "hz" && &*p.series.node == "line-1")
    );
    assert_eq!(a.points[0].seq, Some(2), "NBIRTH 0, DBIRTH 1, DDATA 2");
}

#[test]
fn a_sequence_gap_is_taken_but_asks_for_a_rebirth_and_a_redelivery_is_not_a_gap() {
    let (mut edge, mut host) = born();
    let first = edge.data(Some("cnc-1"), T0 + 1, &[("parts", Value::UInt(1))]);
    expect_ok(&mut host, &first);
    let again = expect_ok(&mut host, &first);
    assert_eq!(again.gap, None, "QoS 1 redelivery");
    assert_eq!(again.points.len(), 1);
    let _lost = edge.data(Some("cnc-1"), T0 + 2, &[("parts", Value::UInt(2))]);
    let after = edge.data(Some("cnc-1"), T0 + 3, &[("parts", Value::UInt(3))]);
    let a = expect_ok(&mut host, &after);
    assert_eq!(a.gap, Some((3, 4)));
    assert!(a.wants_rebirth());
    assert_eq!(
        a.points[0].value,
        Value::UInt(3),
        "the good message is kept"
    );
}

#[test]
fn seq_wraps_after_255() {
    let (mut edge, mut host) = born();
    for i in 0..600u64 {
        let m = edge.data(Some("cnc-1"), T0 + i, &[("parts", Value::UInt(i))]);
        assert_eq!(expect_ok(&mut host, &m).gap, None, "message {i}");
    }
}

#[test]
fn death_ends_the_session_only_with_the_matching_bd_seq() {
    let (edge, mut host) = born();
    let stale = EdgeNode::new("hz", "line-1", 2).death();
    expect_ok(&mut host, &stale);
    assert!(
        host.is_online("hz", "line-1"),
        "an older session's will is stale"
    );
    expect_ok(&mut host, &edge.death());
    assert!(!host.is_online("hz", "line-1"));
}

#[test]
fn a_rebirth_request_is_an_ncmd_with_the_rebirth_metric() {
    let (topic, bytes) = rebirth_request("hz", "line-1", T0);
    assert_eq!(topic, "spBv1.0/hz/NCMD/line-1");
    let p = decode_payload(&bytes).unwrap_or_default();
    assert_eq!(p.metrics.len(), 1);
    assert_eq!(p.metrics[0].name.as_deref(), Some(REBIRTH_METRIC));
    assert_eq!(p.metrics[0].value, Some(Wire::BooleanValue(true)));
    assert_eq!(p.metrics[0].datatype, Some(DataType::Boolean as u32));
}

fn payload(seq: Option<u64>, metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        timestamp: Some(T0),
        seq,
        metrics,
        ..Default::default()
    }
    .encode_to_vec()
}

fn metric(name: Option<&str>, alias: Option<u64>, datatype: DataType, wire: Wire) -> Metric {
    Metric {
        name: name.map(str::to_owned),
        alias,
        datatype: Some(datatype as u32),
        value: Some(wire),
        ..Default::default()
    }
}

#[test]
fn every_kind_of_bad_sparkplug_message_is_refused_with_its_reason() {
    let ddata = "spBv1.0/hz/DDATA/line-1/cnc-1";
    let nbirth = "spBv1.0/hz/NBIRTH/line-1";
    let bd = metric(Some("bdSeq"), None, DataType::UInt64, Wire::LongValue(3));
    let cases: Vec<(&str, &str, Vec<u8>, bool)> = vec![
        (
            "payload_too_large",
            ddata,
            vec![0u8; 16 * 1024 * 1024 + 1],
            false,
        ),
        (
            "not_sparkplug_topic",
            "spBv2.0/hz/NDATA/x",
            payload(Some(0), vec![]),
            false,
        ),
        (
            "unknown_message_type",
            "spBv1.0/hz/XDATA/x",
            payload(Some(0), vec![]),
            false,
        ),
        ("malformed_protobuf", ddata, vec![0x0A, 0xFF, 0xFF], false),
        ("missing_seq", ddata, payload(None, vec![]), false),
        ("seq_out_of_range", ddata, payload(Some(256), vec![]), false),
        ("missing_bdseq", nbirth, payload(Some(0), vec![]), false),
        (
            "metric_without_name",
            nbirth,
            payload(
                Some(0),
                vec![
                    bd.clone(),
                    metric(None, Some(1), DataType::Double, Wire::DoubleValue(1.0)),
                ],
            ),
            false,
        ),
        (
            "duplicate_alias",
            nbirth,
            payload(
                Some(0),
                vec![
                    bd.clone(),
                    metric(Some("a"), Some(1), DataType::Double, Wire::DoubleValue(1.0)),
                    metric(Some("b"), Some(1), DataType::Double, Wire::DoubleValue(1.0)),
                ],
            ),
            false,
        ),
        (
            "type_mismatch",
            nbirth,
            payload(
                Some(0),
                vec![
                    bd.clone(),
                    metric(
                        Some("a"),
                        Some(1),
                        DataType::Double,
                        Wire::StringValue("x".into()),
                    ),
                ],
            ),
            false,
        ),
        (
            "data_before_birth",
            "spBv1.0/hz/NDATA/unborn",
            payload(Some(1), vec![]),
            true,
        ),
        (
            "unknown_alias",
            ddata,
            payload(
                Some(2),
                vec![metric(
                    None,
                    Some(99),
                    DataType::Double,
                    Wire::DoubleValue(1.0),
                )],
            ),
            true,
        ),
        (
            "unknown_metric",
            ddata,
            payload(
                Some(3),
                vec![metric(
                    Some("nope"),
                    None,
                    DataType::Double,
                    Wire::DoubleValue(1.0),
                )],
            ),
            true,
        ),
        (
            "missing_timestamp",
            ddata,
            Payload {
                seq: Some(4),
                metrics: vec![metric(
                    Some("parts"),
                    None,
                    DataType::UInt64,
                    Wire::LongValue(1),
                )],
                ..Default::default()
            }
            .encode_to_vec(),
            false,
        ),
        (
            "timestamp_out_of_range",
            ddata,
            Payload {
                seq: Some(5),
                timestamp: Some(u64::MAX),
                metrics: vec![metric(
                    Some("parts"),
                    None,
                    DataType::UInt64,
                    Wire::LongValue(1),
                )],
                ..Default::default()
            }
            .encode_to_vec(),
            false,
        ),
    ];
    let (_, mut host) = born();
    for (kind, topic, bytes, rebirth) in cases {
        let r = expect_refused(&mut host, topic, &bytes);
        assert_eq!(r.reason.kind(), kind, "{topic}: {}", r.reason);
        assert_eq!(r.rebirth, rebirth, "{kind}");
        assert!(!r.reason.to_string().is_empty());
    }
    // The session survives all of that: the node still talks.
    let ok = payload(
        Some(6),
        vec![metric(
            Some("parts"),
            None,
            DataType::UInt64,
            Wire::LongValue(7),
        )],
    );
    let a = host.handle(ddata, &ok).map(|a| a.points.len());
    assert_eq!(a, Ok(1));
}

#[test]
fn every_kind_of_bad_json_message_is_refused_with_its_reason() {
    let cases: Vec<(&str, &str, &[u8])> = vec![
        ("json_topic", "factory/hz/cnc-1/t", b"1"),
        ("json_topic", "aifactory/hz", b"1"),
        ("json_topic", "aifactory/hz/+/t", b"1"),
        ("json_topic", "aifactory/hz/cnc-1/t/extra", b"1"),
        ("json_syntax", "aifactory/hz/cnc-1/t", b"{\"value\": "),
        ("json_shape", "aifactory/hz/cnc-1/t", b"null"),
        ("json_shape", "aifactory/hz/cnc-1/t", b"[1, 2]"),
        ("json_shape", "aifactory/hz/cnc-1/t", b"{\"ts\": 5}"),
        (
            "json_shape",
            "aifactory/hz/cnc-1/t",
            b"{\"value\": 1, \"unit\": \"C\"}",
        ),
        (
            "json_shape",
            "aifactory/hz/cnc-1/t",
            b"{\"value\": 1, \"ts\": \"yesterday\"}",
        ),
        (
            "json_shape",
            "aifactory/hz/cnc-1/t",
            b"{\"value\": 1, \"seq\": -1}",
        ),
        ("json_shape", "aifactory/hz/cnc-1", b"{\"values\": [1]}"),
        (
            "json_shape",
            "aifactory/hz/cnc-1",
            b"{\"values\": {\"a/b\": 1}}",
        ),
        (
            "timestamp_out_of_range",
            "aifactory/hz/cnc-1/t",
            b"{\"value\": 1, \"ts\": -1}",
        ),
        (
            "timestamp_out_of_range",
            "aifactory/hz/cnc-1/t",
            b"{\"value\": 1, \"ts\": 1.5}",
        ),
    ];
    for (kind, topic, body) in cases {
        let r = json::decode(topic, body, 0);
        assert_eq!(
            r.as_ref().err().map(|e| e.kind()),
            Some(kind),
            "{topic} {}: {r:?}",
            String::from_utf8_lossy(body)
        );
    }
}

fn value_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        (-1e300f64..1e300).prop_map(Value::Float),
        ".{0,20}".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
    ]
}

proptest! {
    #[test]
    fn anything_on_the_wire_is_refused_or_taken_never_a_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        kind in prop::sample::select(vec!["NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA", "NCMD", "STATE"]),
        device in prop::option::of("[a-z]{1,3}"),
    ) {
        let (_, mut host) = born();
        let topic = match device {
            Some(d) => format!("spBv1.0/hz/{kind}/line-1/{d}"),
            None => format!("spBv1.0/hz/{kind}/line-1"),
        };
        let _ = host.handle(&topic, &bytes);
        let _ = json::decode("aifactory/hz/cnc-1/t", &bytes, 0);
        let _ = json::decode("aifactory/hz/cnc-1", &bytes, 0);
    }

    #[test]
    fn json_objects_of_any_shape_never_panic(text in "[\\[\\]{}:,\"a-z0-9 .eE+-]{0,60}") {
        let _ = json::decode("aifactory/hz/cnc-1", text.as_bytes(), 0);
        let _ = json::decode("aifactory/hz/cnc-1/t", text.as_bytes(), 0);
    }

    #[test]
    fn values_round_trip_through_birth_and_data(
        values in proptest::collection::vec(value_strategy(), 1..12),
        later in proptest::collection::vec(value_strategy(), 1..12),
    ) {
        let mut edge = EdgeNode::new("g", "n", 0);
        let mut host = HostSession::new();
        let names: Vec<String> = (0..values.len()).map(|i| format!("m{i}")).collect();
        let born: Vec<(&str, Value)> = names.iter().map(String::as_str).zip(values.iter().cloned()).collect();
        prop_assert!(host.handle(&edge.birth(T0, &[]).topic, &edge.birth(T0, &[]).payload).is_ok());
        let m = edge.device_birth("d", T0, &born);
        let a = host.handle(&m.topic, &m.payload).map_err(|e| TestCaseError::fail(e.reason.to_string()))?;
        let got: Vec<Value> = a.points.iter().map(|p| p.value.clone()).collect();
        prop_assert_eq!(&got, &values);
        // Data by alias, with values of the same types as born.
        let update: Vec<(&str, Value)> = born
            .iter()
            .zip(later.iter().cycle())
            .filter(|((_, v), l)| std::mem::discriminant(v) == std::mem::discriminant(*l))
            .map(|((n, _), l)| (*n, l.clone()))
            .collect();
        let m = edge.data(Some("d"), T0 + 5, &update);
        let a = host.handle(&m.topic, &m.payload).map_err(|e| TestCaseError::fail(e.reason.to_string()))?;
        let got: Vec<(String, Value)> = a.points.iter().map(|p| (p.series.metric.to_string(), p.value.clone())).collect();
        let want: Vec<(String, Value)> = update.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect();
        prop_assert_eq!(got, want);
    }
}
