"""Our scheduler (`aifactory schedule`) against OR-Tools CP-SAT on public JSSP/FJSP instances.

For each instance x time limit x thread count it runs, ONE AT A TIME (never both solvers at
once: the development machine has 2 cores), our binary

    ${AIFACTORY_BIN:-${CARGO_TARGET_DIR:-target}/release/aifactory} schedule FILE --format F
        --time-limit S --threads N --seed 1 --json

and `python3 bench/cpsat_schedule.py FILE --format F --time-limit S --workers N --seed 1`,
records the makespans, the gap to the best known solution, gap = (makespan - BKS) / BKS with
BKS = upper_bound of bounds.csv, and prints markdown tables (per instance, and per size class:
mean gap ours vs CP-SAT, ours better/equal/worse, our iterations/s = iterations / time limit).

Results are merged into --out (JSON) after every run, so a long run can be stopped and resumed:
runs already in the file are skipped unless --force (runs that ended in an error are retried).
Our schedule is also checked for feasibility against the instance (column "check").

examples:
  python3 bench/schedule_vs_cpsat.py --set ta --time-limits 10 --threads 1 --out bench/results/ta-10s-1w.json
  python3 bench/schedule_vs_cpsat.py --instances ft06,ft10 --only ours
  python3 bench/schedule_vs_cpsat.py --set all --time-limits 10,60 --threads 1,2 --out r.json --report-only
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHILD_CPU = 0.0  # CPU seconds of finished child processes so far
SET_ORDER = ["ft", "la", "ta", "mk"]
CLASSES = ["FT", "LA", "Taillard 15×15", "Taillard 20×15", "Taillard 20×20", "Taillard 30×15", "Brandimarte"]


def size_class(name):
    fam, num = re.match(r"([a-z]+)(\d+)", name).groups()
    num = int(num)
    if fam == "ta":
        return ["Taillard 15×15", "Taillard 20×15", "Taillard 20×20", "Taillard 30×15"][min((num - 1) // 10, 3)]
    return {"ft": "FT", "la": "LA", "mk": "Brandimarte"}.get(fam, fam)


def sort_key(name):
    fam, num = re.match(r"([a-z]+)(\d+)", name).groups()
    return (SET_ORDER.index(fam) if fam in SET_ORDER else 99, int(num))


# ---------------------------------------------------------------- instances and bounds

def load_instances(data):
    """name -> {file, format, bks, lb, optimal}."""
    out = {}
    for sub, fmt, ext in (("jssp", "taillard", ".txt"), ("fjsp", "brandimarte", ".fjs")):
        with open(os.path.join(data, sub, "bounds.csv")) as f:
            for row in csv.DictReader(f):
                path = os.path.join(data, sub, row["instance"] + ext)
                if os.path.exists(path):
                    out[row["instance"]] = {"file": path, "format": fmt, "bks": int(row["upper_bound"]),
                                            "lb": int(row["lower_bound"]), "optimal": row["optimal"] == "yes"}
    return out


def parse_instance(path, fmt):
    """-> jobs[j][o] = [(machine as numbered in the file, duration), ...]."""
    tok = open(path).read().split()
    if fmt == "brandimarte":
        tok[2] = "0"  # average flexibility: informational, and may be fractional ("3.5")
    tok = [int(x) for x in tok]
    n, m, jobs = tok[0], tok[1], []
    if fmt == "taillard":
        p = 2
        for _ in range(n):
            jobs.append([[(tok[p + 2 * k], tok[p + 2 * k + 1])] for k in range(m)])
            p += 2 * m
    else:
        p = 3
        for _ in range(n):
            ops, p = [], p + 1
            for _ in range(tok[p - 1]):
                k = tok[p]
                ops.append([(tok[p + 1 + 2 * i], tok[p + 2 + 2 * i]) for i in range(k)])
                p += 1 + 2 * k
            jobs.append(ops)
    return jobs


def check_schedule(jobs, ops, makespan):
    """Feasibility of our --json operations list. Returns 'ok' or the first problem found.
    Jobs and operations may be numbered from 0 or 1 (detected); machines as in the input file."""
    if not ops:
        return "no operations in output"
    try:
        jb = 1 if min(o["job"] for o in ops) == 1 else 0
        ob = 1 if min(o["op"] for o in ops) == 1 else 0
        got = {(o["job"] - jb, o["op"] - ob): (o["machine"], o["start"], o["end"]) for o in ops}
    except (KeyError, TypeError) as e:
        return f"bad operations list: {e!r}"
    need = sum(len(x) for x in jobs)
    if len(ops) != need or len(got) != need:
        return f"{len(ops)} operations listed ({len(got)} distinct), instance has {need}"
    per_machine = {}
    for j, job in enumerate(jobs):
        prev = 0
        for o, alts in enumerate(job):
            if (j, o) not in got:
                return f"job {j} op {o} missing"
            mach, s, e = got[j, o]
            if (mach, e - s) not in alts:
                return f"job {j} op {o}: machine {mach} for {e - s} not in {alts}"
            if s < prev:
                return f"job {j} op {o} starts at {s} before its predecessor ends at {prev}"
            prev = e
            per_machine.setdefault(mach, []).append((s, e, j, o))
    for mach, ivs in per_machine.items():
        ivs.sort()
        for a, b in zip(ivs, ivs[1:]):
            if b[0] < a[1]:
                return f"machine {mach}: job {a[2]} op {a[3]} and job {b[2]} op {b[3]} overlap"
    end = max(v[2] for v in got.values())
    return "ok" if end == makespan else f"reported makespan {makespan} but last end is {end}"


# ---------------------------------------------------------------- running the solvers

def parse_json_stdout(text):
    """One JSON object: the whole stdout, else the last line that parses, else first '{' .. last '}'."""
    text = text.strip()
    cands = [text] + [l for l in reversed(text.splitlines()) if l.strip().startswith("{")]
    if "{" in text:
        cands.append(text[text.index("{"): text.rindex("}") + 1])
    for c in cands:
        try:
            v = json.loads(c)
            if isinstance(v, dict):
                return v
        except ValueError:
            pass
    raise ValueError("no JSON object in stdout")


def child_cpu():
    """CPU seconds used since the last call by child processes that have ended."""
    global CHILD_CPU
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    used, CHILD_CPU = c.ru_utime + c.ru_stime - CHILD_CPU, c.ru_utime + c.ru_stime
    return used


def run_cmd(cmd, timeout):
    """-> (parsed JSON or None, (wall s, CPU s), error or None). CPU/wall under the thread count
    means the machine was busy with something else during the run."""
    child_cpu()
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:
        p, err = None, f"not found: {e.filename}"
    except subprocess.TimeoutExpired:
        p, err = None, f"timed out after {timeout:.0f} s"
    wall = (time.perf_counter() - t0, child_cpu())
    if p is None:
        return None, wall, err
    if p.returncode != 0:
        lines = (p.stderr.strip() or p.stdout.strip()).splitlines() or [""]
        msg = next((l for l in lines if "error" in l.lower()), lines[-1])  # clap: "error: ..." comes first
        return None, wall, f"exit {p.returncode}: {msg.strip()[:200]}"
    try:
        return parse_json_stdout(p.stdout), wall, None
    except ValueError as e:
        return None, wall, f"{e}: {p.stdout.strip()[:200]!r}"


def times(wall):
    return {"wall_s": round(wall[0], 3), "cpu_s": round(wall[1], 3)}


def run_ours(args, inst, name, tl, thr):
    cmd = [args.bin, "schedule", inst["file"], "--format", inst["format"], "--time-limit", f"{tl:g}",
           "--threads", str(thr), "--seed", str(args.seed), "--json"]
    if not os.path.exists(args.bin):
        return {"error": f"binary not found: {args.bin} (cargo build --release, or set AIFACTORY_BIN)"}
    r, wall, err = run_cmd(cmd, tl * 1.5 + args.grace)
    rec = {**times(wall), "command": " ".join(cmd)}
    if err:
        return {**rec, "error": err}
    if not isinstance(r.get("makespan"), (int, float)):
        return {**rec, "error": f"no makespan in output (keys: {sorted(r)})"}
    it, el = r.get("iterations"), r.get("elapsed_s")
    # iterations / time limit; over its own elapsed time when it says it stopped early (makespan = its bound)
    early = isinstance(el, (int, float)) and 0 < el < 0.5 * tl
    rec.update(makespan=int(r["makespan"]), lower_bound=r.get("lower_bound"), iterations=it, elapsed_s=el,
               stopped_early=early, iterations_per_s=(it / (el if early else tl) if isinstance(it, (int, float)) else None),
               time_to_best_s=r.get("time_to_best_s"), objective=r.get("objective"))
    if not r.get("operations"):
        rec["check"] = "not checked: no operations in output"
        return rec
    try:
        rec["check"] = check_schedule(parse_instance(inst["file"], inst["format"]), r["operations"], rec["makespan"])
    except Exception as e:  # never let the checker stop the benchmark
        rec["check"] = f"check crashed: {e!r}"
    if rec["check"] != "ok" and not rec["check"].startswith("check crashed"):
        rec["error"] = f"infeasible schedule: {rec['check']}"  # excluded from the gaps, retried next time
    return rec


def run_cpsat(args, inst, name, tl, thr):
    cmd = [sys.executable, os.path.join(HERE, "cpsat_schedule.py"), inst["file"], "--format", inst["format"],
           "--time-limit", f"{tl:g}", "--workers", str(thr), "--seed", str(args.seed)]
    r, wall, err = run_cmd(cmd, tl * 1.5 + args.grace)
    rec = times(wall)
    if err:
        return {**rec, "error": err}
    rec.update(makespan=r.get("makespan"), lower_bound=r.get("lower_bound"), status=r.get("status"),
               solver_version=r.get("solver"), time_to_best_s=r.get("time_to_best_s"), solve_s=r.get("solve_s"))
    if rec["makespan"] is None:
        rec["error"] = f"no solution (status {r.get('status')})"
    return rec


# ---------------------------------------------------------------- results file

def key(r):
    return (r["solver"], r["instance"], float(r["time_limit_s"]), int(r["threads"]), int(r["seed"]))


def load_results(path):
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        return {key(r): r for r in json.load(f).get("runs", [])}


def save_results(path, results):
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    runs = sorted(results.values(), key=lambda r: (r["time_limit_s"], r["threads"], sort_key(r["instance"]), r["solver"]))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"runs": runs}, f, indent=1)
    os.replace(tmp, path)  # atomic: an interrupted run never leaves a half-written file


# ---------------------------------------------------------------- report

def fmt_gap(g):
    return "–" if g is None else f"{100 * g:.2f}"


def gap_of(r, bks):
    return None if not r or r.get("error") or r.get("makespan") is None else (r["makespan"] - bks) / bks


def report(args, instances, names, results):
    configs = [(tl, thr) for tl in args.time_limits for thr in args.threads]
    get = lambda s, n, tl, thr: results.get((s, n, float(tl), int(thr), int(args.seed)))
    errors = []
    print(f"Command: `python3 bench/schedule_vs_cpsat.py {' '.join(sys.argv[1:])}`")
    for tl, thr in configs:
        print(f"\n### {tl:g} s, {thr} thread(s)/worker(s), seed {args.seed}\n")
        print("| instance | size | BKS | ours | gap % | iter/s | check | CP-SAT | gap % | CP-SAT bound | CP-SAT status | ours − CP-SAT |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n in names:
            inst, o, c = instances[n], get("ours", n, tl, thr), get("cpsat", n, tl, thr)
            for s, r in (("ours", o), ("cpsat", c)):
                if r and r.get("error"):
                    errors.append(f"{n} {s} {tl:g} s {thr} thr: {r['error']}")
            cell = lambda r: "–" if not r else ("error" if r.get("error") else str(r["makespan"]))
            go, gc = gap_of(o, inst["bks"]), gap_of(c, inst["bks"])
            ips = o.get("iterations_per_s") if o and not o.get("error") else None
            diff = (o["makespan"] - c["makespan"]) if go is not None and gc is not None else None
            bks = f"{inst['bks']}" + ("" if inst["optimal"] else f" (LB {inst['lb']})")
            print(f"| {n} | {size_class(n)} | {bks} | {cell(o)} | {fmt_gap(go)} | "
                  f"{'–' if ips is None else f'{ips:,.0f}' + ('*' if o.get('stopped_early') else '')} | {(o or {}).get('check', '–') if go is not None else '–'} | "
                  f"{cell(c)} | {fmt_gap(gc)} | {(c or {}).get('lower_bound') if gc is not None else '–'} | "
                  f"{(c or {}).get('status') or '–'} | {'–' if diff is None else f'{diff:+d}'} |")

    print(f"\n### Summary per size class (mean gap to BKS, %)\n")
    print("| class | limit s | threads | instances | ours mean gap % (n) | CP-SAT mean gap % (n) | ours better / equal / worse | ours iter/s (mean) | CP-SAT proved optimal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tl, thr in configs:
        groups = [(c, [n for n in names if size_class(n) == c]) for c in CLASSES]
        groups = [g for g in groups if g[1]] + ([("all", names)] if len({size_class(n) for n in names}) > 1 else [])
        for cls, ns in groups:
            go = {n: gap_of(get("ours", n, tl, thr), instances[n]["bks"]) for n in ns}
            gc = {n: gap_of(get("cpsat", n, tl, thr), instances[n]["bks"]) for n in ns}
            mean = lambda d: (lambda v: f"{100 * sum(v) / len(v):.2f} ({len(v)})" if v else "–")([x for x in d.values() if x is not None])
            pairs = [(go[n], gc[n]) for n in ns if go[n] is not None and gc[n] is not None]
            wtl = (f"{sum(a < b for a, b in pairs)} / {sum(a == b for a, b in pairs)} / {sum(a > b for a, b in pairs)}"
                   if pairs else "–")
            ips = [get("ours", n, tl, thr)["iterations_per_s"] for n in ns if go[n] is not None
                   and get("ours", n, tl, thr).get("iterations_per_s") is not None
                   and not get("ours", n, tl, thr).get("stopped_early")]
            opt = [get("cpsat", n, tl, thr).get("status") == "OPTIMAL" for n in ns if gc[n] is not None]
            print(f"| {cls} | {tl:g} | {thr} | {len(ns)} | {mean(go)} | {mean(gc)} | {wtl} | "
                  f"{f'{sum(ips) / len(ips):,.0f}' if ips else '–'} | {f'{sum(opt)}/{len(opt)}' if opt else '–'} |")
    if any((get("ours", n, tl, thr) or {}).get("stopped_early") for n in names for tl, thr in configs):
        print("\n\\* stopped before half its time limit (makespan = its own lower bound): iter/s over its "
              "elapsed time, left out of the class mean.")
    if errors:
        print("\nErrors:\n" + "\n".join(f"- {e}" for e in errors))
    starved = [f"{r['instance']} {r['solver']} {r['time_limit_s']:g} s {r['threads']} thr: "
               f"{r['cpu_s'] / r['wall_s'] / r['threads']:.0%}" for r in results.values()
               if r["instance"] in names and r["time_limit_s"] in args.time_limits and r["threads"] in args.threads
               and r.get("cpu_s") is not None and r["wall_s"] > 1 and r["cpu_s"] < 0.8 * r["threads"] * r["wall_s"]]
    if starved:
        print("\nRuns that got under 80 % of their CPU share (busy machine; consider --force on them):\n"
              + "\n".join(f"- {x}" for x in starved))
    versions = sorted({r.get("solver_version") for r in results.values() if r.get("solver_version")})
    print(f"\nCP-SAT: {', '.join(versions) or '–'}; ours: {args.bin}; gap = (makespan − BKS) / BKS, "
          f"BKS = upper_bound of bounds.csv; iter/s = iterations / time limit.")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--set", choices=["ta", "ft", "la", "mk", "all"], default="ft")
    g.add_argument("--instances", help="comma-separated names, e.g. ta01,ta02,mk01")
    ap.add_argument("--time-limits", default="10", help="seconds, comma-separated (default 10)")
    ap.add_argument("--threads", default="1", help="thread counts for ours = worker counts for CP-SAT (default 1)")
    ap.add_argument("--only", choices=["ours", "cpsat", "both"], default="both")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="results JSON to merge into (and resume from)")
    ap.add_argument("--force", action="store_true", help="re-run runs already in --out")
    ap.add_argument("--report-only", action="store_true", help="run nothing, print the tables from --out")
    ap.add_argument("--data", default=os.environ.get("AIFACTORY_BENCH_DATA", "/work/shared/data"))
    ap.add_argument("--grace", type=float, default=60.0, help="kill a run after 1.5 x limit + GRACE s")
    args = ap.parse_args()
    args.time_limits = [float(x) for x in args.time_limits.split(",")]
    args.threads = [int(x) for x in args.threads.split(",")]
    default_bin = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "aifactory")
    args.bin = os.environ.get("AIFACTORY_BIN", default_bin)
    if not os.path.isabs(args.bin) and not os.path.exists(args.bin):
        args.bin = os.path.join(ROOT, args.bin)  # relative to the repository root

    instances = load_instances(args.data)
    if args.instances:
        names = [n.strip() for n in args.instances.split(",") if n.strip()]
        unknown = [n for n in names if n not in instances]
        if unknown:
            ap.error(f"unknown instances: {', '.join(unknown)}")
    else:
        names = [n for n in instances if args.set == "all" or n.startswith(args.set)]
    names.sort(key=sort_key)
    solvers = ["ours", "cpsat"] if args.only == "both" else [args.only]
    results = load_results(args.out)

    todo = [(tl, thr, n, s) for tl in args.time_limits for thr in args.threads for n in names for s in solvers]
    todo = [t for t in todo if args.force or (k := results.get((t[3], t[2], t[0], t[1], args.seed))) is None
            or k.get("error")]
    if not args.report_only:
        print(f"# {len(todo)} runs to do, about {sum(t[0] for t in todo) / 60:.1f} min of time limits; "
              f"sequential, one solver at a time", file=sys.stderr)
        t_start = time.time()
        for i, (tl, thr, n, s) in enumerate(todo, 1):
            inst = instances[n]
            rec = (run_ours if s == "ours" else run_cpsat)(args, inst, n, tl, thr)
            rec = {"solver": s, "instance": n, "class": size_class(n), "bks": inst["bks"], "time_limit_s": tl,
                   "threads": thr, "seed": args.seed, **rec,
                   "date": datetime.datetime.now().isoformat(timespec="seconds"),
                   "host": f"{platform.node()} ({os.cpu_count()} cpus)",
                   "load_1m": round(os.getloadavg()[0], 2)}
            if rec.get("makespan") is not None and not rec.get("error"):
                rec["gap"] = round((rec["makespan"] - inst["bks"]) / inst["bks"], 6)
            results[key(rec)] = rec
            save_results(args.out, results)
            what = rec.get("error") or f"makespan {rec['makespan']} gap {100 * rec['gap']:.2f} %"
            left = sum(t[0] for t in todo[i:])
            print(f"[{i}/{len(todo)}] {s:5} {n} {tl:g}s {thr}thr: {what}  ({time.time() - t_start:.0f} s elapsed, "
                  f"~{left / 60:.1f} min left)", file=sys.stderr, flush=True)
    report(args, instances, names, results)


if __name__ == "__main__":
    main()
