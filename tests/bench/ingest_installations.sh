#!/usr/bin/env bash
# Benchmark: one `vaten ingest installations` pass over COUNT fake installations with DAYS of
# quarter-hour readings each (Amsterdam days ending 2026-12-20: no change of clock in the 30
# days before, so every day has 96), concurrency 16. Prints wall time and peak memory (RSS).
# Usage: tests/bench/ingest_installations.sh [COUNT] [DAYS]   (builds the release binary first;
# VATEN_BIN=path measures another binary, e.g. a build of an earlier commit)
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-200}
days=${2:-1}
if [ -z "${VATEN_BIN:-}" ]; then cargo build --release --quiet; fi
bin=${VATEN_BIN:-${CARGO_TARGET_DIR:-target}/release/vaten}
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" fake-installations --count "$count" --days "$days" --end 2026-12-20 \
  --registry-out "$work/registry" --tokens-out "$work/tokens.toml" > "$work/url" 2>/dev/null &
server=$!
for _ in $(seq 200); do [ -s "$work/url" ] && break; sleep 0.1; done
cat > "$work/vaten.toml" <<TOML
lake = "lake"
registry = "registry"
[grid]
base_url = "http://127.0.0.1:9"
[installations]
tokens_file = "tokens.toml"
concurrency = 16
timeout_s = 20
TOML
/usr/bin/time -f '%e %M' -o "$work/time" "$bin" --config "$work/vaten.toml" --now 2026-12-21T10:00:00Z ingest installations 2> "$work/log"
read -r secs kib < "$work/time"
grep -o '[0-9]* readings received, [0-9]* stored' "$work/log" | tail -1
echo "installations=$count days=$days wall_s=$secs peak_rss_mib=$((kib / 1024))"
