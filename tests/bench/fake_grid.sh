# Sourced by the benchmark scripts: builds the release binary, starts `vaten fake-grid` with
# CONNECTIONS × DAYS of generated data in $work, and writes $work/vaten.toml pointing at it.
# Sets: bin, work, server (pid; killed on exit).
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/vaten
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
export VATEN_GRID_API_KEY="bench-$$"
"$bin" fake-grid --connections "$connections" --days "$days" --end 2026-11-20 \
  --registry-out "$work/registry" --hold-days "${hold_days:-0}" --release-file "$work/release" \
  > "$work/url" 2>/dev/null &
server=$!
# Generating a year for 1,000 connections takes a while: wait up to 10 minutes.
for _ in $(seq 6000); do [ -s "$work/url" ] && break; sleep 0.1; done
[ -s "$work/url" ] || { echo "fake grid operator did not start" >&2; exit 1; }
cat > "$work/vaten.toml" <<TOML
lake = "lake"
registry = "registry"
[grid]
base_url = "$(cat "$work/url")"
page_limit = 1000
timeout_s = 120
TOML
