#!/bin/bash
# Scale benchmark (issue 9): C idle subscribed connections from one process, this client
# (`mqtt scale`, one loop and an EventLoopGroup) alternating with libmosquitto
# (../shared/scale/mosq_scale.c, socketpair suppressed: 1 fd per connection) in one run, each
# against a private mosquitto on a free loopback port started here and stopped by PID.
#
# usage: scripts/scale-bench.sh C [ROUNDS] [MODES]
#   MODES: space-separated, from: loop (one EventLoop), group (EventLoopGroup, one loop per
#   core), mosq (libmosquitto). Default "loop group mosq". ROUNDS default 2.
# Needs: mosquitto, gcc and libmosquitto-dev for the mosq mode. Prints the RESULT lines.
set -u
C=${1:?usage: scale-bench.sh C [ROUNDS] [MODES]}
ROUNDS=${2:-2}
MODES=${3:-loop group mosq}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ulimit -n "$(ulimit -Hn)"
echo "fd limit: $(ulimit -n); $(uptime)"
swift build -c release --product mqtt --package-path "$ROOT" >/dev/null || exit 1
MQTT="$(swift build -c release --show-bin-path --package-path "$ROOT")/mqtt"
MOSQ_SRC="$ROOT/../shared/scale/mosq_scale.c"
MOSQ_BIN="$ROOT/.build/mosq_scale"
if [[ " $MODES " == *" mosq "* ]]; then
  [ -x "$MOSQ_BIN" ] || gcc -O2 -Wall -rdynamic -o "$MOSQ_BIN" "$MOSQ_SRC" -lmosquitto || exit 1
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run_one() {
  local mode=$1 port tmp bpid rc
  port=$(free_port); tmp=$(mktemp -d)
  cat > "$tmp/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
max_connections -1
persistence false
log_dest file $tmp/broker.log
log_type error
log_type warning
CONF
  [ "$(id -u)" = 0 ] && echo "user root" >> "$tmp/mosquitto.conf"
  mosquitto -c "$tmp/mosquitto.conf" & bpid=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  echo "== $mode C=$C port=$port"
  case $mode in
    loop)  timeout 200 "$MQTT" scale -p "$port" -c "$C" --loops 1 --broker-pid "$bpid" 2>"$tmp/client.err" ;;
    group) timeout 200 "$MQTT" scale -p "$port" -c "$C" --loops "$(nproc)" --broker-pid "$bpid" 2>"$tmp/client.err" ;;
    mosq)  timeout 200 "$MOSQ_BIN" "$port" "$C" "$bpid" nosockpair 2>"$tmp/client.err" ;;
  esac
  rc=$?
  [ $rc = 0 ] || { echo "rc=$rc"; sort "$tmp/client.err" | uniq -c | sort -rn | head -5; }
  kill "$bpid"; wait "$bpid" 2>/dev/null
  rm -rf "$tmp"
}
for r in $(seq "$ROUNDS"); do
  for m in $MODES; do run_one "$m"; done
done
