"""pip-audit over requirements.txt, where the advisory data can be reached from this machine.

pip-audit asks PyPI's JSON API (or OSV) which pinned versions have known vulnerabilities. Some machines
(CI's included, at the time of writing) reach only a package mirror, where those services do not answer:
then an audit would skip every package and prove nothing, so this script says so and exits 0 instead of
failing on the network. Where a service answers, the audit runs with --strict: a known vulnerability, or a
pinned package the service does not know, fails.

Usage: .venv/bin/python scripts/audit_deps.py   (make audit; .ci/run runs it before the tests)
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements.txt"
TIMEOUT = 10


def first_pin() -> tuple[str, str]:
    """The first `name==version` line of requirements.txt."""
    for line in REQUIREMENTS.read_text().splitlines():
        match = re.match(r"\s*([A-Za-z0-9_.-]+)==([^\s;#]+)", line)
        if match:
            return match[1], match[2]
    raise SystemExit("requirements.txt pins nothing")


def reachable_service(name: str, version: str) -> str | None:
    """'pypi' or 'osv' if that advisory service answers for a pinned package, else None."""
    try:
        answer = requests.get(f"https://pypi.org/pypi/{name}/{version}/json", timeout=TIMEOUT)
        if answer.status_code == 200 and "vulnerabilities" in answer.json():
            return "pypi"
    except (requests.RequestException, ValueError):
        pass
    try:
        answer = requests.post("https://api.osv.dev/v1/query", timeout=TIMEOUT,
                               json={"package": {"name": name, "ecosystem": "PyPI"}, "version": version})
        if answer.status_code == 200:
            return "osv"
    except requests.RequestException:
        pass
    return None


def main() -> int:
    name, version = first_pin()
    service = reachable_service(name, version)
    if service is None:
        print(f"pip-audit: SKIPPED - no vulnerability data reachable from this machine (PyPI's JSON API and OSV "
              f"do not answer for {name}=={version}); see docs/security.md.")
        return 0
    command = [str(Path(sys.executable).with_name("pip-audit")), "-r", str(REQUIREMENTS), "--strict",
               "--vulnerability-service", service, "--progress-spinner", "off"]
    print(f"pip-audit: auditing requirements.txt against {service}")
    return subprocess.run(command, cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(main())
