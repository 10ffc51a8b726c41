#!/usr/bin/env bash
# Checks that `infra/dev.sh` stops everything it started on SIGTERM, SIGHUP and SIGINT: no
# process of its tree is left and its port is closed. Run by `infra/test.sh` (against the
# stack it started, which dev.sh then only uses); prints one summary line.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
descendants() { # PID: every process below it
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do echo "$child"; descendants "$child"; done
}

passed=0 failed=0
for sig in TERM HUP INT; do
  port=$(free_port)
  log="$ROOT/infra/.local/logs/dev-signal-$sig.log"
  # A background job of a script starts with SIGINT ignored (and under `nohup` SIGHUP too),
  # and bash cannot trap a signal ignored at entry: restore their defaults first, as a
  # terminal's Ctrl-C and hangup would find them.
  PORT=$port setsid python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); signal.signal(signal.SIGHUP, signal.SIG_DFL); os.execvp("bash", ["bash", sys.argv[1]])' \
    "$ROOT/infra/dev.sh" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 1500); do port_open "$port" && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if ! port_open "$port"; then
    echo "dev.sh ($sig): the API never opened port $port; its log:"; tail -n 20 "$log"
    failed=$((failed + 1)); kill -9 "$pid" 2>/dev/null; continue
  fi
  tree=$(descendants "$pid")
  kill -"$sig" "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  left=""
  for p in $pid $tree; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
  if [ -n "$left" ] || port_open "$port"; then
    echo "dev.sh ($sig): left behind: processes [$left ], port $port $(port_open "$port" && echo open || echo closed)"
    failed=$((failed + 1))
    for p in $left; do kill -9 "$p" 2>/dev/null; done
  else
    echo "dev.sh ($sig): stopped, no process and no open port left"
    passed=$((passed + 1))
  fi
done
echo "dev.sh signals: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
