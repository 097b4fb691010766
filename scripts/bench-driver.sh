#!/bin/sh
# Driver for ../shared/bench (EXTRA_DRIVERS="swift=/path/to/scripts/bench-driver.sh"):
#   DRIVER HOST PORT N PAYLOAD_BYTES QOS pub|sub [WINDOW]  ->  mqtt bench MODE -h -p -n -s -q [--window]
# MQTT_BIN overrides the executable (default: this checkout's release build).
here=$(cd "$(dirname "$0")/.." && pwd)
exe="${MQTT_BIN:-$here/.build/release/mqtt}"
if [ -n "$7" ]; then
  exec "$exe" bench "$6" -h "$1" -p "$2" -n "$3" -s "$4" -q "$5" --window "$7"
fi
exec "$exe" bench "$6" -h "$1" -p "$2" -n "$3" -s "$4" -q "$5"
