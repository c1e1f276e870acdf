#!/usr/bin/env python3
"""A plant aifactory did not write: a small machining job shop that speaks docs/PLANT-CONTRACT.md.

It reads only the plant file's master data (ids, routings, machine types) and makes its own day:
orders arrive, work orders run their routings on the machines, MILL-02 breaks down once, and the
shop obeys (or refuses) the commands it is sent over MQTT, acknowledging each one. It shares no
code with aifactory's own simulator, so a run against aifactory tests the wire contract itself.

Standard library plus paho-mqtt 2.x only. See README.md in this folder for the flags.
"""
import argparse
import json
import math
import random
import socket
import sys
import threading
import time
import tomllib
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

SPEC = "aifactory/1"
SOURCE = "emu-mes"               # one source for every event and ack, so one seq counter
STEP_MS = 60_000                 # the plant advances one minute at a time
ORDERS = 12                      # customer orders in a day ...
ORDER_WINDOW_MIN = 10 * 60       # ... arriving over the first ten hours
DUE_MS = 8 * 3_600_000
SCRAP_P = 0.02
BREAKDOWN_MACHINE = "MILL-02"
BREAKDOWN_AFTER_MS = 6 * 3_600_000
REPAIR_MS = 90 * 60_000
AMBIENT_C = 22.0
REJECT_REASON = "machine in manual mode: operator at the panel"

# Contract state codes, with the PackML word each one stands for (sent as `raw`).
RUNNING = (10000, "PackML:Execute")
SETUP = (130000, "PackML:Setup")
IDLE = (170000, "PackML:Idle")
FAILED = (180000, "PackML:Aborted")
MAINTENANCE = (210000, "PackML:Maintenance")


def log(msg):
    """Diagnostics go to stderr, so stdout carries only the summary line."""
    print(f"emulator: {msg}", file=sys.stderr, flush=True)


def to_ms(value):
    """A contract time (ms since the epoch, or an RFC 3339 string) as int ms; ValueError if neither."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1000)
    raise ValueError(value)


def is_number(value):
    """True for a finite JSON number (bool is an int in Python, but not a number on the wire)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------- master data

class Plant:
    """The plant file's master data, as far as the emulator uses it."""

    def __init__(self, path):
        with open(path, "rb") as f:
            data = tomllib.load(f)
        self.site = data["plant"]["id"]
        start = data["plant"]["start"]
        if isinstance(start, str):
            start = datetime.fromisoformat(start)
        if start.tzinfo is None:      # a TOML local datetime: read it as UTC rather than guess
            start = start.replace(tzinfo=timezone.utc)
        self.tz = start.tzinfo
        self.start_ms = int(start.timestamp() * 1000)
        types = {t["id"]: t for t in data["machine_types"]}
        self.machines = [(m["id"], types[m["type"]]) for m in data["machines"]]
        self.products = data["products"]
        ids = {m for m, _ in self.machines}
        for p in self.products:
            for n, step in enumerate(p["routing"]):
                unknown = set(step["times"]) - ids
                if unknown:
                    raise ValueError(f"{p['id']} step {n} names unknown machines {sorted(unknown)}")

    def product(self, pid):
        """The product record for an id."""
        return next(p for p in self.products if p["id"] == pid)

    def param_range(self, machine, name):
        """[min, max] of a process parameter of some routing step that runs on the machine, or None."""
        for p in self.products:
            for step in p["routing"]:
                if machine in step["times"]:
                    for param in step.get("params", []):
                        if param["name"] == name:
                            return float(param["min"]), float(param["max"])
        return None

    def clock(self, ms):
        """Plant time as a readable local timestamp, for messages to people."""
        return datetime.fromtimestamp(ms / 1000, self.tz).isoformat(timespec="minutes")


# --------------------------------------------------------------------------- MQTT

