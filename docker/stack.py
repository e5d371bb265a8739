"""The demo's decisions and views, in Python so they are unit-tested (docker/test_stack.py).

docker/demo.sh and docker/e2e.sh call it with python3's standard library only:

  python3 docker/stack.py gating API_VERSION COMPOSE_VERSION_TEXT [INTERVAL_S LEVELS]
      "fast" or "slow" on the first line, then one paragraph saying what gating costs and why.
  python3 docker/stack.py wait-agents [--up-status FILE] STATUS_URL TIMEOUT_S AGENT...
      waits until the sidecar's /api/status shows every named agent ready; prints the seconds.
      FILE: where the `compose up` running beside it writes its exit status; a failure ends
      the wait at once.
  python3 docker/stack.py show STATUS_URL
      what the sidecar sees, one line per replica.

Fast gating needs both halves: the engine must take `start_interval` (Docker Engine 25, API
1.44) and Compose must pass it on (Compose v2; v1 rejects the key). `start_interval` is also
ignored unless `start_period` is set (moby#49900): docker/compose.yml sets 30 s.
"""

import json
import re
import sys
import time
import urllib.request

# The first Engine API version that runs health checks every `start_interval` during
# `start_period` (Docker Engine 25).
START_INTERVAL_API = (1, 44)


def parse_api(text):
    """(major, minor) from "1.41"; None when it is not that shape."""
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def compose_flavour(version_text):
    """("v2" | "v1", version) from the first line `compose version` prints; None if unknown.

    v1 prints "docker-compose version 1.29.2, build unknown"; v2, plugin or standalone,
    prints "Docker Compose version v2.29.1" (some distributions drop the "v").
    """
    m = re.search(r"version v?(\d+)\.(\d+)\.(\d+)", version_text or "", re.IGNORECASE)
    if not m:
        return None
    major = int(m.group(1))
    version = ".".join(m.groups())
    return ("v2" if major >= 2 else "v1", version)


def gating(api_text, compose_text, interval_s=30, levels=2):
    """(fast, message): whether to use the start_interval override, and the paragraph to say.

    `levels`: the longest chain of `service_healthy` dependencies in the stack (2 in
    docker/compose.yml: the agents, then the consumer that waits for them).
    """
    api = parse_api(api_text)
    flavour = compose_flavour(compose_text)
    reasons = []
    if api is None:
        reasons.append(f"the engine's API version ({api_text!r}) could not be read")
    elif api < START_INTERVAL_API:
        reasons.append(
            f"the engine speaks API {api[0]}.{api[1]}, and start_interval needs API 1.44 (Docker Engine 25)"
        )
    if flavour is None:
        reasons.append(f"the Compose version ({compose_text.strip()!r}) could not be read")
    elif flavour[0] == "v1":
        reasons.append(f"Compose {flavour[1]} is v1, which rejects start_interval")
    if not reasons:
        return True, (
            f"Engine API {api[0]}.{api[1]} and Compose {flavour[1]}: health checks run every 1 s "
            f"during start_period (docker/compose.start-interval.yml), then every {interval_s} s; "
            f"each service_healthy level gates in about a second."
        )
    return False, (
        "Gating by Docker's health will be slow here: "
        + "; ".join(reasons)
        + f". Docker runs a container's first health check one interval ({interval_s} s) after it "
        f"starts, so each service_healthy level costs up to {interval_s} s: about "
        f"{interval_s * levels} s for this stack's {levels} levels until Docker's health catches up. "
        "The stack works sooner: the sidecar shows every agent ready within seconds, and "
        "consumer-wait (gated by `healthcheck wait`) starts the moment they are "
        "(docker/ENGINES.md)."
    )


def agents_ready(status, agents):
    """(all ready, the names not ready yet) for the named agents in an /api/status document."""
    ready = {
        a["agent"]
        for a in status.get("agents", [])
        if a.get("replicas") and all(r.get("state") == "ready" for r in a["replicas"])
    }
    missing = [a for a in agents if a not in ready]
    return not missing, missing


def fetch(url, timeout=3):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def up_failed(up_status):
    """The exit status of a `compose up` that ended non-zero, from the file its wrapper writes
    when it ends (docker/lib.sh start_up); None while it runs or when it succeeded."""
    if not up_status:
        return None
    try:
        with open(up_status) as f:
            code = f.read().strip()
    except OSError:
        return None
    return code if code and code != "0" else None


def wait_agents(url, timeout_s, agents, up_status=None):
    """Waits until every named agent is ready on the sidecar; 0 then, 1 on timeout or as soon as
    the `compose up` running beside it has failed (its status file, up_status)."""
    began = time.monotonic()
    missing = agents
    while time.monotonic() - began < timeout_s:
        failed = up_failed(up_status)
        if failed:
            print(f"compose up failed (exit {failed})", file=sys.stderr)
            return 1
        try:
            ok, missing = agents_ready(fetch(url), agents)
        except OSError:
            ok = False
        if ok:
            print(f"{time.monotonic() - began:.1f}")
            return 0
        time.sleep(0.1)
    print(f"not ready within {timeout_s} s: {', '.join(missing)}", file=sys.stderr)
    return 1


def show(url):
    status = fetch(url)
    for name, src in status["sources"].items():
        if src["status"] != "ok":
            print(f"  {name}: {src['status']} ({src.get('reason') or 'not configured'})")
    for agent in status["agents"]:
        for rep in agent["replicas"]:
            read, within = rep.get("beat_age_s"), rep.get("beat_within_s")
            if read is not None:
                beat = f"beat {read:.1f} s ago"
            elif within is not None:
                # Followed by the due index: its beats are not read, only proven on time.
                beat = f"beat <= {within:.1f} s ago"
            else:
                beat = "no beat"
            where = rep.get("container") or "-"
            print(f"  {agent['agent'] + '/' + rep['replica']:<28} {rep['state']:<10} {beat:<17} container {where}")
    s = status["summary"]
    print(
        f"\n  {s['agents']} agents, {s['replicas']} replicas, {s['containers']} containers"
        f" ({s['containers_unhealthy']} unhealthy); healing: {status['heal']['mode']}"
    )
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "gating":
        interval = int(argv[3]) if len(argv) > 3 else 30
        levels = int(argv[4]) if len(argv) > 4 else 2
        fast, message = gating(argv[1], argv[2], interval, levels)
        print("fast" if fast else "slow")
        print(message)
        return 0
    if len(argv) >= 6 and argv[0] == "wait-agents" and argv[1] == "--up-status":
        return wait_agents(argv[3], float(argv[4]), argv[5:], up_status=argv[2])
    if len(argv) >= 4 and argv[0] == "wait-agents":
        return wait_agents(argv[1], float(argv[2]), argv[3:])
    if len(argv) == 2 and argv[0] == "show":
        return show(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
