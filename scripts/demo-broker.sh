#!/usr/bin/env bash
# Runs a command against a local mosquitto started for it: its own config in a temp dir, a free
# loopback port, always stopped at the end. The command gets the port in $MQTT_PORT (and as its
# last argument). Used by `make demo`.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 command [args...]" >&2; exit 2; }

dir=$(mktemp -d -t uvmqtt-demo-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port=""
for _ in $(seq 50); do
  candidate=$(( 20000 + RANDOM % 40000 ))
  if port_free "$candidate"; then port=$candidate; break; fi
done
[ -n "$port" ] || { echo "no free port found" >&2; exit 1; }

{
  [ "$(id -u)" = 0 ] && echo "user root"
  echo "listener $port 127.0.0.1"
  echo "allow_anonymous true"
  echo "max_inflight_messages 0"
  echo "log_dest file $dir/mosquitto.log"
} > "$dir/mosquitto.conf"

/usr/sbin/mosquitto -c "$dir/mosquitto.conf" >"$dir/stderr.txt" 2>&1 &
pid=$!
for _ in $(seq 100); do
  if ! kill -0 "$pid" 2>/dev/null; then echo "mosquitto failed to start:" >&2; cat "$dir/stderr.txt" >&2; exit 1; fi
  port_free "$port" || break
  sleep 0.05
done
port_free "$port" && { echo "mosquitto did not accept on port $port" >&2; exit 1; }
echo "[make demo] mosquitto listening on 127.0.0.1:$port (pid $pid)"

MQTT_PORT=$port timeout 60 "$@" "$port"
