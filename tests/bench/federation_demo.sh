#!/usr/bin/env bash
# Benchmark: the federation's Spark job (pipelines/federation/monthly.py) in local mode over the
# three demo cooperatives of the federation test (30, 30 and 13 connections × 9 days, seeds 1-3),
# each published into one shared folder.
# Usage: tests/bench/federation_demo.sh   (the tests' Python env with pyspark; builds the release binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${VATEN_BIN:-}" ]; then cargo build --release --quiet; fi
bin=${VATEN_BIN:-${CARGO_TARGET_DIR:-target}/release/vaten}
py=${CARGO_TARGET_DIR:-target}/tmp/python-env/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for spec in coop-a:1:Noord:30 coop-b:2:Noord:30 coop-c:3:Zuid:13; do
  IFS=: read -r coop seed region n <<< "$spec"
  "$bin" demo --dir "$work/$coop" --days 9 --connections "$n" --end 2026-07-03 --seed "$seed" > /dev/null
  printf '\n[federation]\ncoop_id = "%s"\nregion = "%s"\n' "$coop" "$region" >> "$work/$coop/vaten.toml"
  "$bin" --config "$work/$coop/vaten.toml" --now 2026-09-01T10:00:00Z publish --out "$work/shared" > /dev/null
done
echo "$(find "$work/shared" -name '*.parquet' | wc -l) shared files"
for run in 1 2; do
  /usr/bin/time -f "spark (local[2], 3 demo cooperatives), run $run: %e s wall" \
    env SPARK_MASTER='local[2]' "$py" pipelines/federation/monthly.py "$work/shared" "$work/reports-$run" 2>&1 | grep -v WARN | tail -1
done
