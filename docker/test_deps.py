"""The example stack installs what it needs: every Debian package that a script of
docker/demo.sh names in an `apt-get install -y` hint (the error it stops with when the package
is missing) is one that tests/deps.sh's install_deps installs first. On a fresh machine the demo
stopped with "haproxy is not installed" after four minutes of building: the socket proxy joined
the stack, and only the tests' list had its package.
Run: python3 -m unittest discover -s docker"""

import pathlib
import re
import unittest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPS = ROOT / "tests" / "deps.sh"
# Packages another listed package brings in: Debian's python3-venv depends on python3-pip-whl.
BROUGHT_BY = {"python3-pip-whl": "python3-venv"}


def sourced_scripts(script):
    """The script and everything it sources, transitively (`source "$ROOT/..."` and
    `source "$DOCKER_DIR/..."`, the two forms the demo's scripts use)."""
    seen, todo = [], [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for line in path.read_text().splitlines():
            m = re.match(r'\s*source "\$(ROOT|DOCKER_DIR)/([^"]+)"', line)
            if m:
                base = ROOT if m.group(1) == "ROOT" else ROOT / "docker"
                todo.append(base / m.group(2))
    return seen


def install_hints(path):
    """The packages named by each `apt-get install -y ...` hint in a script, with their line."""
    hints = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for m in re.finditer(r"apt-get install -y ((?:[a-z0-9][a-z0-9.+-]* ?)+)", line):
            for package in m.group(1).split():
                hints.append((package, f"{path.relative_to(ROOT)}:{number}"))
    return hints


def stack_packages():
    """What install_deps installs when missing: the `into+=(...)` of _missing_stack_packages."""
    body = re.search(r"_missing_stack_packages\(\) \{(.*?)\n\}", DEPS.read_text(), re.S)
    assert body, f"no _missing_stack_packages in {DEPS}"
    return {p for group in re.findall(r"into\+=\(([^)]*)\)", body.group(1)) for p in group.split()}


class StackDependencies(unittest.TestCase):
    def test_the_demo_reads_its_helpers(self):
        names = {p.relative_to(ROOT).as_posix() for p in sourced_scripts(ROOT / "docker" / "demo.sh")}
        for expected in ("docker/lib.sh", "tests/deps.sh", "docker/socket-proxy/image.sh",
                         "docker/images/python-agent.sh"):
            self.assertIn(expected, names)

    def test_every_package_the_demo_can_stop_for_is_installed_by_install_deps(self):
        installed = stack_packages()
        self.assertIn("musl-tools", installed)
        missing = [
            f"{package} ({where})"
            for script in sourced_scripts(ROOT / "docker" / "demo.sh")
            for package, where in install_hints(script)
            if package not in installed and BROUGHT_BY.get(package) not in installed
        ]
        self.assertEqual(missing, [], "install_deps (tests/deps.sh) does not install these, "
                         "so a fresh machine's demo stops for them")


if __name__ == "__main__":
    unittest.main()
