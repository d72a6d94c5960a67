#!/usr/bin/env python3
"""Shared by bench/proxy.sh and bench/deploy.sh.

  wrk_table.py parse ROUND SHAPE TARGET CPU_SECONDS < wrk-output
      one TSV row: round shape target req/s p50-ms p99-ms errors requests cpu-s
  wrk_table.py report RESULTS.tsv PROXY-TARGET
      the full table (medians over rounds) and the summary table: each
      target's ratio to direct and rollbridge ÷ nginx, as medians of the
      per-round ratios (targets run back to back in each round).
  wrk_table.py features RESULTS.tsv PROXY-TARGET THREADS.tsv
      the cost of the optional features: per shape, rb-admin and rb-log
      req/s and CPU per request ÷ the plain engine (medians of per-round
      ratios), and the proxy thread's and the access log writer's own CPU
      time per request (THREADS.tsv rows: round shape target proxy-s writer-s).
"""
import collections
import re
import statistics
import sys


def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    f = float(m.group(1))
    return f / 1000 if m.group(2) == "us" else f if m.group(2) == "ms" else f * 1000


def parse(rnd, shape, target, cpu):
    out = sys.stdin.read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    errs = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs += int(m.group(1)) if m else 0
    n = int(re.search(r"(\d+) requests in", out).group(1))
    print("\t".join([rnd, shape, target, f"{rps:.0f}", f"{p50:.3f}", f"{p99:.3f}",
                     str(errs), str(n), cpu]))


