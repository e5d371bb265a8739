#!/usr/bin/env python3
"""Benchmark (BENCHMARKS.md 6b): Redis CPU per call of two versions of the write script.

Usage: python3 bench_script_cost.py PORT OLD_LUA [ROUNDS]
  OLD_LUA: an older write.lua: revision 1 (git show 6ed658b:ready-signal/src/write.lua > old.lua)
  or revisions 2 to 4 (four keys; revision 4 is git show 35489fd:ready-signal/src/write.lua).
The new script is this checkout's src/write.lua. Each round runs 100,000 calls of each script,
old then new, over 10,000 agents (one replica each), pipelined 200 at a time, and reports Redis's
own CPU (INFO cpu) per call: alternating the two on one server under the same load compares the
scripts even on a shared machine where latency percentiles swing run to run.
"""

import os
import sys
import time

import redis

port, old_path = int(sys.argv[1]), sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
new_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "write.lua")
r = redis.Redis(port=port)
old_text = open(old_path).read()
old = r.register_script(old_text)
OLD_REVISION_1 = "revision 1" in old_text.splitlines()[0]
new = r.register_script(open(new_path).read())
AGENTS = 10000
INSTANCE = "1732540000000-0a1b2c3d"


def cpu():
    i = r.info("cpu")
    return i["used_cpu_user"] + i["used_cpu_sys"]


def run(kind, ns, calls):
    p = r.pipeline(transaction=False)
    t0, c0 = time.time(), cpu()
    for k in range(calls):
        a = f"agent-{k % AGENTS:05d}"
        keys = [f"ready-signal:{ns}:{a}:r:r0", f"ready-signal:{ns}:{a}:replicas",
                f"ready-signal:{ns}:agents"]
        if kind == "old" and OLD_REVISION_1:
            args = ["put", INSTANCE, "ready", "", 1, "h", 1000, 3000, a, "r0", 60000]
            old(keys=keys, args=args, client=p)
        elif kind == "old":
            args = ["put", INSTANCE, 0, "ready", "", 1, "h", 1000, 3000, a, "r0", ""]
            old(keys=keys + [f"ready-signal:{ns}:epoch"], args=args, client=p)
        else:
            # Revision 5: the due index is the fifth key.
            args = ["put", INSTANCE, 0, "ready", "", 1, "h", 1000, 3000, a, "r0", ""]
            new(keys=keys + [f"ready-signal:{ns}:epoch", f"ready-signal:{ns}:due"], args=args,
                client=p)
        if k % 200 == 199:
            p.execute()
    p.execute()
    return (cpu() - c0) / calls * 1e6, time.time() - t0


for rnd in range(rounds):
    for kind in ("old", "new"):
        us, wall = run(kind, f"cost{kind}{rnd}", 100000)
        print(f"round {rnd} {kind}: {us:.1f} us redis CPU per call "
              f"({wall:.1f}s wall for 100000 calls)")
