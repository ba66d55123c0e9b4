#!/usr/bin/env bash
# Benchmark: ingest a bulk feed of CONNECTIONS × DAYS quarter-hour readings from the local fake
# grid operator into a fresh lake. Prints wall time, peak memory (RSS) and readings per second.
# Usage: tests/bench/ingest_grid.sh [CONNECTIONS] [DAYS]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/../.."
connections=${1:-1000}
days=${2:-10}
. tests/bench/fake_grid.sh
/usr/bin/time -f '%e %M' -o "$work/time" "$bin" --config "$work/vaten.toml" --now 2026-11-21T10:00:00Z ingest grid 2> "$work/log"
read -r secs kib < "$work/time"
readings=$(grep -o '[0-9]* readings received' "$work/log" | tail -1 | cut -d' ' -f1)
echo "connections=$connections days=$days readings=$readings wall_s=$secs peak_rss_mib=$((kib / 1024)) readings_per_s=$("$py" -c "print(int($readings / $secs))")"
