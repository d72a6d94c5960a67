#!/usr/bin/env bash
# Control-plane benchmark: `rollbridge status` round trip, raw control-socket
# round trip, daemon start-to-ready and idle daemon RSS; and config loading:
# `status` with the same config as rollbridge.json, as a static rollbridge.js
# (read natively) and as rollbridge.js forced through Node, interleaved.
# Usage: bench/control.sh [path/to/rollbridge]   (default: release build)
# Needs: bash, python3; hyperfine when installed (apt-get install hyperfine).
# Compares with the Node tool when `node` and a `rollbridge` npm package are
# at hand (ROLLBRIDGE_NODE_BIN=<path to its CLI>); otherwise figures alone.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-}"
if [[ -z "$bin" ]]; then
  (cd "$here" && cargo build --release --quiet)
  bin="${CARGO_TARGET_DIR:-$here/target}/release/rollbridge"
fi
runs="${RUNS:-200}"
work="$(mktemp -d /tmp/rb-bench.XXXXXX)"
daemon_pid=""
cleanup() {
  if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    "$bin" shutdown --config "$work/rollbridge.json" >/dev/null 2>&1 || kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/rollbridge.json" <<JSON
{"application":"bench","control":{"path":"$work/c.sock"},"proxy":{"port":0},
 "processes":[{"id":"web","command":"sleep 1000","policy":"proxied","port":{"from":0,"to":0}}]}
JSON
printf '// generated\nexport default %s;\n' "$(cat "$work/rollbridge.json")" > "$work/rollbridge.js"

echo "binary: $bin ($(stat -c %s "$bin") bytes)"
echo "machine: $(nproc) cores, $(uname -sr)"

# --- daemon start-to-ready: spawn -> `status` answered on the socket -------
python3 - "$bin" "$work" "${START_RUNS:-50}" <<'PY'
import os, socket, statistics, subprocess, sys, time
bin, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg, sock = f"{work}/rollbridge.js", f"{work}/c.sock"  # static .js: read natively
def status_ok():
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(sock)
        s.sendall(b'{"command":"status"}\n'); data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk: return False
            data += chunk
        s.close(); return data.startswith(b'{"status":"success"')
    except OSError:
        return False
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    p = subprocess.Popen([bin, "daemon", "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not status_ok():
        if p.poll() is not None: sys.exit("daemon exited early")
        time.sleep(0.0002)
    times.append((time.perf_counter() - t0) * 1000)
    subprocess.run([bin, "shutdown", "--config", cfg], stdout=subprocess.DEVNULL, check=True)
    p.wait()
print(f"daemon start-to-ready (static rollbridge.js): median {statistics.median(times):.2f} ms "
      f"(min {min(times):.2f}, max {max(times):.2f}, n={runs})")
PY

# --- a daemon for the round-trip figures -----------------------------------
"$bin" daemon --config "$work/rollbridge.json" > "$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 500); do [[ -S "$work/c.sock" ]] && break; sleep 0.01; done
sleep 0.2

python3 - "$work/c.sock" "${RAW_RUNS:-5000}" <<'PY'
import socket, statistics, sys, time
sock, runs = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    s = socket.socket(socket.AF_UNIX); s.connect(sock)
    s.sendall(b'{"command":"status"}\n'); data = b""
    while not data.endswith(b"\n"): data += s.recv(65536)
    s.close()
    times.append((time.perf_counter() - t0) * 1e6)
print(f"raw socket status round trip (connect+request+reply): median {statistics.median(times):.0f} us "
      f"(p99 {sorted(times)[int(len(times)*0.99)]:.0f} us, n={runs})")
PY

if command -v hyperfine >/dev/null; then
  cmds=("$bin status --config $work/rollbridge.json" "$bin status --config $work/rollbridge.js")
  names=(json static-js)
  if command -v node >/dev/null; then
    cmds+=("env ROLLBRIDGE_CONFIG_LOADER=node $bin status --config $work/rollbridge.js")
    names+=(node-js)
  fi
  hyperfine -N --warmup 20 --runs "$runs" --style none \
    --export-json "$work/status.json" "${cmds[@]}" >/dev/null 2>&1
  python3 - "$work/status.json" "${names[@]}" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
med = {}
for name, r in zip(sys.argv[2:], res):
    med[name] = r["median"] * 1000
    print(f"`rollbridge status` CLI round trip, {name} config (process start included): median {med[name]:.2f} ms "
          f"(mean {r['mean']*1000:.2f} ± {r['stddev']*1000:.2f} ms, n={len(r['times'])})")
print(f"static rollbridge.js minus rollbridge.json: {med['static-js'] - med['json']:+.3f} ms (goal: within 1 ms)")
if "node-js" in med:
    print(f"through node / static: {med['node-js'] / med['static-js']:.1f}x")
PY
else
  python3 - "$bin" "$work/rollbridge.json" "$runs" <<'PY'
import statistics, subprocess, sys, time
bin, cfg, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = []
for _ in range(runs):
    t0 = time.perf_counter(); subprocess.run([bin, "status", "--config", cfg], stdout=subprocess.DEVNULL, check=True)
    t.append((time.perf_counter() - t0) * 1000)
print(f"`rollbridge status` CLI round trip: median {statistics.median(t):.2f} ms (n={runs})")
PY
fi

sleep 1
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$daemon_pid/status")
threads=$(awk '/^Threads/ {print $2}' "/proc/$daemon_pid/status")
echo "idle daemon RSS: ${rss_kib} KiB ($(awk -v k="$rss_kib" 'BEGIN{printf "%.2f", k/1024}') MiB), threads: $threads"

if [[ -n "${ROLLBRIDGE_NODE_BIN:-}" ]] && command -v node >/dev/null; then
  echo "Node tool: $ROLLBRIDGE_NODE_BIN"
  hyperfine -N --warmup 5 --runs 50 --style basic "$ROLLBRIDGE_NODE_BIN status --config $work/rollbridge.json" || true
else
  echo "Node tool: not available (the rollbridge npm package is not on the registry); figures alone."
fi
