#!/usr/bin/env bash
# `vaten simulate --rank-positions` on a 60-house cable: a year with 40 candidate nodes, and a
# month with 10, 20 and 40 candidates (how the time grows with them); then the power flow of
# the 30-house test feeder, vaten's solver against power-grid-model's, per solve.
# Usage: tests/bench/rank_positions.sh [VATEN] [PYTHON]   (release build, the tests' Python env)
set -euo pipefail
VATEN=${1:-target/release/vaten}
PY=${2:-target/tmp/python-env/bin/python3}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# A registry of 60 houses on 1.5 km (NAYY 4x150 then 4x95, a side street of 4x50), single-phase
# in turn with every fifth three-phase; every `step`-th house has an installation.
registry() { # DIR INSTALLED_EVERY
  mkdir -p "$1/registry"
  python3 - "$1" "$2" <<'PY'
import sys
d, every = sys.argv[1], int(sys.argv[2])
def ean(i):
    s = "87168712%09d" % i
    t = sum(int(c) * (3 if k % 2 == 0 else 1) for k, c in enumerate(reversed(s)))
    return s + str((10 - t % 10) % 10)
open(f"{d}/registry/cables.csv", "w").write("cable_id,substation,v_low_v,v_high_v\nK1,TS,226,244\n")
c = ["ean,participant_id,cable_id,installation_id,installation_url"]
f = ["cable_id,kind,node,from_node,length_m,cable_type,ean,phase,inverter_phase"]
for i in range(1, 61):
    frm = "transformer" if i == 1 else ("n20" if i == 41 else f"n{i-1}")
    kind = "NAYY 4x150" if i <= 20 else ("NAYY 4x95" if i <= 40 else "NAYY 4x50")
    f.append(f"K1,segment,n{i},{frm},25,{kind},,,")
for i in range(60):
    inst = f"inst-{i},http://127.0.0.1:9/inst-{i}" if every and i % every == every - 1 else ","
    c.append(f"{ean(i)},P{i:03},K1,{inst}")
    ph = "3" if i % 5 == 4 else f"L{i % 3 + 1}"
    f.append(f"K1,connection,n{i+1},,,,{ean(i)},{ph},")
open(f"{d}/registry/connections.csv", "w").write("\n".join(c) + "\n")
open(f"{d}/registry/feeders.csv", "w").write("\n".join(f) + "\n")
open(f"{d}/vaten.toml", "w").write('lake = "lake"\nregistry = "registry"\n[grid]\nbase_url = "http://127.0.0.1:9"\n')
PY
}
rank() { # DIR ARGS...
  local d=$1; shift
  /usr/bin/time -f "%e s wall, %M KiB peak" "$VATEN" --config "$d/vaten.toml" simulate --cable K1 \
    --rank-positions --out "$d/out" "$@" 2>&1 | grep -E "simulated|wall"
}
# Candidates = houses without an installation: every=2 → 30, every=3 → 40, every=6 → 50.
for every in 6 3 2; do
  registry "$WORK/m$every" "$every"
  echo "== a month (June 2025), installations on every ${every}th house"
  rank "$WORK/m$every" --from 2025-06-01 --to 2025-06-30
done
echo "== a year (2025), installations on every 3rd house"
rank "$WORK/m3" --from 2025-01-01 --to 2025-12-31

echo "== the same 60-house feeder: vaten's solver per power flow (a day of 10 s steps)"
"$VATEN" --config "$WORK/m3/vaten.toml" simulate --cable K1 --days 1 --out "$WORK/m3/day" | grep simulated
echo "== power-grid-model 1.12 on the same feeder, per asymmetric power flow (solve only)"
python3 - "$WORK/m3/registry/feeders.csv" > "$WORK/loads.csv" <<'PY'
import csv, sys
nodes = [r["node"] for r in csv.DictReader(open(sys.argv[1])) if r["kind"] == "segment"]
print("instant,node,p_l1_w,p_l2_w,p_l3_w")
for t in range(500):
    for k, n in enumerate(nodes):
        print(f"{t},{n},{800 + 37 * ((k + t) % 9)},{600 + 41 * ((k * 3 + t) % 7)},500")
PY
VATEN_PGM_TIMING=1 "$PY" "$HERE/tests/check_power_grid_model.py" "$WORK/m3/registry/feeders.csv" K1 "$WORK/loads.csv" 240 conductor 2>&1 >/dev/null
