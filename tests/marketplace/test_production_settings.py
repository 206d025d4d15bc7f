"""The production settings, loaded as gunicorn loads them (a fresh process): HTTPS-only headers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client()
secure = client.get("/healthz", secure=True)
forwarded = client.get("/healthz", HTTP_X_FORWARDED_PROTO="https")
plain = client.get("/healthz")
print(json.dumps([r.headers.get("Strict-Transport-Security") for r in (secure, forwarded, plain)]))
"""


def _probe(tmp_path: Path, **env: str) -> list[str | None]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "marketplace.settings.production",
            "SECRET_KEY": "production-settings-test",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            **env,
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_https_responses_carry_hsts_for_a_year(tmp_path):
    assert _probe(tmp_path) == ["max-age=31536000", None, None]


def test_behind_a_tls_terminating_proxy_its_https_counts(tmp_path):
    hsts = "max-age=600; includeSubDomains"
    assert _probe(
        tmp_path,
        TRUST_X_FORWARDED_PROTO="true",
        SECURE_HSTS_SECONDS="600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
    ) == [hsts, hsts, None]
