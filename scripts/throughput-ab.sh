#!/bin/bash
# A/B throughput of two `mqtt` binaries on the ../shared/bench fake brokers (loopback), runs
# alternating: blast (receive: the broker writes N QoS 0 PUBLISH) and sink (publish), 16 B and
# 256 B. usage: scripts/throughput-ab.sh HARNESS_DIR MQTT_A MQTT_B [N] [REPS]
#   HARNESS_DIR: a built copy of ../shared/bench (build/blast_broker, build/sink_broker).
# Prints: case binary rate(msg/s) client-cpu-s client-maxrss-KiB.
set -u
H=$1; A=$2; B=$3; N=${4:-2000000}; REPS=${5:-3}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
one() {  # kind payload binary label
  local kind=$1 pl=$2 bin=$3 port bpid out
  port=$(free_port)
  if [ "$kind" = blast ]; then
    timeout 120 "$H/build/blast_broker" "$port" "$N" "$pl" 0 65535 120 >/dev/null 2>&1 & bpid=$!
  else
    timeout 120 "$H/build/sink_broker" "$port" 120 >/dev/null 2>&1 & bpid=$!
  fi
  sleep 0.3   # the fake brokers serve one connection: no probe connect
  mode=$([ "$kind" = blast ] && echo sub || echo pub)
  out=$( { /usr/bin/time -f "TIME %U %S %M" timeout 120 "$bin" bench "$mode" -h 127.0.0.1 -p "$port" -n "$N" -s "$pl" -q 0 | tail -1; } 2>&1 )
  wait "$bpid" 2>/dev/null
  rate=$(echo "$out" | grep -o 'rate=[0-9.]*' | head -1 | cut -d= -f2)
  t=$(echo "$out" | grep '^TIME' | awk '{printf "%.2f %d", $2+$3, $4}')
  echo "$kind ${pl}B $4 rate=${rate:-fail} cpu_s/maxrss_kib=$t"
}
for r in $(seq "$REPS"); do
  for kind in blast sink; do for pl in 16 256; do
    one "$kind" "$pl" "$A" A; one "$kind" "$pl" "$B" B
  done; done
done
