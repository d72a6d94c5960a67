#!/usr/bin/env bash
# Proxy benchmark (a harness, not a test): a fixed fast backend measured
# direct, through rollbridge's proxy engine, and through nginx (1 worker,
# upstream keepalive) when nginx is installed — interleaved and repeated in
# one run, with each target's ratio to direct and to nginx, p99, and the CPU
# each target's own process spends per request. Then RSS of the proxy idle,
# after load, and with $TUNNELS idle WebSocket tunnels.
#
# Shapes: keep-alive and connection-per-request (`ka`, `close`) x 100 B,
# 64 KiB and 1 MiB responses x 50 and 1,000 connections, and one connection
# (the latency one hop adds). Pinning (PIN=1, with 2+ cores): wrk on CPU 0,
# backend + proxy/nginx on CPU 1, as in the issue's measurements. wrk runs
# with --timeout 10s: with 1,000 connections and 1 MiB responses a request
# can take longer than wrk's default 2 s, which should show in p99, not be
# counted as an error.
#
# Needs wrk (apt-get install -y wrk nginx). Loopback only.
# Env: ROUNDS (5) DURATION seconds per run (2) CONNS ("50 1000") TUNNELS
# (10000) SHAPES (default: all) PIN (1); QUICK=1 is one 1 s round, 1,000
# tunnels (a smoke run of the whole table in about a minute).
# BEFORE=<path to another build's proxy_bench> adds it as target `before`
# (an older engine measured in the same run, for before/after ratios).
# FEATURES=1 adds targets `rb-admin` (the same engine with an admin listener;
# request counting itself is always on) and `rb-log` (with the access log
# written to a file), run right after `rollbridge` in each shape, and a table
# of their cost: req/s and CPU per request as ratios to the plain engine, and
# the CPU time of the proxy thread and of the log's writer thread apart.
# Usage: bench/proxy.sh            (prints a report on stdout)
set -euo pipefail

if [ "${QUICK:-0}" = 1 ]; then
  ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-1} TUNNELS=${TUNNELS:-1000}
