#!/usr/bin/env bash
# Integration test of the example gateway: starts its own mosquitto (own config, free loopback
# port) and the built gateway (free loopback HTTP port), publishes with mosquitto_pub (or the
# repository's `mqtt` tool, same flags, when MQTT_TOOL names it), then reads /latest and /metrics over HTTP and
# checks them; then SIGTERM: the gateway must exit 0 and the broker must not have published its
# will. Every wait is bounded; everything started is stopped on exit.
# Usage: scripts/integration-test.sh [path to SensorGateway binary]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-"$(swift build --show-bin-path)/SensorGateway"}
[ -x "$bin" ] || { echo "no gateway binary at $bin (swift build first)" >&2; exit 2; }
if [ -n "${MQTT_TOOL:-}" ]; then pub="$MQTT_TOOL pub" sub="$MQTT_TOOL sub"; else pub=mosquitto_pub sub=mosquitto_sub; fi
command -v "${pub%% *}" >/dev/null || { echo "no publisher: install mosquitto-clients or set MQTT_TOOL" >&2; exit 2; }

dir=$(mktemp -d -t uvmqtt-gateway-XXXXXX)
broker_pid="" gateway_pid="" watcher_pid=""
stop() {
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  stop "$gateway_pid"; stop "$watcher_pid"; stop "$broker_pid"
  if [ $status != 0 ]; then
    echo "--- gateway log"; cat "$dir/gateway.log" 2>/dev/null || true
    echo "--- broker log"; cat "$dir/mosquitto.log" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  for _ in $(seq 50); do
    local candidate=$(( 20000 + RANDOM % 40000 ))
    if port_free "$candidate"; then echo "$candidate"; return; fi
  done
  fail "no free port"
}
wait_until() {  # wait_until seconds command...
  local limit=$1; shift
  for _ in $(seq $(( limit * 20 ))); do "$@" && return 0; sleep 0.05; done
  return 1
}

mqtt_port=$(free_port)
{
  [ "$(id -u)" = 0 ] && echo "user root"
  echo "listener $mqtt_port 127.0.0.1"
  echo "allow_anonymous true"
  echo "log_dest file $dir/mosquitto.log"
  echo "log_type all"
} > "$dir/mosquitto.conf"
/usr/sbin/mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.stderr" 2>&1 &
broker_pid=$!
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_until 5 listening "$mqtt_port" || fail "mosquitto did not start: $(cat "$dir/mosquitto.stderr")"

# A retained value published before the gateway starts, to be served too.
$pub -h 127.0.0.1 -p "$mqtt_port" -t sensors/early -m 7 -r -q 1

http_port=$(free_port)
MQTT_CLIENT_ID=gateway-test MQTT_SERVER_URI="mqtt://127.0.0.1:$mqtt_port" MQTT_KEEP_ALIVE=10 \
MQTT_WILL_TOPIC=gateway/status MQTT_WILL_PAYLOAD=lost \
HTTP_HOST=127.0.0.1 HTTP_PORT=$http_port LOG_LEVEL=debug \
  timeout 120 "$bin" >"$dir/gateway.log" 2>&1 &
gateway_pid=$!

healthy() { curl -fsS -m 2 "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1; }
wait_until 30 healthy || fail "gateway not healthy within 30 s"
wait_until 10 grep -q "subscribed" "$dir/gateway.log" || fail "gateway did not subscribe"

# Watch for the will: it must never be published (clean shutdown below).
timeout 60 $sub -h 127.0.0.1 -p "$mqtt_port" -t gateway/status -v >"$dir/will.txt" 2>/dev/null &
watcher_pid=$!

$pub -h 127.0.0.1 -p "$mqtt_port" -t sensors/room1/temperature -m 21.5 -q 1
$pub -h 127.0.0.1 -p "$mqtt_port" -t sensors/room1/temperature -m 22.0 -q 1
$pub -h 127.0.0.1 -p "$mqtt_port" -t sensors/room2/humidity -m 40 -q 0
$pub -h 127.0.0.1 -p "$mqtt_port" -t other/ignored -m x -q 1

latest() { curl -fsS -m 2 "http://127.0.0.1:$http_port/latest"; }
has_all() { latest | python3 -c '
import json, sys
t = json.load(sys.stdin)["topics"]
sys.exit(0 if t.get("sensors/room1/temperature", {}).get("value") == "22.0" and "sensors/room2/humidity" in t else 1)'; }
wait_until 10 has_all || fail "/latest did not get the values: $(latest)"
latest | python3 -c '
import json, sys
t = json.load(sys.stdin)["topics"]
assert set(t) == {"sensors/early", "sensors/room1/temperature", "sensors/room2/humidity"}, t
assert t["sensors/room1/temperature"]["count"] == 2, t
assert t["sensors/early"] == {**t["sensors/early"], "value": "7", "retained": True}, t
assert t["sensors/room2/humidity"]["value"] == "40", t
' || fail "/latest content: $(latest)"
code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$http_port/latest/sensors/room2/humidity")
[ "$code" = 200 ] || fail "/latest/sensors/room2/humidity: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$http_port/latest/sensors/none")
[ "$code" = 404 ] || fail "/latest/sensors/none: $code"

metrics=$(curl -fsS -m 2 "http://127.0.0.1:$http_port/metrics")
check_metric() {  # name, label fragment, expected value
  echo "$metrics" | grep -E "^$1\{[^}]*$2[^}]*\} $3(\.0)?\$" >/dev/null || fail "metric $1{$2} != $3; metrics:
$(echo "$metrics" | grep '^mqtt_client' | head -40)"
}
check_metric mqtt_client_connected 'client_id="gateway-test"' 1
check_metric mqtt_client_connects_total 'client_id="gateway-test"' 1
check_metric mqtt_client_messages_received_total 'qos="1"' 3
check_metric mqtt_client_messages_received_total 'qos="0"' 1

# Graceful shutdown: SIGTERM, exit 0 within 15 s, DISCONNECT (no will).
kill -TERM "$gateway_pid"
for _ in $(seq 300); do kill -0 "$gateway_pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$gateway_pid" 2>/dev/null && fail "gateway still running 15 s after SIGTERM"
status=0; wait "$gateway_pid" || status=$?
gateway_pid=""
[ "$status" = 0 ] || fail "gateway exited with $status after SIGTERM"
grep -q "stopped" "$dir/gateway.log" || fail "no 'stopped' log line"
sleep 0.5
[ ! -s "$dir/will.txt" ] || fail "the will was published: $(cat "$dir/will.txt")"
grep -q "Received DISCONNECT from gateway-test" "$dir/mosquitto.log" || fail "the broker saw no DISCONNECT from the gateway"
echo "gateway integration test: ok"
