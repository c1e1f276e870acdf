"""The benchmark job shop of bench/jobshop.toml, written in SimPy.

Same model: 4 machines, 3 products with the same routings and unit times, Poisson order arrivals
(60 orders/day per product, one unit each), FIFO queues, failures with a constant hazard of 1/50
per running hour (so only running time counts), log-normal repairs (mean 2 h, CV 0.5) that resume
the interrupted operation.

Prints one JSON object: simulated days, events scheduled, wall seconds, events per second,
finished orders and mean flow time (to check that both engines simulate the same plant).
usage: python3 bench/simpy_jobshop.py DAYS SEED [REPEAT]   (reports the fastest of REPEAT runs)
"""

import json
import math
import random
import sys
import time

import simpy

ROUTINGS = {
    "A": [("M1", 6.0), ("M2", 8.0), ("M3", 5.0)],
    "B": [("M2", 7.0), ("M4", 9.0), ("M1", 4.0)],
    "C": [("M3", 6.0), ("M1", 5.0), ("M4", 7.0)],
}
ORDERS_PER_DAY = 60.0
MTBF_MIN = 50.0 * 60.0
REPAIR_MEAN_MIN, REPAIR_CV = 2.0 * 60.0, 0.5


class CountingEnvironment(simpy.Environment):
    """Counts every event scheduled, the SimPy analogue of the twin's processed events."""

    def __init__(self):
        super().__init__()
        self.events = 0

    def schedule(self, event, priority=1, delay=0):
        self.events += 1
        super().schedule(event, priority, delay)


def lognormal(rng, mean, cv):
    sigma2 = math.log(1.0 + cv * cv)
    return rng.lognormvariate(math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2))


def machine(env, queue, rng, stats):
    budget = rng.expovariate(1.0) * MTBF_MIN  # running minutes until the next failure
    while True:
        job = yield queue.get()
        remaining = job["time"]
        while remaining > 0:
            if budget >= remaining:
                yield env.timeout(remaining)
                budget -= remaining
                remaining = 0
            else:
                yield env.timeout(budget)
                remaining -= budget
                yield env.timeout(lognormal(rng, REPAIR_MEAN_MIN, REPAIR_CV))
                budget = rng.expovariate(1.0) * MTBF_MIN
        job["done"].succeed()


def order(env, product, queues, stats):
    start = env.now
    for machine_id, minutes in ROUTINGS[product]:
        done = env.event()
        yield queues[machine_id].put({"time": minutes, "done": done})
        yield done
    stats["finished"] += 1
    stats["flow_min"] += env.now - start


def arrivals(env, product, queues, rng, stats):
    while True:
        yield env.timeout(rng.expovariate(ORDERS_PER_DAY / 1440.0))
        env.process(order(env, product, queues, stats))


def run(days, seed):
    rng = random.Random(seed)
    env = CountingEnvironment()
    stats = {"finished": 0, "flow_min": 0.0}
    queues = {m: simpy.Store(env) for m in ("M1", "M2", "M3", "M4")}
    for m in queues:
        env.process(machine(env, queues[m], random.Random(rng.random()), stats))
    for p in ROUTINGS:
        env.process(arrivals(env, p, queues, random.Random(rng.random()), stats))
    t0 = time.perf_counter()
    env.run(until=days * 1440.0)
    wall = time.perf_counter() - t0
    return env, stats, wall


def main():
    days = float(sys.argv[1]) if len(sys.argv) > 1 else 365.0
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    env, stats, wall = min((run(days, seed) for _ in range(max(repeat, 1))), key=lambda r: r[2])
    print(json.dumps({
        "engine": "simpy " + simpy.__version__,
        "sim_days": days,
        "events": env.events,
        "wall_s": wall,
        "events_per_s": env.events / wall,
        "sim_days_per_s": days / wall,
        "orders_finished": stats["finished"],
        "mean_flow_h": stats["flow_min"] / max(stats["finished"], 1) / 60.0,
    }))


if __name__ == "__main__":
    main()