fi
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-2}
CONNS=${CONNS:-50 1000}
TUNNELS=${TUNNELS:-10000}
PIN=${PIN:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/release/examples

command -v wrk >/dev/null || { echo "wrk not installed (apt-get install -y wrk)" >&2; exit 1; }
(cd "$root" && cargo build --release --examples -q)
# 10,000 tunnels need ~20,000 descriptors in the proxy (two per tunnel).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)
# The proxy's connection cap keeps up to 256 descriptors in reserve.
if [ "$nofile" != unlimited ] && [ $((TUNNELS * 2 + 512)) -gt "$nofile" ]; then
  echo "# RLIMIT_NOFILE is $nofile (hard limit, cannot be raised here): TUNNELS $TUNNELS -> $(((nofile - 512) / 2))" >&2
  TUNNELS=$(((nofile - 512) / 2))
fi

work=$(mktemp -d)
pids=() holds=()
cleanup() {
  exec 7>&- 2>/dev/null || true
  exec 8>&- 2>/dev/null || true
  exec 9>&- 2>/dev/null || true
  for fd in ${holds[@]+"${holds[@]}"}; do exec {fd}>&- 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_line() { # file pattern
  for _ in $(seq 1 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU seconds (user + system) used so far by a process and its children.
cpu_s() {
  local p t=0
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    t=$((t + $(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)))
  done
  echo "$t $(getconf CLK_TCK)" | awk '{printf "%.3f", $1 / $2}'
}
# CPU seconds used so far by one thread of a process, by name (0 if none):
# from schedstat (ns) when the kernel has it, else utime + stime in ticks.
thread_s() {
  local t
  for t in /proc/"$1"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] || continue
    if [ -r "$t/schedstat" ]; then
      awk '{printf "%.6f", $1 / 1e9}' "$t/schedstat"
    else
      sed 's/.*) //' "$t/stat" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.6f", ($12 + $13) / hz}'
    fi
    return
  done
  echo 0
}
client=() server=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  client=(taskset -c 0) server=(taskset -c 1)
fi

"${server[@]}" "$bin/bench_backend" 0 >"$work/backend.out" 2>&1 &
pids+=($!)
wait_line "$work/backend.out" listening
bport=$(awk '/listening/ {print $2}' "$work/backend.out")

mkfifo "$work/hold"
"${server[@]}" "$bin/proxy_bench" 0 "$bport" <"$work/hold" >"$work/proxy.out" 2>"$work/proxy.err" &
ppid=$!
pids+=("$ppid")
exec 7>"$work/hold"
wait_line "$work/proxy.out" listening
pport=$(awk '/listening/ {print $2}' "$work/proxy.out")
sleep 0.2
rss_idle=$(rss_kib "$ppid")

targets="direct:$bport rollbridge:$pport"
declare -A variant_pid
if [ "${FEATURES:-0}" = 1 ]; then
  # The same engine with an admin listener, and with the access log on
  # (stdin is a fifo held open here: closing it stops them).
  start_variant() { # name args...
    local name=$1 fd
    shift
    mkfifo "$work/hold-$name"
    "${server[@]}" "$bin/proxy_bench" 0 "$bport" "$@" <"$work/hold-$name" >"$work/$name.out" 2>"$work/$name.err" &
    pids+=($!)
    variant_pid[$name]=$!
    exec {fd}>"$work/hold-$name"
    holds+=("$fd")
    wait_line "$work/$name.out" listening
    targets="$targets $name:$(awk '/listening/ {print $2}' "$work/$name.out")"
  }
  start_variant rb-admin --admin
  start_variant rb-log --access-log "$work/access.log"
fi
if [ -n "${BEFORE:-}" ]; then
  mkfifo "$work/hold3"
  "${server[@]}" "$BEFORE" 0 "$bport" <"$work/hold3" >"$work/before.out" 2>&1 &
  beforepid=$!
  pids+=("$beforepid")
  exec 9>"$work/hold3"
  wait_line "$work/before.out" listening
  targets="$targets before:$(awk '/listening/ {print $2}' "$work/before.out")"
fi
if command -v nginx >/dev/null; then
  nport=$(free_port)
  cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 30000; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:$bport; keepalive 64; }
  server {
    listen 127.0.0.1:$nport;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  "${server[@]}" nginx -c "$work/nginx.conf" -p "$work" >/dev/null 2>&1 &
  pids+=($!)
  npid=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$nport") 2>/dev/null && break; sleep 0.05; done
  targets="$targets nginx:$nport"
fi
bpid=${pids[0]}
pid_of() {
  case $1 in
    direct) echo "$bpid" ;; rollbridge) echo "$ppid" ;; nginx) echo "$npid" ;; before) echo "$beforepid" ;;
    rb-*) echo "${variant_pid[$1]}" ;;
  esac
}

if [ -z "${SHAPES:-}" ]; then
  SHAPES=""
  for c in $CONNS; do
    for m in ka close; do for z in 100B 64KiB 1MiB; do SHAPES="$SHAPES $m-$z-c$c"; done; done
  done
  SHAPES="$SHAPES 1conn-100B"
