"""Sparkplug B interop, checked by independent implementations: Eclipse Paho (MQTT) and Google's
protobuf runtime compiled from the specification's .proto (nothing of ours on the Python side).

Both directions, against a real broker:
  1. the twin publishes (`aifactory sim --mqtt`); this script subscribes, decodes every message
     with Google protobuf and checks the Sparkplug rules: NBIRTH first with seq 0 and a bdSeq
     metric; seq +1 (mod 256) on every later message; every DDATA metric is an alias declared in
     its device's DBIRTH; every DDATA value has the type its birth declared.
  2. this script publishes an edge node (NBIRTH, DBIRTH, DDATA by alias) encoded with Google
     protobuf; `aifactory ingest` stores it; the points it reports must equal what was sent.

usage: pip install paho-mqtt grpcio-tools
       python3 bench/interop/sparkplug_interop.py [--mqtt mqtt://127.0.0.1:1883] [--bin PATH]
Prints one JSON object; exit 1 if a rule is broken.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROTO_DIR = os.path.join(ROOT, "crates", "connect", "proto")


def load_proto():
    out = tempfile.mkdtemp(prefix="spb-")
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", "sparkplug_b.proto"])
    if rc != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)
    import sparkplug_b_pb2  # noqa: E402
    return sparkplug_b_pb2


def broker_of(url):
    rest = url.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.partition(":")
    return host, int(port or 1883)


def twin_to_paho(pb, args, host, port, problems):
    plant = os.path.join(ROOT, "plants", "electronics-assembly.toml")
    site = "sz-electronics"
    received = []
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(_c, _u, msg):
        with lock:
            received.append((msg.topic, msg.payload))

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"interop-sub-{os.getpid()}")
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(host, port)
    client.subscribe(f"spBv1.0/{site}/#", qos=1)
    client.loop_start()
    subscribed.wait(10)
    out = subprocess.run([args.bin, "sim", "--plant", plant, "--days", "0.2", "--telemetry-period", "600",
                          "--mqtt", args.mqtt, "--mqtt-client-id", f"interop-twin-{os.getpid()}", "--json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        problems.append(f"sim failed: {out.stderr.strip()}")
        return {}
    sent = json.loads(out.stdout)["mqtt"]["messages"]
    deadline = time.time() + 20
    while time.time() < deadline:
        with lock:
            if len(received) >= sent:
                break
        time.sleep(0.1)
    client.loop_stop()
    client.disconnect()

    births = {}  # device -> {alias: (name, datatype)}
    expected_seq = None
    points = 0
    for i, (topic, payload) in enumerate(received):
        parts = topic.split("/")
        kind = parts[2]
        p = pb.Payload()
        p.ParseFromString(payload)
        if i == 0:
            if kind != "NBIRTH" or p.seq != 0 or not any(m.name == "bdSeq" for m in p.metrics):
                problems.append(f"first message is {kind} seq {p.seq}, not an NBIRTH with seq 0 and bdSeq")
        elif kind != "NDEATH":
            if p.seq != expected_seq:
                problems.append(f"message {i} ({topic}): seq {p.seq}, expected {expected_seq}")
        if kind != "NDEATH":
            expected_seq = (p.seq + 1) % 256
        if kind == "DBIRTH":
            births[parts[4]] = {m.alias: (m.name, m.datatype) for m in p.metrics}
        if kind == "DDATA":
            declared = births.get(parts[4])
            if declared is None:
                problems.append(f"DDATA for {parts[4]} before its DBIRTH")
                continue
            for m in p.metrics:
                if m.alias not in declared:
                    problems.append(f"{topic}: alias {m.alias} not in the DBIRTH")
                    continue
                _, dt = declared[m.alias]
                field = m.WhichOneof("value")
                want = {10: "double_value", 12: "string_value"}.get(dt)
                if want and field != want:
                    problems.append(f"{topic}: {declared[m.alias][0]} declared type {dt} but carries {field}")
                points += 1
    return {"published": sent, "received": len(received), "devices": len(births), "ddata_points": points}


def paho_to_ingest(pb, args, host, port, problems):
    group = f"interop{os.getpid()}"
    db = os.path.join(tempfile.mkdtemp(prefix="ingest-"), "plant.sqlite")
    client_id = f"interop-ingest-{os.getpid()}"
    ingest = lambda secs: subprocess.run(
        [args.bin, "ingest", "--mqtt", args.mqtt, "--db", db, "--client-id", client_id,
         "--topic", f"spBv1.0/{group}/#", "--duration", secs, "--json"], capture_output=True, text=True)
    first = ingest("0.5")  # registers the persistent session and its subscription
    if first.returncode != 0:
        problems.append(f"ingest failed: {first.stderr.strip()}")
        return {}
    now = int(time.time() * 1000)
    seq = 0

    def payload(metrics, with_seq=True):
        nonlocal seq
        p = pb.Payload()
        p.timestamp = now
        if with_seq:
            p.seq = seq
            seq = (seq + 1) % 256
        # In DATA messages the type is left out, as the specification allows: it is in the birth.
        for name, alias, dt, value in metrics:
            m = p.metrics.add()
            if name is not None:
                m.name = name
            if alias is not None:
                m.alias = alias
            if name is not None:
                m.datatype = dt
            m.timestamp = now
            if dt == 10:
                m.double_value = value
            elif dt == 8:
                m.long_value = value
            elif dt == 3:
                m.int_value = value & 0xFFFFFFFF  # Int32 as two's complement
        return p.SerializeToString()

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"interop-pub-{os.getpid()}")
    pub.connect(host, port)
    pub.loop_start()
    sent_points = 0
    msgs = [(f"spBv1.0/{group}/NBIRTH/edge", payload([("bdSeq", None, 8, 0)]))]
    msgs.append((f"spBv1.0/{group}/DBIRTH/edge/press-1",
                 payload([("force_kn", 1, 10, 12.5), ("strokes", 2, 8, 0), ("offset", 3, 3, -7)])))
    sent_points += 3
    for i in range(200):
        msgs.append((f"spBv1.0/{group}/DDATA/edge/press-1",
                     payload([(None, 1, 10, 12.5 + i), (None, 2, 8, i), (None, 3, 3, -i)])))
        sent_points += 3
    for topic, body in msgs:
        pub.publish(topic, body, qos=1).wait_for_publish(10)
    pub.loop_stop()
    pub.disconnect()
    second = ingest("3")
    if second.returncode != 0:
        problems.append(f"ingest failed: {second.stderr.strip()}")
        return {}
    stats = json.loads(second.stdout)
    if stats["points"] != sent_points:
        problems.append(f"ingest stored {stats['points']} points, {sent_points} were sent")
    if stats["quarantined"] != 0:
        problems.append(f"ingest quarantined {stats['quarantined']}: {stats['quarantined_by_reason']}")
    return {"sent_messages": len(msgs), "sent_points": sent_points, "ingested_points": stats["points"],
            "quarantined": stats["quarantined"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mqtt", default=os.environ.get("AIFACTORY_TEST_MQTT_URL", "mqtt://127.0.0.1:1883"))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--bin", default=os.path.join(target, "release", "aifactory"))
    args = ap.parse_args()
    pb = load_proto()
    host, port = broker_of(args.mqtt)
    problems = []
    result = {"twin_to_paho": twin_to_paho(pb, args, host, port, problems),
              "paho_to_ingest": paho_to_ingest(pb, args, host, port, problems),
              "problems": problems}
    print(json.dumps(result, indent=1))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
