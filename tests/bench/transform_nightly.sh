#!/usr/bin/env bash
# Benchmark: the nightly incremental transform. Ingests DAYS of generated data for CONNECTIONS,
# runs the first (full) transform, then lets the fake grid operator release one more day,
# ingests it and times the incremental `vaten transform` that follows.
# Usage: tests/bench/transform_nightly.sh [CONNECTIONS] [DAYS]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/../.."
connections=${1:-1000}
days=${2:-30}
hold_days=1
. tests/bench/fake_grid.sh
v() { "$bin" --config "$work/vaten.toml" --now "$1" "${@:2}"; }
v 2026-11-20T10:00:00Z ingest grid 2> /dev/null
/usr/bin/time -f '%e %M' -o "$work/time_full" "$bin" --config "$work/vaten.toml" --now 2026-11-20T10:00:00Z transform 2> "$work/log_full"
touch "$work/release"
sleep 0.5
v 2026-11-21T10:00:00Z ingest grid 2> /dev/null
/usr/bin/time -f '%e %M' -o "$work/time_inc" "$bin" --config "$work/vaten.toml" --now 2026-11-21T10:00:00Z transform 2> "$work/log_inc"
read -r f_secs f_kib < "$work/time_full"
read -r i_secs i_kib < "$work/time_inc"
grep -o 'full recompute.*' "$work/log_full" | head -1
grep -o 'incremental recompute.*' "$work/log_inc" | head -1
echo "connections=$connections days=$days (+1 new day)"
echo "first (full) transform:   wall_s=$f_secs peak_rss_mib=$((f_kib / 1024))"
echo "nightly (incremental):    wall_s=$i_secs peak_rss_mib=$((i_kib / 1024))"
