#!/usr/bin/env bash
# Twin speed, side by side with SimPy on the same job-shop model (bench/jobshop.toml and
# bench/simpy_jobshop.py), plus a simulated year of the reference plant.
# usage: bench/twin_vs_simpy.sh [DAYS=365]     (needs: pip install simpy)
set -euo pipefail
cd "$(dirname "$0")/.."
days="${1:-365}"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/aifactory"
python3 -c "import simpy" 2>/dev/null || { echo "SimPy missing: pip install simpy" >&2; exit 1; }

echo "== same model: bench/jobshop.toml (twin) vs bench/simpy_jobshop.py (SimPy), $days days, seeds 1-3, fastest of 10 twin runs and of 3 SimPy runs each"
for seed in 1 2 3; do
  twin=$("$bin" bench twin --plant bench/jobshop.toml --days "$days" --seed "$seed" \
          --policy fifo --maintenance rtf --repeat 10 --json)
  simpy=$(python3 bench/simpy_jobshop.py "$days" "$seed" 3)
  python3 - "$twin" "$simpy" <<'PY'
import json, sys
t, s = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"twin : {t['events']:>9} events {t['wall_s']:7.3f} s {t['events_per_s']:>12,.0f} ev/s "
      f"{t['sim_days_per_s']:>9,.0f} days/s  orders {t['orders_completed']}")
print(f"simpy: {s['events']:>9} events {s['wall_s']:7.3f} s {s['events_per_s']:>12,.0f} ev/s "
      f"{s['sim_days_per_s']:>9,.0f} days/s  orders {s['orders_finished']}")
print(f"ratio: events/s {t['events_per_s']/s['events_per_s']:.1f}x   "
      f"simulated time per wall second {t['sim_days_per_s']/s['sim_days_per_s']:.1f}x")
PY
done

echo "== reference plant, one simulated year, telemetry every 60 s on 15 machines"
"$bin" bench twin --days 365 --policy edd --repeat 3
echo "== reference plant, one simulated year, telemetry off"
"$bin" bench twin --days 365 --policy edd --telemetry-period 0 --repeat 3