def report(path, proxy):
    rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
    data = collections.defaultdict(list)
    by_round = {}
    for rnd, shape, name, rps, p50, p99, errs, n, cpu in rows:
        v = dict(rps=float(rps), p50=float(p50), p99=float(p99), errs=int(errs),
                 n=int(n), cpu=float(cpu))
        data[(shape, name)].append(v)
        by_round[(rnd, shape, name)] = v
    rounds = sorted(set(r[0] for r in rows))
    shapes = list(dict.fromkeys(r[1] for r in rows))
    names = list(dict.fromkeys(r[2] for r in rows))
    has_nginx = "nginx" in names

    def med(shape, name, key):
        return statistics.median(x[key] for x in data[(shape, name)])

    def ratio(shape, a, b, key="rps"):
        rs = [by_round[(r, shape, a)][key] / by_round[(r, shape, b)][key]
              for r in rounds
              if (r, shape, a) in by_round and (r, shape, b) in by_round
              and by_round[(r, shape, b)][key] > 0]
        return statistics.median(rs) if rs else float("nan")

    def cpu_us(shape, name):
        # CPU of the target's own process(es) per request, median of rounds
        v = [x["cpu"] / x["n"] * 1e6 for x in data[(shape, name)] if x["n"]]
        return statistics.median(v) if v else float("nan")

    print("| shape | target | req/s | p50 ms | p99 ms | errors | CPU µs/req | ÷ direct | ÷ nginx |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in shapes:
        for n in names:
            errs = sum(x["errs"] for x in data[(s, n)])
            vs = f"{ratio(s, n, 'nginx'):.2f}" if has_nginx and n != "nginx" else ""
            print(f"| {s} | {n} | {med(s, n, 'rps'):.0f} | {med(s, n, 'p50'):.3f} | "
                  f"{med(s, n, 'p99'):.3f} | {errs} | {cpu_us(s, n):.1f} | "
                  f"{ratio(s, n, 'direct'):.2f} | {vs} |")
    print()
    if not has_nginx:
        return
    print(f"| shape | {proxy} / direct | nginx / direct | {proxy} ÷ nginx | p99 {proxy} ÷ nginx |")
    print("| --- | --- | --- | --- | --- |")
    for s in shapes:
        if s.startswith("1conn"):
            continue
        print(f"| {s} | {ratio(s, proxy, 'direct'):.2f} | {ratio(s, 'nginx', 'direct'):.2f} | "
              f"{ratio(s, proxy, 'nginx'):.2f} | {ratio(s, proxy, 'nginx', 'p99'):.2f} |")
    for s in shapes:
        if not s.startswith("1conn"):
            continue
        base = med(s, "direct", "p50")
        a = (med(s, proxy, "p50") - base) * 1000
        b = (med(s, "nginx", "p50") - base) * 1000
        # per-round added latency, then the median of the per-round ratios
        adds = []
        for r in rounds:
            k = [(r, s, t) for t in ("direct", proxy, "nginx")]
            if all(x in by_round for x in k):
                d, p, g = (by_round[x]["p50"] for x in k)
                if g > d:
                    adds.append((p - d) / (g - d))
        rr = f"{statistics.median(adds):.2f}" if adds else "n/a"
        print(f"| one connection: latency added (p50) | +{a:.0f} µs | +{b:.0f} µs | {rr} | "
              f"{ratio(s, proxy, 'nginx', 'p99'):.2f} |")
    ka = next((s for s in shapes if s.startswith("ka-100B")), None)
    if ka:
        a, b = cpu_us(ka, proxy), cpu_us(ka, "nginx")
        print(f"| CPU per request, {ka} | {a:.1f} µs | {b:.1f} µs | {a / b:.2f} | |")
    if "before" in names:
        print()
        print(f"| shape | before ÷ nginx | {proxy} ÷ nginx | {proxy} ÷ before | CPU µs/req before → {proxy} |")
        print("| --- | --- | --- | --- | --- |")
        for s in shapes:
            print(f"| {s} | {ratio(s, 'before', 'nginx'):.2f} | {ratio(s, proxy, 'nginx'):.2f} | "
                  f"{ratio(s, proxy, 'before'):.2f} | {cpu_us(s, 'before'):.1f} → {cpu_us(s, proxy):.1f} |")
    print()
    print("Ratios are medians of per-round ratios; CPU is the target process's own "
          "(utime+stime over the run ÷ requests), not the backend's.")


def features(path, proxy, threads_path):
    rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
    by_round = {}
    for rnd, shape, name, rps, _p50, _p99, _errs, n, cpu in rows:
        n = int(n)
        by_round[(rnd, shape, name)] = dict(
            rps=float(rps), n=n, cpu=float(cpu) / n * 1e6 if n else float("nan"))
    try:
        trows = [l.rstrip("\n").split("\t") for l in open(threads_path) if l.strip()]
    except FileNotFoundError:
        trows = []
    for rnd, shape, name, proxy_s, writer_s in trows:
        v = by_round.get((rnd, shape, name))
        if v and v["n"]:
            v["thread"] = float(proxy_s) / v["n"] * 1e6
            v["writer"] = float(writer_s) / v["n"] * 1e6
    rounds = sorted(set(r[0] for r in rows))
    shapes = list(dict.fromkeys(r[1] for r in rows))
    variants = [proxy] + [n for n in ("rb-admin", "rb-log") if any(r[2] == n for r in rows)]

    def vals(shape, name, key):
        return [by_round[(r, shape, name)][key] for r in rounds
                if key in by_round.get((r, shape, name), {})]

    def med(shape, name, key):
        v = vals(shape, name, key)
        return statistics.median(v) if v else float("nan")

    def ratio(shape, name, key):
        rs = []
        for r in rounds:
            a, b = by_round.get((r, shape, name), {}), by_round.get((r, shape, proxy), {})
            if key in a and key in b and b[key] > 0:
                rs.append(a[key] / b[key])
        return statistics.median(rs) if rs else float("nan")

    def fmt(x, f):
        return "—" if x != x else format(x, f)

    print()
    print(f"| shape | target | req/s | ÷ {proxy} | CPU µs/req | ÷ {proxy} | "
          f"proxy thread µs/req | ÷ {proxy} | log writer µs/req |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in shapes:
        for n in variants:
            if not vals(s, n, "rps"):
                continue
            w = med(s, n, "writer")
            print(f"| {s} | {n} | {med(s, n, 'rps'):.0f} | {ratio(s, n, 'rps'):.3f} | "
                  f"{fmt(med(s, n, 'cpu'), '.2f')} | {fmt(ratio(s, n, 'cpu'), '.3f')} | "
                  f"{fmt(med(s, n, 'thread'), '.2f')} | {fmt(ratio(s, n, 'thread'), '.3f')} | "
                  f"{fmt(w, '.2f') if w else '—'} |")
    print()
    print(f"Cost of the optional features: rb-admin is {proxy} with an admin listener, rb-log "
          "with the access log written to a file, each run right after it in every round; "
          "ratios are medians of per-round ratios. CPU is the engine process's own "
          "(every thread, the log writer's included); the proxy thread and the writer "
          "are also shown apart.")


if __name__ == "__main__":
    if sys.argv[1] == "parse":
        parse(*sys.argv[2:6])
    elif sys.argv[1] == "features":
        features(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        report(sys.argv[2], sys.argv[3])
