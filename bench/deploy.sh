#!/usr/bin/env bash
# Deploy benchmark (releases issue), everything inside a real daemon:
#  1. time from `rollbridge deploy` to traffic on the new release, for an
#     app that is healthy at once (the built-in demo app), over many deploys;
#  2. the proxy figures re-measured through the daemon's proxy port, next to
#     the backend direct and nginx (when installed), interleaved rounds.
# Usage: bench/deploy.sh   (env: DEPLOYS=30 ROUNDS=3 DURATION=5 CONNS=32)
# Needs: wrk (apt-get install -y wrk nginx), python3. Loopback only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
DEPLOYS=${DEPLOYS:-30} ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5} CONNS=${CONNS:-32}
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
"$bin/rollbridge" deploy -c "$work/rollbridge.json" --release-path "$work/r" --release-id wrk >/dev/null
read -r pport bport < <("$bin/rollbridge" status -c "$work/rollbridge.json" | python3 -c '
import json,sys; s=json.load(sys.stdin); r=[r for r in s["releases"] if r["releaseId"]=="wrk"][0]
print(s["proxy"]["port"], r["ports"]["web"])')
targets="direct:$bport rollbridge-daemon:$pport"
if command -v nginx >/dev/null; then
  nport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  cat > "$work/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err warn;
events { worker_connections 4096; }
http { access_log off; upstream b { server 127.0.0.1:$bport; keepalive 64; }
  server { listen 127.0.0.1:$nport; location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGX
  nginx -c "$work/nginx.conf" -p "$work" >/dev/null 2>&1 &
  ngx=$!
  sleep 0.3
  targets="$targets nginx:$nport"
fi
results="$work/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
  for shape in ka-100B ka-64KiB close-100B; do
    case $shape in
      ka-100B) args=(-c"$CONNS") path=/small ;;
      ka-64KiB) args=(-c"$CONNS") path=/big ;;
      close-100B) args=(-c"$CONNS" -H "Connection: close") path=/small ;;
    esac
    for t in $targets; do
      name=${t%%:*} port=${t##*:}
      out=$(wrk -t1 "${args[@]}" -d"${DURATION}s" --latency "http://127.0.0.1:$port$path" 2>&1)
      python3 - "$round" "$shape" "$name" "$out" >>"$results" <<'PY'
import re, sys
rnd, shape, name, out = sys.argv[1:5]
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v); f = float(m.group(1))
    return f / 1000 if m.group(2) == "us" else f if m.group(2) == "ms" else f * 1000
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", out).group(1)); p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
errs = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", out); errs += int(m.group(1)) if m else 0
print("\t".join([rnd, shape, name, f"{rps:.0f}", f"{p50:.3f}", f"{p99:.3f}", str(errs)]))
PY
    done
  done
done
python3 - "$results" <<'PY'
import sys, statistics, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
d = collections.defaultdict(list)
for r, s, n, rps, p50, p99, e in rows: d[(s, n)].append((float(rps), float(p50), float(p99), int(e)))
print("| shape | target | req/s | p50 ms | p99 ms | errors | ratio to direct |")
print("|---|---|---:|---:|---:|---:|---:|")
for s in dict.fromkeys(r[1] for r in rows):
    base = statistics.median(x[0] for x in d[(s, "direct")])
    for n in dict.fromkeys(r[2] for r in rows):
        v = d[(s, n)]
        print(f"| {s} | {n} | {statistics.median(x[0] for x in v):.0f} | {statistics.median(x[1] for x in v):.3f} | "
              f"{statistics.median(x[2] for x in v):.3f} | {sum(x[3] for x in v)} | {statistics.median(x[0] for x in v) / base:.2f} |")
PY
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$daemon_pid/status")
echo "daemon RSS after the load: $((rss / 1024)) MiB"
