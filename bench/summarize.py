#!/usr/bin/env python3
"""Summarises bench/results/*.json (written by bench/run.sh) as markdown, with the goals."""

import glob
import json
import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "bench/results"


def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None


def ms(x):
    return x * 1000.0


rows = {}
for f in ("probes.json", "python.json"):
    d = load(f)
    for r in (d or {}).get("results", []):
        name = r["command"]
        if f == "python.json" and name in rows:
            continue  # the main table's figure (more runs) wins
        rows[name] = (r["median"], r["mean"], r["stddev"] or 0.0, r["min"], r["max"], len(r["times"]))

print("## Probe wall time (hyperfine -N)\n")
print("| command | median ms | mean ms | stddev ms | min ms | max ms | runs |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, (med, mean, sd, lo, hi, n) in rows.items():
    print(f"| {name} | {ms(med):.2f} | {ms(mean):.2f} | {ms(sd):.2f} | {ms(lo):.2f} | {ms(hi):.2f} | {n} |")

four = rows.get("healthcheck redis+nats+http+ready")
three = rows.get("healthcheck redis+nats+http")
cli = rows.get("redis-cli ping")
py = rows.get("python client (redis-py + nats-py + urllib)")
floor = rows.get("floor (static no-op)")
print()
if four:
    print(f"- four-target probe median {ms(four[0]):.2f} ms (goal <= 1.0 ms)")
if four and cli:
    print(f"- redis-cli ping / four-target probe = {cli[0] / four[0]:.2f}x (goal >= 2x)")
if three and py:
    print(f"- python client / three-target probe = {py[0] / three[0]:.0f}x (goal >= 100x)")
if four and floor:
    print(f"- floor (static no-op) median {ms(floor[0]):.2f} ms; four-target probe above the floor by {ms(four[0] - floor[0]):.2f} ms")

a = load("anatomy.json")
if a:
    print("\n## Where the time goes (one target of each kind)\n")
    print("| command | median ms | mean ms | stddev ms |")
    print("|---|---:|---:|---:|")
    for r in a["results"]:
        print(f"| {r['command']} | {ms(r['median']):.2f} | {ms(r['mean']):.2f} | {ms(r['stddev'] or 0):.2f} |")

s = load("scaling.json")
if s:
    print("\n## Scaling with the number of targets\n")
    print("| targets | median ms | mean ms | stddev ms |")
    print("|---|---:|---:|---:|")
    for r in s["results"]:
        print(f"| {r['command']} | {ms(r['median']):.2f} | {ms(r['mean']):.2f} | {ms(r['stddev'] or 0):.2f} |")

for n in (1000, 10000):
    h = load(f"heartbeats-{n}.json")
    if not h:
        continue
    print(f"\n## {n} agents heartbeating at 1 Hz\n")
    print(f"- achieved {h['achieved_per_s']:.0f}/s of {h['target_per_s']}/s target "
          f"({h['beats']} beats in {h['elapsed_s']:.1f} s, {h['failed']} failed)")
    L = h["latency_ms"]
    print(f"- heartbeat latency p50 {L['p50']:.2f} ms, p99 {L['p99']:.2f} ms, max {L['max']:.2f} ms")
    print(f"- redis-server CPU {h['redis_cpu_pct']:.1f}% of one core")
    ra = h["read_all"]
    print(f"- Observer::all(): {ra['replicas']} replicas ({ra['ready']} ready), median {ra['median_ms']:.1f} ms")

gates = sorted(glob.glob(os.path.join(out, "gate-*.json")))
if gates:
    print("\n## Gating latency (ready publish -> exec)\n")
    print("| mode | publisher | runs | p50 ms | p90 ms | p99 ms | max ms | publish call p50 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for g in gates:
        d = json.load(open(g))
        L = d["latency_ms"]
        print(f"| {d['mode']} | {d['publisher']} | {d['runs']} | {L['p50']:.2f} | {L['p90']:.2f} | "
              f"{L['p99']:.2f} | {L['max']:.2f} | {d['publish_call_ms']['p50']:.2f} |")
