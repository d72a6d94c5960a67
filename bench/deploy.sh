#!/usr/bin/env bash
# Deploy benchmark (releases issue), everything inside a real daemon:
#  1. time from `rollbridge deploy` to traffic on the new release, for an
#     app that is healthy at once (the built-in demo app), over many deploys;
#  2. the proxy figures re-measured through the daemon's proxy port, next to
#     the backend direct and nginx (when installed), interleaved rounds: the
#     shapes and summary table of bench/proxy.sh (keep-alive and
#     connection-per-request x 100 B / 64 KiB / 1 MiB x 50 and 1,000
#     connections, one connection), wrk pinned to CPU 0 and the daemon (with
#     its backend) and nginx to CPU 1 (PIN=1, with 2+ cores).
# Usage: bench/deploy.sh   (env: DEPLOYS=30 ROUNDS=5 DURATION=2 CONNS="50 1000"
#        SHAPES PIN=1; QUICK=1 for one 1 s round; 1 MiB x 1,000 connections
#        runs 4 x DURATION: its requests take seconds each)
# Needs: wrk (apt-get install -y wrk nginx), python3. Loopback only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ "${QUICK:-0}" == 1 ]]; then ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-1} DEPLOYS=${DEPLOYS:-5}; fi
DEPLOYS=${DEPLOYS:-30} ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-2} CONNS=${CONNS:-50 1000} PIN=${PIN:-1}
client=() server=()
if [[ "$PIN" == 1 ]] && [[ "$(nproc)" -ge 2 ]] && command -v taskset >/dev/null; then
  client=(taskset -c 0) server=(taskset -c 1)
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# CPU seconds (user + system) used so far by one process (all its threads).
cpu_s() {
  sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($12 + $13) / hz}'
}
(cd "$root" && cargo build --release -q && cargo build --release --examples -q)
bin="${CARGO_TARGET_DIR:-$root/target}/release"
work=$(mktemp -d /tmp/rb-deploy-bench.XXXXXX)
daemon_pid="" ngx=""
cleanup() {
  [[ -n "$ngx" ]] && kill "$ngx" 2>/dev/null
  if [[ -n "$daemon_pid" ]]; then
    "$bin/rollbridge" shutdown -c "$work/rollbridge.json" >/dev/null 2>&1 || kill "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

config() { # command health-path
  cat > "$work/rollbridge.json" <<JSON
{"application":"deploy-bench","control":{"path":"$work/c.sock"},"proxy":{"port":0,"drainTimeoutMs":5000},
 "processes":[{"id":"web","policy":"proxied","command":"$1","port":{"from":0,"to":0},
   "health":{"path":"$2","intervalMs":5}}]}
JSON
}
config "$bin/rollbridge demo-app --port {{port}}" /ping
"$bin/rollbridge" daemon -c "$work/rollbridge.json" > "$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 500); do [[ -S "$work/c.sock" ]] && break; sleep 0.01; done
mkdir -p "$work/r"
echo "# rollbridge deploy benchmark $(date -u +%FT%TZ), $(nproc) cores, $(uname -r)"

python3 - "$bin/rollbridge" "$work" "$DEPLOYS" <<'PY'
import json, socket, statistics, subprocess, sys, time
rb, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = f"{work}/rollbridge.json"
status = json.loads(subprocess.check_output([rb, "status", "-c", cfg]))
port = status["proxy"]["port"]
def get():
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    d = b""
    while True:
        c = s.recv(65536)
        if not c: return d.decode()
        d += c
times, wrong = [], 0
for i in range(n):
    rid = f"b{i}"
    t0 = time.perf_counter()
    subprocess.run([rb, "deploy", "-c", cfg, "--release-path", f"{work}/r", "--release-id", rid], stdout=subprocess.DEVNULL, check=True)
    body = get()
    times.append((time.perf_counter() - t0) * 1000)
    wrong += f"release {rid} " not in body
times.sort()
print(f"deploy -> traffic on the new release (healthy at once, CLI included): median {statistics.median(times):.1f} ms, "
      f"p90 {times[int(len(times)*0.9)]:.1f} ms, min {times[0]:.1f} ms (n={n}; first request after the deploy answered by the old release: {wrong})")
PY

command -v wrk >/dev/null || { echo "wrk not installed: skipping the proxy figures (apt-get install -y wrk nginx)"; exit 0; }
config "$bin/examples/bench_backend {{port}}" /small
# Pinned for the proxy figures only (the deploy timing above is not): the
# daemon's threads now, the backend the next deploy spawns by inheritance.
[[ ${#server[@]} -eq 0 ]] || taskset -a -p -c 1 "$daemon_pid" >/dev/null
"$bin/rollbridge" deploy -c "$work/rollbridge.json" --release-path "$work/r" --release-id wrk >/dev/null
read -r pport bport < <("$bin/rollbridge" status -c "$work/rollbridge.json" | python3 -c '
import json,sys; s=json.load(sys.stdin); r=[r for r in s["releases"] if r["releaseId"]=="wrk"][0]
print(s["proxy"]["port"], r["ports"]["web"])')
targets="direct:$bport rollbridge-daemon:$pport"
if command -v nginx >/dev/null; then
  nport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  cat > "$work/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err warn;
events { worker_connections 30000; }
http { access_log off; upstream b { server 127.0.0.1:$bport; keepalive 64; }
  server { listen 127.0.0.1:$nport; location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGX
  "${server[@]}" nginx -c "$work/nginx.conf" -p "$work" >/dev/null 2>&1 &
  ngx=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$nport") 2>/dev/null && break; sleep 0.05; done
  targets="$targets nginx:$nport"
fi
bpid=""
for p in $(pgrep -f "bench_backend $bport"); do [[ "$(cat "/proc/$p/comm")" == bench_backend ]] && bpid=$p; done
cpu_of() { # CPU seconds of a target's own process(es): nginx master + worker
  case $1 in
    direct) cpu_s "$bpid" ;;
    rollbridge-daemon) cpu_s "$daemon_pid" ;;
    nginx) echo "$(cpu_s "$ngx") $(for w in $(pgrep -P "$ngx"); do cpu_s "$w"; echo; done)" | awk '{for (i = 1; i <= NF; i++) t += $i; printf "%.3f", t}' ;;
  esac
}
if [[ -z "${SHAPES:-}" ]]; then
  SHAPES=""
  for c in $CONNS; do
    for m in ka close; do for z in 100B 64KiB 1MiB; do SHAPES="$SHAPES $m-$z-c$c"; done; done
  done
  SHAPES="$SHAPES 1conn-100B"
fi
echo "# proxy figures: rounds=$ROUNDS duration=${DURATION}s pinning=${client[*]:-none}/${server[*]:-none}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
results="$work/results.tsv"
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
      c0=$(cpu_of "$name")
      d=$DURATION; [[ $shape == *-1MiB-c1000 ]] && d=$(echo "$DURATION" | awk '{print $1 * 4}')
      out=$("${client[@]}" wrk -t1 "${args[@]}" -d"${d}s" --timeout 10s --latency "http://127.0.0.1:$port$path" 2>&1)
      cpu=$(echo "$c0 $(cpu_of "$name")" | awk '{printf "%.3f", $2 - $1}')
      python3 "$root/bench/wrk_table.py" parse "$round" "$shape" "$name" "$cpu" <<<"$out" >>"$results"
    done
  done
done
python3 "$root/bench/wrk_table.py" report "$results" rollbridge-daemon
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$daemon_pid/status")
echo "daemon RSS after the load: $((rss / 1024)) MiB"
