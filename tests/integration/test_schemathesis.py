"""openapi.yaml as served at /openapi.json, checked by schemathesis against gunicorn + the fake Kiro.

Bounded: a fixed seed and a fixed number of examples per operation, so CI's run is repeatable and about
half a minute. The checks: no 5xx, every status code, content type, header and body as documented,
405 with an Allow header for undocumented methods, and no route that ignores the missing key.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from schemathesis.config._warnings import OPT_IN_WARNINGS
from schemathesis.core.warnings import SchemathesisWarning

from ki2api.models import model_names
from tests.fakes.oidc import FakeLogins
from tests.helpers.credentials import KEY

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,unsupported_method,allow_header_conformance,ignored_auth")
MAX_EXAMPLES = "40"
# schemathesis' default warnings but missing_test_data: the operations on a stored response (GET/DELETE
# /v1/responses/{id}, its input_items) answer 404 to every generated id; the stateful phase reaches them through
# createResponse's links.
WARNINGS = ",".join(w.value for w in SchemathesisWarning
                    if w not in OPT_IN_WARNINGS and w is not SchemathesisWarning.MISSING_TEST_DATA)
SEED = "7"


def test_served_document_is_the_repository_file(gateway):
    served = requests.get(f"{gateway.url}/openapi.json", timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("application/json")
    assert served.json() == yaml.safe_load((REPO / "openapi.yaml").read_text())


def test_documented_models_are_the_accepted_ones():
    document = yaml.safe_load((REPO / "openapi.yaml").read_text())
    assert document["components"]["schemas"]["ModelName"]["enum"] == list(dict.fromkeys(model_names()))


def test_documented_paths_are_the_routes_ki2api_serves(app):
    """Every route is documented, except the status page's static files (assets, not API)."""
    document = yaml.safe_load((REPO / "openapi.yaml").read_text())
    served = {rule.rule.replace("<path:name>", "{model}").replace("<name>", "{name}")
              .replace("<response_id:response_id>", "{response_id}")
              .replace("<login_id>", "{login_id}")
              for rule in app.url_map.iter_rules() if not rule.rule.startswith("/static/")}
    assert set(document["paths"]) == served


@pytest.fixture
def fake_logins():
    """A fake AWS SSO OIDC service: the status page's logins go there, as every call of the run stays on loopback."""
    with FakeLogins() as fake:
        yield fake


def test_schemathesis_finds_nothing(start_gateway, fake_logins, tmp_path):
    # Its checks send wrong keys by the hundred from one address: with the failed-key limit on (the default),
    # every later request would be a 429 and the fuzzing would test nothing (tests/test_security.py tests it).
    gateway = start_gateway(AUTH_FAIL_LIMIT="0", KIRO_OIDC_URL=f"{fake_logins.url}/token")
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{gateway.url}/openapi.json",
               "--header", f"Authorization: Bearer {KEY}", "--checks", CHECKS, "--max-examples", MAX_EXAMPLES,
               "--seed", SEED, "--warnings", WARNINGS, "--workers", "1", "--request-timeout", "30", "--no-color",
               "--report", "junit", "--report-dir", str(tmp_path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout, run.stdout[-6000:]
    assert "Traceback" not in gateway.log_text()
