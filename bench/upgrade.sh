#!/usr/bin/env bash
# Upgrade benchmark: UPGRADES (20) `rollbridge upgrade` runs of a real daemon
# (to a copy of its own binary) under constant load: keep-alive and
# connection-per-request clients plus WS (100) open WebSockets to the node
# fixture app. Prints requests, failed requests, refused connections,
# WebSockets lost, and the median/max time from `upgrade` to the new
# program answering `status`.
# Usage: bench/upgrade.sh   (env: UPGRADES=20 WS=100 CLIENTS=4)
# Needs: node, python3. Loopback only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
UPGRADES=${UPGRADES:-20} WS=${WS:-100} CLIENTS=${CLIENTS:-4}
(cd "$root" && cargo build --release -q)
bin="${CARGO_TARGET_DIR:-$root/target}/release"
work=$(mktemp -d /tmp/rb-upgrade-bench.XXXXXX)
daemon_pid=""
cleanup() {
  if [[ -n "$daemon_pid" ]]; then
    "$bin/rollbridge" shutdown -c "$work/rollbridge.json" >/dev/null 2>&1 || kill "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bin" "$work/r"
cp "$bin/rollbridge" "$work/bin/rollbridge"
cat > "$work/rollbridge.json" <<JSON
{"application":"upgrade-bench","control":{"path":"$work/c.sock"},"proxy":{"port":0},
 "processes":[{"id":"web","policy":"proxied","command":"node $root/tests/fixtures/apps/app.js {{port}}",
   "port":{"from":0,"to":0},"health":{"path":"/ping","intervalMs":20}}]}
JSON
"$work/bin/rollbridge" daemon -c "$work/rollbridge.json" > "$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 500); do [[ -S "$work/c.sock" ]] && break; sleep 0.01; done
"$bin/rollbridge" deploy -c "$work/rollbridge.json" --release-path "$work/r" --release-id v1 >/dev/null
echo "# rollbridge upgrade benchmark $(date -u +%FT%TZ), $(nproc) cores, $(uname -r)"

python3 - "$work/bin/rollbridge" "$work" "$UPGRADES" "$WS" "$CLIENTS" <<'PY'
import base64, json, os, socket, statistics, subprocess, sys, threading, time
rb, work, n, nws, clients = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cfg = f"{work}/rollbridge.json"
port = json.loads(subprocess.check_output([rb, "status", "-c", cfg]))["proxy"]["port"]
stats = {"ok": 0, "failed": 0, "refused": 0}
lock = threading.Lock()
stop = threading.Event()

def count(k):
    with lock: stats[k] += 1

def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        c = s.recv(65536)
        if not c: raise EOFError("closed")
        buf += c
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(rest) < length:
        c = s.recv(65536)
        if not c: raise EOFError("closed in body")
        rest += c
    return int(head.split(b" ")[1]), rest[length:]

def client(keep_alive):
    s, buf = None, b""
    while not stop.is_set():
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", port), timeout=10); buf = b""
            s.sendall(b"GET / HTTP/1.1\r\nHost: b\r\n" + (b"" if keep_alive else b"Connection: close\r\n") + b"\r\n")
            code, buf = read_response(s, buf)
            count("ok" if code == 200 else "failed")
            if not keep_alive: s.close(); s = None
        except ConnectionRefusedError:
            count("refused"); s = None
        except Exception:
            count("failed"); s = None
        time.sleep(0.001)

def ws_open():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: b\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf: buf += s.recv(4096)
    assert b" 101 " in buf.split(b"\r\n")[0]
    return s

def ws_echo(s, text):
    payload = text.encode(); mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    head = s.recv(2)
    if len(head) < 2: raise EOFError("closed")
    want, data = head[1] & 0x7f, b""
    while len(data) < want:
        c = s.recv(want - len(data))
        if not c: raise EOFError("closed")
        data += c
    return data.decode()

sockets = [ws_open() for _ in range(nws)]
threads = [threading.Thread(target=client, args=(i % 2 == 0,)) for i in range(2 * clients)]
for t in threads: t.start()
times, lost = [], 0
for i in range(n):
    time.sleep(0.3)
    t0 = time.perf_counter()
    subprocess.run([rb, "upgrade", "-c", cfg, "--binary", rb], stdout=subprocess.DEVNULL, check=True)
    subprocess.run([rb, "status", "-c", cfg], stdout=subprocess.DEVNULL, check=True)
    times.append((time.perf_counter() - t0) * 1000)
    alive = []
    for s in sockets:
        try:
            if ws_echo(s, f"u{i}").endswith(f":u{i}"): alive.append(s); continue
        except Exception:
            pass
        lost += 1
    sockets = alive
time.sleep(0.3)
stop.set()
for t in threads: t.join()
print(f"upgrades: {n}, load: {clients} keep-alive + {clients} connection-per-request clients, {nws} WebSockets")
print(f"requests: {stats['ok'] + stats['failed']}  failed: {stats['failed']}  refused connections: {stats['refused']}  WebSockets lost: {lost}")
print(f"upgrade -> new program answers status: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms")
PY
