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

# wait_for_url FILE PID WHAT TENTHS: until the server PID (WHAT, for the message) has written
# its URL to FILE, at most TENTHS tenths of a second; exits the script if it stops or never does.
wait_for_url() {
  for _ in $(seq "$4"); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { echo "$3 exited" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$1" ] || { echo "$3 did not start" >&2; exit 1; }
}

serve_grid() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -f "$work/url"
  "$bin" fake-grid --connections "$connections" --registry-out "$work/registry" \
    --release-file "$work/release" "$@" > "$work/url" 2>/dev/null &
  server=$!
  # Generating many days for 1,000 connections takes a while: wait up to 10 minutes.
  wait_for_url "$work/url" "$server" "fake grid operator" 6000
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
