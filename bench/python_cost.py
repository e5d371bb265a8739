"""What the ready_signal package costs a Python agent: tick() per call, and resident memory.

Run by bench/python.sh in a virtualenv holding the release wheel. Prints one `name value`
line per figure. RSS comes from /proc/self/status (VmRSS), read in this fresh process before
and after the import, and after a publisher has started (the crate's thread and runtime).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import timeit


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def per_call_ns(stmt: str, env: dict, number: int = 1_000_000, repeat: int = 9) -> "tuple[float, float]":
    """Best and median ns per execution of `stmt` (timeit's loop overhead included)."""
    runs = [t / number * 1e9 for t in timeit.repeat(stmt, number=number, repeat=repeat, globals=env)]
    return min(runs), statistics.median(runs)


def main() -> None:
    import asyncio, os, signal, threading, weakref  # the stdlib the package imports  # noqa: E401,F401

    before = rss_kib()
    import ready_signal
    after_import = rss_kib()
    d = tempfile.mkdtemp()
    sig = ready_signal.ReadySignal("bench-py", dir=d, replica="r", interval=1)
    sig.ready()
    after_start = rss_kib()

    print(f"python {sys.version.split()[0]}")
    print(f"rss_before_kib {before}")
    print(f"rss_import_added_kib {after_import - before}")
    print(f"rss_started_added_kib {after_start - before}")

    def noop() -> None:
        pass

    # As an agent writes it (`signal.tick()`), beside the loop alone and a no-op Python call.
    env = {"signal": sig, "noop": noop}
    for name, stmt in [("tick", "signal.tick()"), ("busy_60", "signal.busy(60)"),
                       ("empty_loop", "pass"), ("python_noop_call", "noop()")]:
        best, median = per_call_ns(stmt, env)
        print(f"{name}_ns min {best:.1f} median {median:.1f}")
    sig.close()


if __name__ == "__main__":
    main()