class Wire:
    """The MQTT side: publishes with QoS 1 and collects commands and lockstep answers."""

    def __init__(self, broker, client_id, site):
        url = urlparse(broker if "://" in broker else "mqtt://" + broker)
        if url.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"unsupported broker scheme {url.scheme!r} (use mqtt://host:port)")
        self.prefix = f"aifactory/{site}/"
        self.cond = threading.Condition()
        self.commands = deque()      # (command dict, topic machine) in arrival order
        self.arrived = set()         # ids of every well-formed command that arrived
        self.answers = {}            # heartbeat id -> command ids listed in its answer
        self.malformed = 0
        self.subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id, clean_session=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(url.hostname or "127.0.0.1", url.port or 1883, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise ConnectionError(f"no subscription acknowledged by {broker} within 10 s")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        """(Re)subscribe on every connect: a clean session forgets subscriptions."""
        if reason_code.is_failure:
            log(f"broker refused the connection: {reason_code}")
            return
        client.subscribe([(self.prefix + "_sync", 1), (self.prefix + "_commands/#", 1)])
        # Lockstep is a chain of small request/answer messages: Nagle's algorithm would hold each one
        # back for the peer's delayed ACK (~40 ms a step on Linux), so send small packets at once.
        sock = client.socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _quickack(self):
        """ACK what the broker sent us now rather than after the delayed-ACK timer (Linux only).

        Brokers commonly run with Nagle on; the broker would then hold the lockstep answer until our
        kernel ACKs its PUBACK of the heartbeat, i.e. ~40 ms per step. Harmless where unsupported."""
        sock = self.client.socket()
        if sock is not None and hasattr(socket, "TCP_QUICKACK"):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            except OSError:
                pass

    def _on_message(self, client, userdata, msg):
        """Decode defensively: anything that is not what the contract says is logged and dropped."""
        try:
            body = json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError):
            body = None
        with self.cond:
            if msg.topic == self.prefix + "_sync":
                if (isinstance(body, dict) and isinstance(body.get("correlation"), str)
                        and isinstance(body.get("commands", []), list)):
                    self.answers[body["correlation"]] = [str(c) for c in body.get("commands", [])]
                else:
                    log(f"ignoring malformed answer on {msg.topic}: {msg.payload[:200]!r}")
            else:
                machine = msg.topic[len(self.prefix + "_commands/"):]
                if isinstance(body, dict) and isinstance(body.get("id"), str):
                    self.arrived.add(body["id"])   # even if unusable: lockstep must not wait for it
                if (not isinstance(body, dict) or not isinstance(body.get("id"), str)
                        or not isinstance(body.get("action"), str)):
                    self.malformed += 1
                    log(f"ignoring malformed command on {msg.topic}: {msg.payload[:200]!r}")
                else:
                    if msg.retain:
                        log(f"command {body['id']} came retained on {msg.topic}; handling it")
                    self.commands.append((body, machine))
            self.cond.notify_all()

    def publish(self, topic, payload):
        """Publish one JSON message with QoS 1 and wait for the broker's PUBACK (keeps order, loses nothing)."""
        info = self.client.publish(self.prefix + topic, json.dumps(payload, separators=(",", ":")), qos=1)
        try:
            info.wait_for_publish(timeout=30)
        except RuntimeError as e:     # paho raises this when it is not connected
            raise ConnectionError(f"publish on {topic} failed: {e}") from e
        if not info.is_published():
            raise ConnectionError(f"broker did not acknowledge a publish on {topic} within 30 s")

    def wait_answer(self, hb_id, timeout):
        """Wait for the answer to heartbeat hb_id and every command it lists; None if they all came,
        else a sentence saying what is missing."""
        deadline = time.monotonic() + timeout
        self._quickack()
        with self.cond:
            if not self.cond.wait_for(lambda: hb_id in self.answers, timeout):
                return "no answer on _sync"
            wanted = self.answers.pop(hb_id)
            left = max(0.0, deadline - time.monotonic())
            if not self.cond.wait_for(lambda: all(c in self.arrived for c in wanted), left):
                return f"answered, but commands {[c for c in wanted if c not in self.arrived]} never arrived"
        return None

    def take_commands(self):
        """Every command that has arrived so far, oldest first."""
        with self.cond:
            out = list(self.commands)
            self.commands.clear()
        return out

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


