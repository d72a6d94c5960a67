#!/usr/bin/env bash
# Config-loading benchmark (fast start): `rollbridge status` with the same
# config as rollbridge.json, as a static rollbridge.js (read natively) and
# as rollbridge.js forced through Node (ROLLBRIDGE_CONFIG_LOADER=node), in
# one interleaved hyperfine run; then daemon start-to-ready with the .js.
# Usage: bench/startup.sh [path/to/rollbridge]   (default: release build)
# Needs: hyperfine (apt-get install hyperfine), python3, node for the Node row.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-}"
if [[ -z "$bin" ]]; then
  (cd "$here" && cargo build --release --quiet)
  bin="${CARGO_TARGET_DIR:-$here/target}/release/rollbridge"
fi
runs="${RUNS:-300}"
work="$(mktemp -d /tmp/rb-startup.XXXXXX)"
daemon_pid=""
cleanup() {
  if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    "$bin" shutdown --config "$work/rollbridge.json" >/dev/null 2>&1 || kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

body=$(cat <<JSON
{"application":"bench","control":{"path":"$work/c.sock"},"proxy":{"port":0},
 "processes":[{"id":"web","command":"sleep 1000","policy":"proxied","port":{"from":0,"to":0}},
  {"id":"worker","command":"sleep 1000","replicas":2,"env":{"NODE_ENV":"production"}}]}
JSON
)
echo "$body" > "$work/rollbridge.json"
printf '// generated\nexport default %s;\n' "$body" > "$work/rollbridge.js"

"$bin" daemon --config "$work/rollbridge.json" > "$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 500); do [[ -S "$work/c.sock" ]] && break; sleep 0.01; done

echo "binary: $bin; machine: $(nproc) cores, $(uname -sr)"
"$bin" validate --json --config "$work/rollbridge.js" | grep '"loader"'

cmds=("$bin status --config $work/rollbridge.json" "$bin status --config $work/rollbridge.js")
names=("json" "static-js")
if command -v node >/dev/null; then
  cmds+=("env ROLLBRIDGE_CONFIG_LOADER=node $bin status --config $work/rollbridge.js")
  names+=("node-js")
fi
hyperfine -N --warmup 20 --runs "$runs" --style none --export-json "$work/h.json" "${cmds[@]}" >/dev/null
python3 - "$work/h.json" "${names[@]}" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2:]
med = {n: r["median"] * 1000 for n, r in zip(names, res)}
for n, r in zip(names, res):
    print(f"status via {n:10s} median {med[n]:7.2f} ms  (mean {r['mean']*1000:.2f} ± {r['stddev']*1000:.2f}, n={len(r['times'])})")
print(f"static-js minus json: {med['static-js'] - med['json']:+.3f} ms (goal: within 1 ms)")
if "node-js" in med:
    print(f"node-js / static-js: {med['node-js'] / med['static-js']:.1f}x")
PY

python3 - "$bin" "$work" "${START_RUNS:-50}" <<'PY'
import socket, statistics, subprocess, sys, time
bin, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg, sock = f"{work}/rollbridge.js", f"{work}/s2.sock"
open(f"{work}/start.js", "w").write(open(cfg).read().replace(f"{work}/c.sock", sock))
def ok():
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(sock); s.sendall(b'{"command":"status"}\n')
        d = b""
        while not d.endswith(b"\n"):
            c = s.recv(65536)
            if not c: return False
            d += c
        return d.startswith(b'{"status":"success"')
    except OSError:
        return False
t = []
for _ in range(runs):
    t0 = time.perf_counter()
    p = subprocess.Popen([bin, "daemon", "--config", f"{work}/start.js"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not ok():
        if p.poll() is not None: sys.exit("daemon exited early")
        time.sleep(0.0002)
    t.append((time.perf_counter() - t0) * 1000)
    subprocess.run([bin, "shutdown", "--config", f"{work}/start.js"], stdout=subprocess.DEVNULL, check=True)
    p.wait()
print(f"daemon start-to-ready with static rollbridge.js: median {statistics.median(t):.2f} ms (n={runs}; goal < 20 ms)")
PY
