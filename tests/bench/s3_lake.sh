#!/usr/bin/env bash
# Benchmark: the grid ingest and a full transform of CONNECTIONS × DAYS with the lake on the
# local S3-compatible server (moto, from the tests' Python environment), next to the same on
# the local disk. The ingest starts from an empty lake; the transform runs on what it stored.
# The S3 lake's working copy starts empty too (a fresh machine), so the transform's figure
# includes pulling nothing (the ingest's own files are known) and uploading its output.
# Usage: tests/bench/s3_lake.sh [CONNECTIONS] [DAYS]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/../.."
connections=${1:-1000}
days=${2:-30}
. tests/bench/fake_grid.sh
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$py" tests/moto_server.py "$port" > "$work/moto.out" 2> /dev/null &
moto=$!
trap '[ -n "$server" ] && kill $server 2>/dev/null; kill $moto 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q ready "$work/moto.out" 2>/dev/null && break; sleep 0.1; done
curl -s -X PUT "http://127.0.0.1:$port/bench" > /dev/null
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
sed 's|^lake = "lake"|lake = "s3://bench/coop"|' "$work/vaten.toml" > "$work/s3.toml"
printf '[lake_s3]\nendpoint = "http://127.0.0.1:%s"\ncache = "cache"\n' "$port" >> "$work/s3.toml"
run() { # name config args...
  local name=$1 config=$2; shift 2
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin" --config "$config" --now 2026-11-21T10:00:00Z "$@" 2> "$work/log.$name" || { cat "$work/log.$name" >&2; exit 1; }
  read -r secs kib < "$work/time"
  echo "$name: wall_s=$secs peak_rss_mib=$((kib / 1024))"
}
run disk-ingest "$work/vaten.toml" ingest grid
run disk-transform "$work/vaten.toml" transform --full
run s3-ingest "$work/s3.toml" ingest grid
run s3-transform "$work/s3.toml" transform --full
rm -rf "$work/cache"
run s3-query-fresh-copy "$work/s3.toml" query --format csv "select count(*) as n from intervals"
du -sh "$work/lake" | sed 's/^/disk lake: /'
