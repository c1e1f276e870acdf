"""Reference solver: Google OR-Tools CP-SAT on a job-shop (JSSP) or flexible job-shop (FJSP) file.

Minimises the makespan. JSSP: one interval per operation, NoOverlap per machine, precedence
inside each job. FJSP: one optional interval per (operation, eligible machine), exactly one of
them present per operation, NoOverlap per machine over the optional intervals.

Prints one JSON line: solver, instance, makespan, lower_bound (CP-SAT's best proven bound),
status, wall_s (parse + model + solve), solve_s, time_to_best_s, workers, time_limit_s, seed.
The returned schedule is re-checked for feasibility by an independent check (assert).

usage: python3 bench/cpsat_schedule.py FILE [--format taillard|brandimarte]
                                       --time-limit S --workers N [--seed S] [--params TEXT]
(needs: pip install ortools). --format defaults to brandimarte for *.fjs, else taillard.
"""

import argparse
import json
import os
import sys
import time

import ortools
from ortools.sat.python import cp_model


def parse_taillard(text):
    """Standard OR-Library format, machines 0-based -> jobs[j] = [[(machine, dur)], ...] (one alt)."""
    tok = [int(x) for x in text.split()]
    n, m = tok[0], tok[1]
    assert len(tok) >= 2 + 2 * n * m, "truncated Taillard file"
    jobs, p = [], 2
    for _ in range(n):
        jobs.append([[(tok[p + 2 * k], tok[p + 2 * k + 1])] for k in range(m)])
        p += 2 * m
    return jobs, m


def parse_brandimarte(text):
    """Brandimarte .fjs, machines 1-based in the file -> 0-based here; jobs[j][o] = [(machine, dur), ...]."""
    tok = text.split()
    n, m = int(tok[0]), int(tok[1])  # tok[2] = average flexibility, informational only
    p, jobs = 3, []
    for _ in range(n):
        n_ops = int(tok[p]); p += 1
        ops = []
        for _ in range(n_ops):
            k = int(tok[p]); p += 1
            ops.append([(int(tok[p + 2 * i]) - 1, int(tok[p + 2 * i + 1])) for i in range(k)])
            p += 2 * k
        jobs.append(ops)
    return jobs, m


class BestTime(cp_model.CpSolverSolutionCallback):
    """Remembers the wall time at which the last (best) solution was found."""

    def __init__(self):
        super().__init__()
        self.t = None

    def on_solution_callback(self):
        self.t = self.wall_time


def solve(jobs, n_machines, time_limit, workers, seed, params=""):
    model = cp_model.CpModel()
    # Horizon: all operations back to back, each on its slowest alternative.
    horizon = sum(max(d for _, d in alts) for ops in jobs for alts in ops)
    per_machine = [[] for _ in range(n_machines)]
    starts, ends, choice = {}, {}, {}  # (j, o) -> var; choice[(j, o)] = [(machine, dur, literal)]
    for j, ops in enumerate(jobs):
        for o, alts in enumerate(ops):
            s = model.new_int_var(0, horizon, f"s{j}_{o}")
            e = model.new_int_var(0, horizon, f"e{j}_{o}")
            starts[j, o], ends[j, o] = s, e
            if len(alts) == 1:  # fixed machine (every JSSP op): a plain interval
                mach, d = alts[0]
                per_machine[mach].append(model.new_interval_var(s, d, e, f"i{j}_{o}"))
                choice[j, o] = [(mach, d, None)]
                continue
            lits = []
            for mach, d in alts:  # one optional interval per eligible machine, sharing s and e
                lit = model.new_bool_var(f"x{j}_{o}_{mach}")
                per_machine[mach].append(model.new_optional_interval_var(s, d, e, lit, f"i{j}_{o}_{mach}"))
                lits.append((mach, d, lit))
            model.add_exactly_one(l for _, _, l in lits)
            # Redundant but tightening: end = start + chosen duration.
            model.add(e == s + sum(d * l for _, d, l in lits))
            choice[j, o] = lits
        for o in range(1, len(ops)):  # precedence inside the job
            model.add(starts[j, o] >= ends[j, o - 1])
    for ivs in per_machine:
        if len(ivs) > 1:
            model.add_no_overlap(ivs)
    makespan = model.new_int_var(0, horizon, "makespan")
    model.add_max_equality(makespan, [ends[j, len(ops) - 1] for j, ops in enumerate(jobs) if ops])
    model.minimize(makespan)

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit)
    solver.parameters.num_workers = int(workers)  # the newer name of num_search_workers
    solver.parameters.random_seed = int(seed)
    if params:  # extra SatParameters in protobuf text format, as in OR-Tools' own examples
        solver.parameters.merge_text_format(params)
    cb = BestTime()
    status = solver.solve(model, cb)
    out = {"status": solver.status_name(status), "lower_bound": None, "makespan": None,
           "solve_s": solver.wall_time, "time_to_best_s": cb.t}
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        out["makespan"] = int(solver.objective_value)
        out["lower_bound"] = int(round(solver.best_objective_bound))
        sched = []  # (job, op, machine, start, end)
        for (j, o), alts in choice.items():
            mach = next(m for m, _, l in alts if l is None or solver.boolean_value(l))
            sched.append((j, o, mach, solver.value(starts[j, o]), solver.value(ends[j, o])))
        check(jobs, sched, out["makespan"])
    return out


def check(jobs, sched, makespan):
    """Independent feasibility check: durations, eligibility, precedence, machine overlaps, makespan."""
    assert len(sched) == sum(len(ops) for ops in jobs), "missing operations"
    by_op = {(j, o): (m, s, e) for j, o, m, s, e in sched}
    for j, ops in enumerate(jobs):
        prev_end = 0
        for o, alts in enumerate(ops):
            m, s, e = by_op[j, o]
            assert (m, e - s) in alts, f"job {j} op {o}: machine {m} / duration {e - s} not allowed"
            assert s >= prev_end, f"job {j} op {o} starts before its predecessor ends"
            prev_end = e
    by_machine = {}
    for j, o, m, s, e in sched:
        by_machine.setdefault(m, []).append((s, e))
    for m, ivs in by_machine.items():
        ivs.sort()
        for (_, e1), (s2, _) in zip(ivs, ivs[1:]):
            assert s2 >= e1, f"overlap on machine {m}"
    assert max(e for *_, e in sched) == makespan, "makespan mismatch"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--format", choices=["taillard", "brandimarte"])
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--params", default="", help='extra SatParameters, text format, e.g. "interleave_search:true"')
    a = ap.parse_args()
    t0 = time.perf_counter()
    fmt = a.format or ("brandimarte" if a.file.endswith(".fjs") else "taillard")
    with open(a.file) as f:
        jobs, m = (parse_brandimarte if fmt == "brandimarte" else parse_taillard)(f.read())
    r = solve(jobs, m, a.time_limit, a.workers, a.seed, a.params)
    print(json.dumps({
        "solver": f"cp-sat {ortools.__version__}",
        "instance": os.path.splitext(os.path.basename(a.file))[0],
        "makespan": r["makespan"], "lower_bound": r["lower_bound"], "status": r["status"],
        "wall_s": round(time.perf_counter() - t0, 3), "solve_s": round(r["solve_s"], 3),
        "time_to_best_s": None if r["time_to_best_s"] is None else round(r["time_to_best_s"], 3),
        "workers": a.workers, "time_limit_s": a.time_limit, "seed": a.seed,
        **({"params": a.params} if a.params else {}),
    }))
    return 0 if r["makespan"] is not None else 2


if __name__ == "__main__":
    sys.exit(main())
