#!/usr/bin/env bash
# The cost of the optional features (admin listener, access log) in the
# keep-alive 100 B shape, back to back in each round: the plain engine, the
# engine with an admin listener and with an access log. COST_ONLY=0 also runs
# the older five-shape table; the full table of every shape is bench/proxy.sh.
# Proxy benchmark (a harness, not a test): a fixed fast backend measured
# direct, through rollbridge's proxy engine, and through nginx (1 worker,
# upstream keepalive) when nginx is installed — interleaved and repeated in
# one run, with each target's ratio to direct. Then RSS of the proxy idle,
# after load, and with $TUNNELS idle WebSocket tunnels.
#
# The cost of the optional features is measured in the ka-100B shape: the
# same engine with an admin listener (rb-admin; request counting itself is
# always on) and with the access log written to a file (rb-log), each as a
# ratio to the plain engine measured back to back.
#
# Needs wrk (apt-get install -y wrk nginx). Loopback only.
# Env: ROUNDS (3) DURATION seconds per run (5) CONNS (50) TUNNELS (10000)
#      COST_ONLY=1: only the ka-100B cost runs (no other shapes, no tunnels)
# Usage: bench/proxy_cost.sh       (prints a report on stdout)
set -euo pipefail

ROUNDS=${ROUNDS:-3}
COST_ONLY=${COST_ONLY:-1}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
TUNNELS=${TUNNELS:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/release/examples

command -v wrk >/dev/null || { echo "wrk not installed (apt-get install -y wrk)" >&2; exit 1; }
(cd "$root" && cargo build --release --examples -q)
# 10,000 tunnels need ~20,000 descriptors in the proxy (two per tunnel).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ $((TUNNELS * 2 + 64)) -gt "$nofile" ]; then
  echo "# RLIMIT_NOFILE is $nofile (hard limit, cannot be raised here): TUNNELS $TUNNELS -> $(((nofile - 64) / 2))" >&2
  TUNNELS=$(((nofile - 64) / 2))
fi

work=$(mktemp -d)
pids=()
cleanup() {
  exec 7>&- 2>/dev/null || true
  exec 8>&- 2>/dev/null || true
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
# CPU time (user + system, all threads) of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU time of one thread of a process, by name, in ns (0 if none).
thread_ns() {
  local t
  for t in /proc/"$1"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] && { awk '{print $1}' "$t/schedstat"; return; }
  done
  echo 0
}
declare -A engine_pid

"$bin/bench_backend" 0 >"$work/backend.out" 2>&1 &
pids+=($!)
wait_line "$work/backend.out" listening
bport=$(awk '/listening/ {print $2}' "$work/backend.out")

mkfifo "$work/hold"
"$bin/proxy_bench" 0 "$bport" <"$work/hold" >"$work/proxy.out" 2>"$work/proxy.err" &
ppid=$!
pids+=($ppid)
engine_pid[rollbridge]=$ppid
exec 7>"$work/hold"
wait_line "$work/proxy.out" listening
pport=$(awk '/listening/ {print $2}' "$work/proxy.out")
sleep 0.2
rss_idle=$(rss_kib "$ppid")

# The same engine with an admin listener, and with the access log on.
# (Their stdin is a fifo held open here: closing it stops them.)
start_variant() { # name args... (sets variant_port)
  local name=$1 fd
  shift
  mkfifo "$work/hold-$name"
  "$bin/proxy_bench" 0 "$bport" "$@" <"$work/hold-$name" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  engine_pid[$name]=$!
  exec {fd}>"$work/hold-$name"
  wait_line "$work/$name.out" listening
  variant_port=$(awk '/listening/ {print $2}' "$work/$name.out")
}
start_variant rb-admin --admin
cost_targets="rb-admin:$variant_port"
start_variant rb-log --access-log "$work/access.log"
cost_targets="$cost_targets rb-log:$variant_port"

targets="direct:$bport rollbridge:$pport"
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
  nginx -c "$work/nginx.conf" -p "$work" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$nport") 2>/dev/null && break; sleep 0.05; done
  targets="$targets nginx:$nport"
fi

shapes="ka-100B ka-64KiB close-100B close-64KiB 1conn-100B"
[ "$COST_ONLY" = 1 ] && shapes="ka-100B"
echo "# rollbridge proxy benchmark $(date -u +%FT%TZ) on $(nproc) cores, $(uname -r)" >&2
echo "# rounds=$ROUNDS duration=${DURATION}s conns=$CONNS; targets: $targets" >&2
results="$work/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
  for shape in $shapes; do
    case $shape in
      ka-100B) args=(-c"$CONNS") path=/small ;;
      ka-64KiB) args=(-c"$CONNS") path=/big ;;
      close-100B) args=(-c"$CONNS" -H "Connection: close") path=/small ;;
      close-64KiB) args=(-c"$CONNS" -H "Connection: close") path=/big ;;
      1conn-100B) args=(-c1) path=/small ;;
    esac
    shape_targets=$targets
    if [ "$shape" = ka-100B ]; then
      shape_targets="$targets $cost_targets"
      [ "$COST_ONLY" = 1 ] && shape_targets="rollbridge:$pport $cost_targets"
    fi
    for t in $shape_targets; do
      name=${t%%:*} port=${t##*:}
      epid=${engine_pid[$name]:-}
      if [ -n "$epid" ]; then
        c0=$(cpu_ticks "$epid") p0=$(thread_ns "$epid" rollbridge-prox) w0=$(thread_ns "$epid" access-log)
      fi
      out=$(wrk -t1 "${args[@]}" -d"${DURATION}s" --latency "http://127.0.0.1:$port$path" 2>&1)
      if [ -n "$epid" ]; then
        c1=$(cpu_ticks "$epid") p1=$(thread_ns "$epid" rollbridge-prox) w1=$(thread_ns "$epid" access-log)
        reqs=$(echo "$out" | awk '/requests in/ {print $1}')
        echo -e "$round\t$shape\t$name\t$(python3 -c "n = max($reqs, 1); print(f'{($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / n:.2f}\t{($p1 - $p0) / 1e3 / n:.3f}\t{($w1 - $w0) / 1e3 / n:.3f}')")" >>"$work/cpu.tsv"
      fi
      python3 - "$round" "$shape" "$name" <<PY >>"$results"
import re, sys
out = """$out"""
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    f = float(m.group(1)); u = m.group(2)
    return f / 1000 if u == "us" else f if u == "ms" else f * 1000
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", out).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
errs = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
errs += int(non2xx.group(1)) if non2xx else 0
print("\t".join(sys.argv[1:4] + [f"{rps:.0f}", f"{p50:.3f}", f"{p99:.3f}", str(errs)]))
PY
      echo "round $round $shape $name: $(tail -1 "$results" | cut -f4-)" >&2
    done
  done
done
rss_loaded=$(rss_kib "$ppid")
log_lines=$(wc -l <"$work/access.log")
echo "# access log: $log_lines lines, $(du -h "$work/access.log" | cut -f1)" >&2

if [ "$COST_ONLY" = 1 ]; then
  python3 - "$results" "$work/cpu.tsv" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
cpu = {(r[0], r[2]): [float(x) for x in r[3:6]] for r in (l.rstrip("\n").split("\t") for l in open(sys.argv[2]))}
by_round = {(r[0], r[2]): float(r[3]) for r in rows}
rounds = sorted(set(r[0] for r in rows))
print("| variant | req/s (median) | throughput ratio | CPU µs/request (median) | CPU ratio | proxy thread µs/request | proxy thread ratio | writer thread µs/request |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for n in ["rollbridge", "rb-admin", "rb-log"]:
    rps = statistics.median(by_round[(r, n)] for r in rounds)
    ratio = statistics.median(by_round[(r, n)] / by_round[(r, "rollbridge")] for r in rounds)
    col = lambda i: statistics.median(cpu[(r, n)][i] for r in rounds)
    rel = lambda i: statistics.median(cpu[(r, n)][i] / cpu[(r, "rollbridge")][i] for r in rounds)
    print(f"| {n} | {rps:.0f} | {ratio:.3f} | {col(0):.2f} | {rel(0):.3f} | {col(1):.2f} | {rel(1):.3f} | {col(2):.2f} |")
print()
print("ka-100B; ratios are medians of per-round ratios (variants run back to back).")
print("CPU is the engine process's user+system time (every thread, the access")
print("log writer included) per request: less sensitive to a busy machine than req/s;")
print("the proxy thread's and the log writer's own CPU time are shown apart.")
print(f"Load average at the end: {open('/proc/loadavg').read().split()[:3]}")
PY
  exit 0
fi

# Idle WebSocket tunnels through the proxy.
mkfifo "$work/hold2"
"$bin/ws_idle" "$pport" "$TUNNELS" <"$work/hold2" >"$work/ws.out" 2>&1 &
wspid=$!
pids+=($wspid)
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

python3 - "$results" "$rss_idle" "$rss_loaded" "$rss_ws" "$TUNNELS" "$ws_status" <<'PY'
import sys, statistics, collections
path, rss_idle, rss_loaded, rss_ws, tunnels, ws_status = sys.argv[1:7]
rows = [l.rstrip("\n").split("\t") for l in open(path)]
data = collections.defaultdict(list)
by_round = {}
for rnd, shape, name, rps, p50, p99, errs in rows:
    data[(shape, name)].append((float(rps), float(p50), float(p99), int(errs)))
    by_round[(rnd, shape, name)] = float(rps)
rounds = sorted(set(r[0] for r in rows))
shapes = list(dict.fromkeys(r[1] for r in rows))
names = list(dict.fromkeys(r[2] for r in rows))
def ratio(shape, a, b):
    # median over rounds of a/b measured back to back (robust to load drift)
    rs = [by_round[(r, shape, a)] / by_round[(r, shape, b)]
          for r in rounds if (r, shape, a) in by_round and (r, shape, b) in by_round]
    return statistics.median(rs) if rs else float("nan")
has_nginx = "nginx" in names
print("| shape | target | req/s (median) | p50 ms | p99 ms | errors | ratio to direct | ratio to nginx |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for s in shapes:
    base_p50 = statistics.median(x[1] for x in data[(s, "direct")])
    for n in names:
        v = data[(s, n)]
        if not v:
            continue
        rps = statistics.median(x[0] for x in v)
        p50 = statistics.median(x[1] for x in v)
        p99 = statistics.median(x[2] for x in v)
        errs = sum(x[3] for x in v)
        extra = ""
        if s.startswith("1conn") and n != "direct":
            extra = f" (+{(p50 - base_p50) * 1000:.0f} µs p50)"
        vs_nginx = f"{ratio(s, n, 'nginx'):.2f}" if has_nginx and n != "nginx" else ""
        print(f"| {s} | {n} | {rps:.0f} | {p50:.3f} | {p99:.3f} | {errs} | {ratio(s, n, 'direct'):.2f}{extra} | {vs_nginx} |")
print()
print("Ratios are medians of per-round ratios (targets run back to back in each round).")
print()
print("Cost of the optional features (ka-100B, ratio to the plain engine): "
      + ", ".join(f"{n} {ratio('ka-100B', n, 'rollbridge'):.3f}"
                  for n in ("rb-admin", "rb-log") if ("ka-100B", n) in data))
ri, rl, rw, t = int(rss_idle), int(rss_loaded), int(rss_ws), int(tunnels)
print()
print(f"rollbridge proxy RSS: idle {ri / 1024:.1f} MiB, after load {rl / 1024:.1f} MiB, "
      f"with {t} idle WebSocket tunnels {rw / 1024:.1f} MiB "
      f"(+{(rw - rl) * 1024 / t / 1024:.2f} KiB per tunnel) [{ws_status.strip()}]")
PY
