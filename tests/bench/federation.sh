#!/usr/bin/env bash
# Benchmark: the federation's Spark job (pipelines/federation/monthly.py) in local mode over
# COOPS published cooperatives of CONNECTIONS × DAYS (one cooperative's lake, from the fake grid
# operator, published under COOPS ids), and `vaten publish` itself; plus the size of what one
# cooperative shares against its lake.
# Usage: tests/bench/federation.sh [COOPS] [CONNECTIONS] [DAYS]   (the tests' Python env with pyspark)
set -euo pipefail
cd "$(dirname "$0")/../.."
coops=${1:-10}
connections=${2:-1000}
days=${3:-30}
. tests/bench/fake_grid.sh
"$bin" --config "$work/vaten.toml" --now 2026-11-21T10:00:00Z ingest grid 2> /dev/null
"$bin" --config "$work/vaten.toml" --now 2026-11-21T10:00:00Z transform 2> /dev/null
for i in $(seq "$coops"); do
  printf '\n[federation]\ncoop_id = "coop-%02d"\nregion = "R%d"\n' "$i" $((i % 3)) > "$work/fed.toml"
  cat "$work/vaten.toml" "$work/fed.toml" > "$work/coop.toml"
  # The lake is the configuration's folder's: the same for every id.
  cp "$work/coop.toml" "$work/coop-$i.toml"
  # Late enough that both months of the data (October and November 2026) have settled.
  /usr/bin/time -f "publish coop-$i: %e s wall, %M KiB peak" "$bin" --config "$work/coop-$i.toml" --now 2026-12-15T00:00:00Z \
    publish --out "$work/shared" 2>&1 >/dev/null | grep publish | head -1
done
echo "lake: $(du -sm "$work/lake" | cut -f1) MiB; shared by one cooperative: $(du -sk "$work/shared/coop=coop-01" | cut -f1) KiB; $(find "$work/shared" -name '*.parquet' | wc -l) shared files"
/usr/bin/time -f "spark (local[2], $coops cooperatives of $connections × $days days): %e s wall, %M KiB peak (the driver; the JVM is its child)" \
  env SPARK_MASTER='local[2]' "$py" pipelines/federation/monthly.py "$work/shared" "$work/reports" 2>&1 | grep -v WARN | tail -2
head -3 "$work"/reports/coop_monthly_csv/*.csv
