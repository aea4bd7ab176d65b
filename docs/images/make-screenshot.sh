#!/usr/bin/env bash
# Reproduces docs/images/prometheus-request-rate.png: Prometheus's graph page for the request-rate
# query, over the demo app under its generated traffic.
#
#   bash docs/images/make-screenshot.sh            # from the repository root
#
# Needs: a build (`npm run build`), Debian's `prometheus` and `chromium` packages
# (apt-get install -y prometheus chromium). Uses DATABASE_URL if set, else the demo's embedded
# PostgreSQL. Everything it starts is stopped and removed on exit. TRAFFIC_SECONDS (default 150)
# sets how long the traffic runs before the screenshot, RANGE (default 2m) the graph's range.
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT="docs/images/prometheus-request-rate.png"
QUERY='sum by (route, status_code) (rate(http_requests_total[1m]))'
TRAFFIC_SECONDS="${TRAFFIC_SECONDS:-150}"
PROMETHEUS="${PROMETHEUS:-/usr/bin/prometheus}"
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser)}"

[ -f dist/examples/demo.js ] || { echo "run npm run build first" >&2; exit 1; }
[ -x "$PROMETHEUS" ] || { echo "prometheus not found (apt-get install prometheus)" >&2; exit 1; }
[ -x "$CHROMIUM" ] || { echo "chromium not found (apt-get install chromium)" >&2; exit 1; }

free_port () { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

tmp="$(mktemp -d)"
demo_pid=""
prom_pid=""
cleanup () {
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null || true
  # The demo stops its traffic, the app and its database on SIGTERM.
  [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

demo_port="$(free_port)"
prom_port="$(free_port)"

echo "starting the demo on port $demo_port with traffic…"
PORT="$demo_port" HOST=127.0.0.1 DEMO_TRAFFIC_RATE="${DEMO_TRAFFIC_RATE:-25}" \
  node dist/examples/demo.js --traffic >"$tmp/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 300); do
  grep -q "demo: metrics" "$tmp/demo.log" && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$tmp/demo.log" >&2; exit 1; }
  sleep 0.5
done
grep -q "demo: metrics" "$tmp/demo.log" || { cat "$tmp/demo.log" >&2; exit 1; }

cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $PWD/docs/prometheus/recording-rules.yml
scrape_configs:
  - job_name: netbox
    static_configs:
      - targets: ['127.0.0.1:$demo_port']
EOF
echo "starting Prometheus on 127.0.0.1:$prom_port…"
"$PROMETHEUS" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!

echo "letting the traffic run for ${TRAFFIC_SECONDS}s…"
sleep "$TRAFFIC_SECONDS"

expr="$(node -e 'console.log(encodeURIComponent(process.argv[1]))' "$QUERY")"
url="http://127.0.0.1:$prom_port/graph?g0.expr=$expr&g0.tab=0&g0.stacked=0&g0.show_exemplars=0&g0.range_input=${RANGE:-2m}"
echo "screenshot of $url"
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$tmp/chromium" --hide-scrollbars --virtual-time-budget=15000 \
  --window-size=1400,900 --screenshot="$PWD/$OUT" "$url" >"$tmp/chromium.log" 2>&1 \
  || { cat "$tmp/chromium.log" >&2; exit 1; }
echo "wrote $OUT"