fi
echo "# rollbridge proxy benchmark $(date -u +%FT%TZ) on $(nproc) cores, $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "# rounds=$ROUNDS duration=${DURATION}s pinning=${client[*]:-none}/${server[*]:-none}; targets: $targets" >&2
results="$work/results.tsv"
threads="$work/threads.tsv"
# 1 MiB x 1,000 connections: each request takes seconds, so a short run
# would only count the ones served first; it runs four times as long.
run_for() { case $1 in *-1MiB-c1000) echo "$DURATION" | awk '{print $1 * 4}' ;; *) echo "$DURATION" ;; esac; }
for round in $(seq 1 "$ROUNDS"); do
  for shape in $SHAPES; do
    case $shape in
      1conn-*) args=(-c1) ;;
      *-c*) args=(-c"${shape##*-c}") ;;
    esac
    case $shape in close-*) args+=(-H "Connection: close") ;; esac
    case $shape in
      *-100B*) path=/small ;; *-64KiB*) path=/big ;; *-1MiB*) path=/huge ;;
    esac
    for t in $targets; do
      name=${t%%:*} port=${t##*:}
      c0=$(cpu_s "$(pid_of "$name")")
      engine=""
      if [ "${FEATURES:-0}" = 1 ]; then
        case $name in rollbridge | rb-*) engine=$(pid_of "$name") ;; esac
      fi
      if [ -n "$engine" ]; then
        p0=$(thread_s "$engine" rollbridge-prox) w0=$(thread_s "$engine" access-log)
      fi
      sampler=""
      if [ "$name" = rollbridge ]; then # RSS before and halfway through the run
        before=$(rss_kib "$ppid")
        (sleep "$(run_for "$shape" | awk '{print $1 / 2}')"; echo "$shape $before $(rss_kib "$ppid")" >>"$work/rss_load") &
        sampler=$!
      fi
      out=$("${client[@]}" wrk -t1 "${args[@]}" -d"$(run_for "$shape")s" --timeout 10s --latency "http://127.0.0.1:$port$path" 2>&1)
      [ -z "$sampler" ] || wait "$sampler"
      c1=$(cpu_s "$(pid_of "$name")")
      cpu=$(echo "$c0 $c1" | awk '{printf "%.3f", $2 - $1}')
      if [ -n "$engine" ]; then
        p1=$(thread_s "$engine" rollbridge-prox) w1=$(thread_s "$engine" access-log)
        printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$shape" "$name" \
          "$(echo "$p0 $p1" | awk '{printf "%.6f", $2 - $1}')" "$(echo "$w0 $w1" | awk '{printf "%.6f", $2 - $1}')" >>"$threads"
      fi
      python3 "$root/bench/wrk_table.py" parse "$round" "$shape" "$name" "$cpu" <<<"$out" >>"$results"
      echo "round $round $shape $name: $(tail -1 "$results" | cut -f4-)" >&2
    done
  done
done
rss_loaded=$(rss_kib "$ppid")

# Idle WebSocket tunnels through the proxy.
mkfifo "$work/hold2"
"${client[@]}" "$bin/ws_idle" "$pport" "$TUNNELS" <"$work/hold2" >"$work/ws.out" 2>&1 &
wspid=$!
pids+=("$wspid")
exec 8>"$work/hold2"
for _ in $(seq 1 1200); do
  grep -q ready "$work/ws.out" && break
  kill -0 "$wspid" 2>/dev/null || break
  sleep 0.1
done
grep -q ready "$work/ws.out" || echo "ws_idle did not finish: $(cat "$work/ws.out")" >&2
sleep 0.5
rss_ws=$(rss_kib "$ppid")
ws_status=$(cat "$work/ws.out")

python3 "$root/bench/wrk_table.py" report "$results" rollbridge
if [ "${FEATURES:-0}" = 1 ]; then
  echo "# access log: $(wc -l <"$work/access.log") lines, $(du -h "$work/access.log" | cut -f1)" >&2
  python3 "$root/bench/wrk_table.py" features "$results" rollbridge "$threads"
fi
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$rss_idle" "$rss_loaded" "$rss_ws" "$TUNNELS" "$ws_status" <<'PY'
import sys
rss_idle, rss_loaded, rss_ws, tunnels, ws_status = sys.argv[1:6]
ri, rl, rw, t = int(rss_idle), int(rss_loaded), int(rss_ws), int(tunnels)
print()
print(f"rollbridge proxy RSS: idle {ri / 1024:.1f} MiB, after load {rl / 1024:.1f} MiB, "
      f"with {t} idle WebSocket tunnels {rw / 1024:.1f} MiB "
      f"(+{(rw - rl) * 1024 / t / 1024:.2f} KiB per tunnel) [{ws_status.strip()}]")
PY
# Under load: the largest RSS sampled halfway through a run, per shape, and
# its growth over the RSS just before that run, per connection.
awk '
  { if ($3 >= rss[$1]) { rss[$1] = $3; grow[$1] = $3 - $2 } }
  END { for (s in rss) { c = s; sub(/.*-c/, "", c); if (c !~ /^[0-9]+$/) c = 1
        printf "  under load %s: %.1f MiB (+%.1f KiB per connection over the RSS before the run)\n",
          s, rss[s] / 1024, grow[s] / c } }' "$work/rss_load" | sort -V
