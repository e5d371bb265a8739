"""Unit tests of docker/stack.py: the gating choice per engine and Compose, the override it
uses, and the "every agent ready" predicate. Run: python3 -m unittest discover -s docker"""

import json
import pathlib
import time
import re
import unittest

import stack

HERE = pathlib.Path(__file__).parent
V1 = "docker-compose version 1.29.2, build unknown"
V2 = "Docker Compose version v2.29.1"


class Gating(unittest.TestCase):
    def test_this_machine_engine_20_10_and_compose_v1_is_slow_and_says_why_and_what_it_costs(self):
        fast, message = stack.gating("1.41", V1)
        self.assertFalse(fast)
        self.assertIn("API 1.41", message)
        self.assertIn("needs API 1.44", message)
        self.assertIn("Compose 1.29.2 is v1", message)
        self.assertIn("about 60 s for this stack's 2 levels", message)

    def test_engine_25_and_later_with_compose_v2_is_fast(self):
        for api in ("1.44", "1.47", "1.52"):
            fast, message = stack.gating(api, V2)
            self.assertTrue(fast, api)
            self.assertIn("compose.start-interval.yml", message)
            self.assertIn("every 30 s", message)

    def test_either_half_missing_is_slow_naming_that_half_only(self):
        fast, message = stack.gating("1.43", V2)
        self.assertFalse(fast)
        self.assertIn("API 1.43", message)
        self.assertNotIn("Compose", message.split(". Docker runs")[0])
        fast, message = stack.gating("1.52", V1)
        self.assertFalse(fast)
        self.assertIn("is v1", message)
        self.assertNotIn("needs API", message)

    def test_unreadable_versions_are_slow_not_guessed(self):
        self.assertFalse(stack.gating("", V2)[0])
        self.assertFalse(stack.gating("1.52", "docker: unknown command")[0])

    def test_cost_follows_interval_and_levels(self):
        _, message = stack.gating("1.41", V1, interval_s=2, levels=3)
        self.assertIn("about 6 s for this stack's 3 levels", message)

    def test_versions_compare_numerically(self):
        self.assertLess(stack.parse_api("1.9"), stack.START_INTERVAL_API)
        self.assertGreater(stack.parse_api("1.100"), stack.START_INTERVAL_API)
        self.assertIsNone(stack.parse_api("v1.44"))
        self.assertEqual(stack.compose_flavour("Docker Compose version 2.20.2"), ("v2", "2.20.2"))
        self.assertEqual(stack.compose_flavour(V1), ("v1", "1.29.2"))


def services_with(text, key):
    """Top-level services of a compose file whose block has `key` (two-space indents), or
    starts with it on the service's own line (`redis: { healthcheck: ... }`)."""
    found, current = set(), None
    in_services = False
    for line in text.splitlines():
        if re.match(r"^\S", line):
            in_services = line.startswith("services:")
            current = None
            continue
        if not in_services:
            continue
        m = re.match(r"^  ([a-z][a-z0-9-]*):(.*)", line)
        if m:
            current = m.group(1)
            line = "  " + m.group(2).strip().lstrip("{")
        if current and re.match(r"^\s+" + re.escape(key), line.split(" #")[0]):
            found.add(current)
    return found


class Override(unittest.TestCase):
    def test_override_covers_every_service_with_a_healthcheck(self):
        base = (HERE / "compose.yml").read_text()
        override = (HERE / "compose.start-interval.yml").read_text()
        with_check = services_with(base, "healthcheck:")
        self.assertIn("consumer", with_check)
        self.assertNotIn("hc-install", with_check)
        self.assertEqual(services_with(override, "healthcheck:"), with_check)
        self.assertIn("start_interval: 1s", override)
        # start_interval is ignored without a start_period (moby#49900), and the slow interval stays.
        self.assertIn("start_period: 30s", override)
        self.assertNotIn("interval: 1s\n  interval", override)
        self.assertIn("interval: ${HC_INTERVAL:-30s}", base)


class AgentsReady(unittest.TestCase):
    def status(self, **agents):
        return {"agents": [{"agent": a, "replicas": [{"state": s} for s in states]} for a, states in agents.items()]}

    def test_every_named_agent_must_have_all_replicas_ready(self):
        st = self.status(**{"agent-a": ["ready"], "agent-b": ["ready", "starting"]})
        self.assertEqual(stack.agents_ready(st, ["agent-a", "agent-b", "agent-py"]), (False, ["agent-b", "agent-py"]))
        st = self.status(**{"agent-a": ["ready"], "agent-b": ["ready", "ready"], "other": ["stale"]})
        self.assertEqual(stack.agents_ready(st, ["agent-a", "agent-b"]), (True, []))

    def test_an_agent_without_replicas_is_not_ready(self):
        self.assertEqual(stack.agents_ready(self.status(**{"agent-a": []}), ["agent-a"]), (False, ["agent-a"]))


class WaitAgentsBesideUp(unittest.TestCase):
    """The demo watches the sidecar while `compose up -d` still runs in the background (Compose
    returns only once every service_healthy gate has passed, one HEALTHCHECK interval per level
    on engines without start_interval): a failed `up` ends the wait at once, a finished one
    does not."""

    def serve(self, body):
        import http.server
        import threading

        class Status(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Status)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.shutdown)
        return f"http://127.0.0.1:{server.server_port}/api/status"

    def up_status(self, text):
        import tempfile

        d = tempfile.mkdtemp()
        path = pathlib.Path(d) / "up.rc"
        if text is not None:
            path.write_text(text)
        return str(path)

    def test_a_failed_up_ends_the_wait_before_its_timeout(self):
        url = self.serve({"agents": []})
        began = time.monotonic()
        self.assertEqual(stack.wait_agents(url, 20, ["agent-a"], up_status=self.up_status("1\n")), 1)
        self.assertLess(time.monotonic() - began, 20)

    def test_a_running_or_finished_up_does_not_end_the_wait(self):
        ready = {"agents": [{"agent": "agent-a", "replicas": [{"state": "ready"}]}]}
        url = self.serve(ready)
        self.assertEqual(stack.wait_agents(url, 5, ["agent-a"], up_status=self.up_status(None)), 0)
        self.assertEqual(stack.wait_agents(url, 5, ["agent-a"], up_status=self.up_status("0\n")), 0)


if __name__ == "__main__":
    unittest.main()
