#!/usr/bin/env python3
"""Compares two folders of `aifactory ladder --json` outputs run by run: every KPI and the
ledger's SHA-256 of each (plant, tier, seed) must be identical. Exit 1 on any difference."""

import json
import pathlib
import sys


def runs(folder):
    out = {}
    for path in sorted(pathlib.Path(folder).glob("*.json")):
        doc = json.loads(path.read_text())
        for rung in doc["rungs"]:
            for run in rung.get("runs", []):
                out[(doc["plant"], rung["tier"], run["seed"])] = run
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: ladder_compare.py BEFORE_FOLDER AFTER_FOLDER")
    before, after = runs(sys.argv[1]), runs(sys.argv[2])
    differ = 0
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is None or b is None:
            print(f"{key}: only in {'after' if a is None else 'before'}")
            differ += 1
            continue
        if a["ledger_sha256"] != b["ledger_sha256"]:
            print(f"{key}: ledger {a['ledger_sha256'][:16]}… → {b['ledger_sha256'][:16]}…")
            differ += 1
        changed = [k for k in a["kpis"] if a["kpis"][k] != b["kpis"].get(k)]
        if changed:
            print(f"{key}: KPIs differ: {', '.join(changed)}")
            differ += 1
    print(f"{len(before)} runs before, {len(after)} after, {differ} differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
