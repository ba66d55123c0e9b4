# Sourced by the benchmark scripts: builds the release binary and defines `serve_grid`, which
# starts `vaten fake-grid` with the arguments given (plus the registry and release file in
# $work) and writes $work/vaten.toml pointing at it. Unless NO_SERVE is set, serves
# CONNECTIONS × DAYS ending 2026-11-20 right away (holding back HOLD_DAYS, default 0).
# Sets: bin, work, server (pid; killed on exit), py (a Python with DuckDB: the tests' environment
# under the target folder when `cargo test` has made it, else python3).
# VATEN_BIN=path measures another binary (e.g. a build of an earlier commit).
if [ -z "${VATEN_BIN:-}" ]; then cargo build --release --quiet; fi
bin=${VATEN_BIN:-${CARGO_TARGET_DIR:-target}/release/vaten}
py=${CARGO_TARGET_DIR:-target}/tmp/python-env/bin/python3
[ -x "$py" ] || py=python3
work=$(mktemp -d)
server=""
trap '{ [ -z "$server" ] || kill $server 2>/dev/null; } || true; rm -rf "$work"' EXIT
export VATEN_GRID_API_KEY="bench-$$"

serve_grid() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -f "$work/url"
  "$bin" fake-grid --connections "$connections" --registry-out "$work/registry" \
    --release-file "$work/release" "$@" > "$work/url" 2>/dev/null &
  server=$!
  # Generating many days for 1,000 connections takes a while: wait up to 10 minutes.
  for _ in $(seq 6000); do
    [ -s "$work/url" ] && break
    kill -0 "$server" 2>/dev/null || { echo "fake grid operator exited" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$work/url" ] || { echo "fake grid operator did not start" >&2; exit 1; }
  cat > "$work/vaten.toml" <<TOML
lake = "lake"
registry = "registry"
[grid]
base_url = "$(cat "$work/url")"
page_limit = 1000
timeout_s = 120
TOML
}

if [ -z "${NO_SERVE:-}" ]; then
  serve_grid --days "$days" --end 2026-11-20 --hold-days "${hold_days:-0}"
fi