# --------------------------------------------------------------------------- the shop

@dataclass
class WorkOrder:
    id: str
    sales_order: str
    product: str
    quantity: int        # units entering the current step (the good units of the one before)
    due: int
    step: int = 0
    state: str = "waiting"   # waiting | busy | done
    ready: int = 0           # when it began waiting at this step (first come, first served)


@dataclass
class Op:
    wo: WorkOrder
    setup_end: int
    end: int


@dataclass
class Machine:
    id: str
    mtype: dict
    phase: str = "idle"      # idle | setup | run | failed | maint
    until: int = 0           # when the current phase ends (not used while idle)
    op: Op = None
    state: tuple = None      # the last machine_state published
    last_product: str = None
    dispatch: dict = None    # the current dispatch_list command
    maint: dict = None       # an accepted start_maintenance command, waiting for the machine
    resume: tuple = None     # (set-up ms, run ms) left of the op a failure interrupted
    idle_since: int = None   # when it was last seen free with nothing started
    setpoints: dict = field(default_factory=dict)
    temp: float = AMBIENT_C
    tel_seq: int = 0


class Shop:
    """The plant's state and rules; every change it makes is published as a contract event."""

    def __init__(self, plant, wire, seed, reject_k=None, ignore_k=None, dispatch_wait_min=0.0):
        self.plant, self.wire = plant, wire
        self.rng = random.Random(seed)                 # the shop: arrivals and scrap
        self.noise = random.Random(seed + 1_000_003)   # sensor noise, kept apart so telemetry never
        #                                                changes what the shop does
        self.machines = [Machine(mid, mtype) for mid, mtype in plant.machines]
        self.by_id = {m.id: m for m in self.machines}
        self.work_orders = {}
        self.sales_due = {}
        self.reject_k, self.ignore_k = reject_k, ignore_k
        self.dispatch_wait_ms = int(dispatch_wait_min * 60_000)
        self.seq = 0
        self.dirty = False               # published events or acks since the last answered heartbeat
        self.given = {}                  # command id -> ack envelopes given for it (for duplicates)
        self.dispatch_seen = 0
        self.broken = False
        self.stats = Counter()
        self.events, self.actions, self.acks = Counter(), Counter(), Counter()
        self.rejected, self.ignored = [], []
        minutes = sorted(self.rng.sample(range(ORDER_WINDOW_MIN), ORDERS))
        self.arrivals = deque(plant.start_ms + m * 60_000 for m in minutes)

    # ---- publishing

    def envelope(self, etype, t, correlation=None, machine=None, order=None):
        """A fresh envelope of our source: the next seq and an id that is never reused."""
        self.seq += 1
        env = {"spec": SPEC, "id": f"{SOURCE}-{self.seq:06d}", "type": etype, "source": SOURCE,
               "time": t, "seq": self.seq}
        for key, value in (("correlation", correlation), ("machine", machine), ("order", order)):
            if value is not None:
                env[key] = value
        return env

    def event(self, etype, t, machine=None, order=None, data=None, correlation=None):
        """Publish one event on _events."""
        env = self.envelope(etype, t, correlation, machine, order)
        if data is not None:
            env["data"] = data
        self.wire.publish("_events", env)
        self.events[etype] += 1
        if etype != "heartbeat":
            self.dirty = True
        return env

    def ack(self, cmd_id, status, t, reason=None, read_back=None):
        """Publish one acknowledgement on _acks and remember it, to repeat it for a duplicate."""
        env = self.envelope("ack", t, correlation=cmd_id)
        env["status"] = status
        if reason is not None:
            env["reason"] = reason
        if read_back is not None:
            env["read_back"] = read_back
        self.wire.publish("_acks", env)
        self.dirty = True
        self.given.setdefault(cmd_id, []).append(env)
        self.acks[status] += 1
        if status == "rejected":
            self.rejected.append(cmd_id)

    def set_state(self, m, state, t):
        """Publish machine_state only when the state really changes."""
        if m.state != state:
            m.state = state
            self.event("machine_state", t, machine=m.id, data={"code": state[0], "raw": state[1]})

    # ---- step 1: what happens up to T

    def advance(self, T):
        """Apply every phase end up to T in time order, then the breakdown, arrivals and telemetry."""
        if T == self.plant.start_ms:
            for m in self.machines:
                self.set_state(m, IDLE, T)
        while True:
            due = [m for m in self.machines if m.phase != "idle" and m.until <= T]
            if not due:
                break
            self.transition(min(due, key=lambda m: m.until))   # min() keeps plant-file order on ties
        self.maybe_break(T)
        while self.arrivals and self.arrivals[0] <= T:
            self.order_arrives(self.arrivals.popleft())
        self.telemetry(T)

    def transition(self, m):
        """The machine's current phase has ended at m.until."""
        t = m.until
        if m.phase == "setup":
            m.phase, m.until = "run", m.op.end
            self.set_state(m, RUNNING, t)
        elif m.phase == "run":
            self.complete_op(m, t)
        elif m.phase == "failed":
            self.event("repair_completed", t, machine=m.id)
            setup_left, run_left = m.resume
            m.resume = None
            m.op.setup_end = t + setup_left
            m.op.end = m.op.setup_end + run_left
            # The interrupted operation carries on where it stopped.
            if setup_left > 0:
                m.phase, m.until = "setup", m.op.setup_end
                self.set_state(m, SETUP, t)
            else:
                m.phase, m.until = "run", m.op.end
                self.set_state(m, RUNNING, t)
        elif m.phase == "maint":
            m.phase = "idle"
            self.event("maintenance_completed", t, machine=m.id)
            self.stats["maintenances_completed"] += 1
            self.set_state(m, IDLE, t)

    def complete_op(self, m, t):
        """An operation ends: count scrap, move the work order on, complete its sales order at the end."""
        wo = m.op.wo
        product = self.plant.product(wo.product)
        scrapped = sum(1 for _ in range(wo.quantity) if self.rng.random() < SCRAP_P)
        good = wo.quantity - scrapped
        self.event("operation_completed", t, machine=m.id, order=wo.id,
                   data={"step": wo.step, "good": good, "scrapped": scrapped, "product": wo.product})
        self.stats["operations_completed"] += 1
        wo.quantity, wo.step, wo.ready = good, wo.step + 1, t
        if wo.step == len(product["routing"]):
            wo.state = "done"
            late_h = max(0.0, (t - wo.due) / 3_600_000)
            self.event("order_completed", t, order=wo.sales_order, data={"late_h": round(late_h, 3)})
            self.stats["orders_completed"] += 1
        else:
            wo.state = "waiting"
        m.op, m.phase = None, "idle"
        self.set_state(m, IDLE, t)

    def maybe_break(self, T):
        """The day's one breakdown: MILL-02, the first time after hour 6 that it has an operation on."""
        m = self.by_id.get(BREAKDOWN_MACHINE)
        if self.broken or m is None or T < self.plant.start_ms + BREAKDOWN_AFTER_MS:
            return
        if m.phase not in ("setup", "run"):
            return
        self.broken = True
        setup_left = max(0, m.op.setup_end - T)
        m.resume = (setup_left, m.op.end - max(T, m.op.setup_end))
        m.phase, m.until = "failed", T + REPAIR_MS
        self.event("machine_failed", T, machine=m.id, data={"mode": "spindle_bearing"})
        self.stats["breakdowns"] += 1
        self.set_state(m, FAILED, T)

    def order_arrives(self, t):
        """A customer order arrives and is released at once as one work order."""
        n = len(self.sales_due) + 1
        product = self.plant.products[(n - 1) % len(self.plant.products)]
        so, wo_id, qty = f"SO-{n:06d}", f"WO-{n:06d}", int(product["lot_size"])
        self.sales_due[so] = t + DUE_MS
        self.event("order_received", t, order=so,
                   data={"product": product["id"], "quantity": qty, "due": t + DUE_MS})
        self.event("order_released", t, order=so, data={"quantity": qty})
        self.event("work_order_released", t, order=wo_id,
                   data={"product": product["id"], "quantity": qty, "sales_order": so})
        self.work_orders[wo_id] = WorkOrder(wo_id, so, product["id"], qty, t + DUE_MS, ready=t)
        self.stats["orders_received"] += 1

    def telemetry(self, T):
        """One reading per machine on aifactory/{site}/{machine}, its level set by what the machine does."""
        for m in self.machines:
            s = m.mtype["sensors"]
            # (share of nominal vibration, of nominal current, of the temperature rise)
            level = {"run": (1.0, 1.0, 1.0), "setup": (0.15, 0.2, 0.3), "idle": (0.05, 0.1, 0.1),
                     "failed": (0.0, 0.02, 0.0), "maint": (0.0, 0.02, 0.0)}[m.phase]
            vib = s["vibration_mm_s"] * level[0]
            if m.id == BREAKDOWN_MACHINE and not self.broken and m.phase == "run":
                # The failing spindle bearing shows: vibration climbs from hour 4 until it gives way.
                hours = (T - self.plant.start_ms) / 3_600_000
                vib *= 1 + 0.8 * min(1.0, max(0.0, (hours - 4) / 2))
            target = AMBIENT_C + s["temperature_rise_c"] * level[2]
            m.temp += (target - m.temp) * (1 - math.exp(-STEP_MS / 1_200_000))   # 20 min time constant
            m.tel_seq += 1
            values = {"vibration": round(max(0.0, vib * (1 + self.noise.gauss(0, 0.05))), 3),
                      "temperature": round(m.temp + self.noise.gauss(0, 0.2), 2),
                      "current": round(max(0.0, s["current_a"] * level[1] * (1 + self.noise.gauss(0, 0.03))), 2)}
            self.wire.publish(m.id, {"ts": T, "seq": m.tel_seq, "values": values})

    def heartbeat(self, T, answer):
        """The source's clock stands at T; with answer, ask aifactory to decide before we move on."""
        self.stats["heartbeats"] += 1
        if answer:
            self.stats["answers_asked"] += 1
            self.dirty = False
        return self.event("heartbeat", T, data={"answer": True} if answer else None)

    # ---- step 3: commands

    def handle_command(self, cmd, topic_machine, T):
        """Answer one command as the contract says; never raises on what the sender got wrong."""
        cid, action = cmd["id"], cmd["action"]
        if cid in self.given or cid in self.ignored:
            # Seen before: do nothing again, repeat what we said (the same envelopes, so a lost ack
            # arrives now and one that did arrive is recognised as a duplicate by its id).
            self.stats["duplicates"] += 1
            for env in self.given.get(cid, []):
                self.wire.publish("_acks", env)
            return
        self.actions[action] += 1
        if action == "dispatch_list":
            self.dispatch_seen += 1
            if self.dispatch_seen == self.ignore_k:
                self.ignored.append(cid)
                log(f"--ignore: ignoring dispatch_list {cid} at {self.plant.clock(T)}")
                return
            if self.dispatch_seen == self.reject_k:
                self.ack(cid, "received", T)
                self.ack(cid, "rejected", T, reason=REJECT_REASON)
                return
        self.ack(cid, "received", T)
        if "expires" in cmd:
            try:
                expires = to_ms(cmd["expires"])
            except ValueError:
                self.ack(cid, "rejected", T, reason=f"unreadable expires {cmd['expires']!r}")
                return
            if expires < T:
                self.ack(cid, "expired", T, reason=f"expired at {expires}, plant time {T}")
                return
        if str(cmd.get("spec", SPEC)).split(".")[0] != SPEC:
            self.ack(cid, "rejected", T, reason=f"unknown spec {cmd.get('spec')!r}")
            return
        handler = {"dispatch_list": self.cmd_dispatch, "start_maintenance": self.cmd_maintenance,
                   "set_point": self.cmd_set_point}.get(action)
        if handler is None:
            self.ack(cid, "rejected", T, reason=f"unknown action {action!r}")
            return
        # A command on _commands/_plant must name its machine; one on _commands/{machine} may rely on the topic.
        mid = cmd.get("machine", None if topic_machine == "_plant" else topic_machine)
        if not isinstance(mid, str) or mid not in self.by_id:
            self.ack(cid, "rejected", T, reason=f"unknown machine {mid!r}")
            return
        handler(cmd, self.by_id[mid], T)

    def cmd_dispatch(self, cmd, m, T):
        """Keep a dispatch list as the machine's current one; it is used the next time the machine is free."""
        jobs = cmd.get("jobs")
        if not isinstance(jobs, list) or not all(
                isinstance(j, dict) and isinstance(j.get("order"), str) and isinstance(j.get("step"), int)
                and not isinstance(j.get("step"), bool) for j in jobs):
            self.ack(cmd["id"], "rejected", T, reason='jobs must be a list of {"order": str, "step": int}')
            return
        for j in jobs:   # an unknown id is refused, never guessed at
            wo = self.work_orders.get(j["order"])
            if wo is None:
                self.ack(cmd["id"], "rejected", T, reason=f"unknown work order {j['order']!r}")
                return
            if not 0 <= j["step"] < len(self.plant.product(wo.product)["routing"]):
                self.ack(cmd["id"], "rejected", T, reason=f"work order {wo.id} has no step {j['step']}")
                return
        self.ack(cmd["id"], "accepted", T)
        if m.dispatch is not None:
            self.ack(m.dispatch["id"], "failed", T, reason="superseded")
        m.dispatch = cmd

    def cmd_maintenance(self, cmd, m, T):
        """Take the machine out for preventive maintenance as soon as it is free."""
        if m.maint is not None:
            self.ack(cmd["id"], "rejected", T,
                     reason=f"maintenance of {m.id} already ordered by {m.maint['id']}")
            return
        self.ack(cmd["id"], "accepted", T)
        m.maint = cmd

    def cmd_set_point(self, cmd, m, T):
        """Write a process parameter; the controller clamps it to the plant file's range and reads it back."""
        param, value = cmd.get("param"), cmd.get("value")
        bounds = self.plant.param_range(m.id, param) if isinstance(param, str) else None
        if bounds is None:
            self.ack(cmd["id"], "rejected", T,
                     reason=f"parameter {param!r} belongs to no routing step that runs on {m.id}")
            return
        if not is_number(value):
            self.ack(cmd["id"], "rejected", T, reason=f"value {value!r} for {param} is not a number")
            return
        self.ack(cmd["id"], "accepted", T)
        m.setpoints[param] = min(max(float(value), bounds[0]), bounds[1])
        self.ack(cmd["id"], "completed", T, read_back=m.setpoints[param])

    # ---- step 4: give free machines work

    def expired(self, cmd, T):
        """True (and acknowledged `expired`) when an accepted command's time ran out before it could act."""
        if "expires" in cmd and to_ms(cmd["expires"]) < T:
            self.ack(cmd["id"], "expired", T, reason="expired before the machine was free")
            return True
        return False

    def waits_here(self, wo, step, m):
        """A work order waits at this step, and the step can run on this machine."""
        routing = self.plant.product(wo.product)["routing"]
        return wo.state == "waiting" and wo.step == step and m.id in routing[step]["times"]

    def assign(self, T):
        """Every free machine takes its next task: maintenance first, then its dispatch list, then FCFS."""
        for m in self.machines:
            if m.phase != "idle":
                continue
            if m.maint is not None:
                cmd, m.maint = m.maint, None
                if not self.expired(cmd, T):
                    self.start_maintenance(m, cmd, T)
                    continue
            wo, cmd = None, None
            if m.dispatch is not None:
                cmd, m.dispatch = m.dispatch, None   # a list is used once: for the next job it starts
                if self.expired(cmd, T):
                    cmd = None
                else:
                    wo = next((self.work_orders[j["order"]] for j in cmd["jobs"]
                               if self.waits_here(self.work_orders[j["order"]], j["step"], m)), None)
                    if wo is None:
                        self.ack(cmd["id"], "failed", T,
                                 reason=f"none of the {len(cmd['jobs'])} jobs on the list waits at its step for {m.id}")
                        cmd = None
            if m.idle_since is None:
                m.idle_since = T
            if wo is None and T - m.idle_since < self.dispatch_wait_ms:
                continue                              # an MES-run machine waits for its list a while
            if wo is None:
                waiting = [w for w in self.work_orders.values() if self.waits_here(w, w.step, m)]
                wo = min(waiting, key=lambda w: (w.ready, w.id), default=None)
            if wo is not None:
                m.idle_since = None
                self.start_op(m, wo, T, cmd["id"] if cmd else None)
                if cmd:
                    self.ack(cmd["id"], "completed", T)

    def start_maintenance(self, m, cmd, T):
        """Preventive maintenance begins; it lasts the machine type's preventive_h."""
        m.idle_since = None
        m.phase = "maint"
        m.until = T + int(m.mtype["maintenance"]["preventive_h"] * 3_600_000)
        self.event("maintenance_started", T, machine=m.id, correlation=cmd["id"], data={"reason": "preventive"})
        self.ack(cmd["id"], "completed", T)
        self.stats["maintenances"] += 1
        self.set_state(m, MAINTENANCE, T)

    def start_op(self, m, wo, T, correlation):
        """Start the work order's current step on the machine: set-up if the product changes, then the units."""
        step = self.plant.product(wo.product)["routing"][wo.step]
        setup_ms = int(step["setup_min"] * 60_000) if m.last_product != wo.product else 0
        run_ms = int(step["times"][m.id] * wo.quantity * 60_000)
        m.op = Op(wo, T + setup_ms, T + setup_ms + run_ms)
        m.last_product, wo.state = wo.product, "busy"
        self.event("operation_started", T, machine=m.id, order=wo.id, correlation=correlation,
                   data={"product": wo.product, "step": wo.step, "quantity": wo.quantity,
                         "setup_s": setup_ms // 1000})
        self.stats["operations_started"] += 1
        if setup_ms:
            m.phase, m.until = "setup", m.op.setup_end
            self.set_state(m, SETUP, T)
        else:
            m.phase, m.until = "run", m.op.end
            self.set_state(m, RUNNING, T)

    def summary(self, hours, wall_s):
        """What happened, for people and for the test that ran us."""
        return {"events": dict(sorted(self.events.items())),
                "commands": dict(sorted(self.actions.items())),
                "acks": dict(sorted(self.acks.items())),
                "rejected": self.rejected, "ignored": self.ignored,
                "duplicates": self.stats["duplicates"], "malformed": self.wire.malformed,
                "orders": {"received": self.stats["orders_received"],
                           "completed": self.stats["orders_completed"]},
                "operations": {"started": self.stats["operations_started"],
                               "completed": self.stats["operations_completed"]},
                "breakdowns": self.stats["breakdowns"], "maintenances": self.stats["maintenances"],
                "plant_hours": hours, "heartbeats": self.stats["heartbeats"],
                "answers": self.stats["answers_asked"], "wall_s": round(wall_s, 3)}


# --------------------------------------------------------------------------- main

def parse_args(argv):
    """The command line; lockstep unless --speed is given."""
    ap = argparse.ArgumentParser(description="A job-shop plant that speaks the aifactory plant contract over MQTT.")
    ap.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://host:port")
    ap.add_argument("--plant", required=True, help="the plant file (TOML)")
    ap.add_argument("--hours", type=float, default=24.0, help="plant hours to run (default 24)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the day (default 7)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--lockstep", action="store_true", help="wait for aifactory's answer every step (default)")
    mode.add_argument("--speed", type=float, help="paced: N plant seconds per wall second, never waits")
    ap.add_argument("--reject", type=int, metavar="K", help="reject the K-th dispatch_list (manual mode)")
    ap.add_argument("--ignore", type=int, metavar="K", help="never acknowledge the K-th dispatch_list")
    ap.add_argument("--dispatch-wait", type=float, default=0.0, metavar="MIN",
                    help="a free machine waits up to MIN plant minutes for its dispatch list before "
                         "taking first come, first served (default 0)")
    ap.add_argument("--answer-timeout", type=float, default=30.0, help="lockstep: wall seconds to wait (default 30)")
    ap.add_argument("--summary", metavar="FILE", help="also write the JSON summary to FILE")
    ap.add_argument("--client-id", help="MQTT client id (default <site>-1)")
    args = ap.parse_args(argv)
    if args.speed is not None and args.speed <= 0:
        ap.error("--speed must be positive")
    return args


def main(argv=None):
    """Run the day; exit 0 when done, 2 when the plant file or broker is unusable, 3 on a lockstep timeout."""
    args = parse_args(argv)
    try:
        plant = Plant(args.plant)
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as e:
        log(f"cannot use plant file {args.plant}: {e!r}")
        return 2
    lockstep = args.speed is None
    try:
        wire = Wire(args.broker, args.client_id or f"{plant.site}-1", plant.site)
    except (OSError, ValueError, ConnectionError) as e:
        log(f"cannot connect to {args.broker}: {e}")
        return 2
    shop = Shop(plant, wire, args.seed, args.reject, args.ignore, args.dispatch_wait)
    steps = int(args.hours * 3600 * 1000 // STEP_MS)
    log(f"site {plant.site}: {len(plant.machines)} machines, {steps} steps from {plant.clock(plant.start_ms)}, "
        + ("lockstep" if lockstep else f"paced at {args.speed:g}x"))
    wall0 = time.monotonic()
    try:
        for k in range(steps + 1):
            T = plant.start_ms + k * STEP_MS
            shop.advance(T)                                            # 1. what happens up to T
            # 2. tell aifactory where we stand; in lockstep, wait for its decisions whenever it has
            #    something new to decide on (a quiet minute needs no answer: nothing changed).
            ask = lockstep and (shop.dirty or k == steps)
            hb = shop.heartbeat(T, answer=ask)
            if ask:
                problem = wire.wait_answer(hb["id"], args.answer_timeout)
                if problem:
                    log(f"lockstep: heartbeat {hb['id']} at plant time {plant.clock(T)} ({T}): "
                        f"{problem} within {args.answer_timeout:g} s; giving up")
                    wire.close()
                    return 3
            elif not lockstep:
                lag = wall0 + (k + 1) * STEP_MS / 1000 / args.speed - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
            for cmd, topic_machine in wire.take_commands():            # 3. what aifactory asked for
                shop.handle_command(cmd, topic_machine, T)
            shop.assign(T)                                             # 4. free machines take work
            if k and k % 60 == 0:
                log(f"{plant.clock(T)}: orders {shop.stats['orders_completed']}/{shop.stats['orders_received']} "
                    f"completed, {shop.stats['operations_started']} operations started")
    except ConnectionError as e:
        log(f"{e}; giving up")
        wire.close()
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        wire.close()
        return 130
    wire.close()
    summary = shop.summary(steps * STEP_MS / 3_600_000, time.monotonic() - wall0)
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    print(json.dumps(summary, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
