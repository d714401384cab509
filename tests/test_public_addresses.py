"""The addresses browsers reach dsrflow at, as an operator behind a TLS proxy sets them.

DSRFLOW_PUBLIC_URL is where the portal, the console and the codec endpoint are; DSRFLOW_TEMPORAL_UI_URL
is where staff open the Temporal Web UI, which may be served under a path of a shared host.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from api.app import create_app
from api.console.view import temporal_ui_link
from dsrflow.settings import SettingsError, load_settings
from tests.test_production_settings import sound_environment

PREFLIGHT = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}


@pytest.mark.parametrize("url", ["https://example.com/privacy", "https://example.com/privacy/",
                                 "https://privacy.example.com/?lang=nl"])
def test_a_public_url_under_a_path_is_refused_by_name(monkeypatch, url):
    """Every page, form, redirect and cookie path is rooted at `/`: under a prefix the letters'
    links would open while the portal's forms and the console's sign-in went nowhere."""
    monkeypatch.setenv("DSRFLOW_PUBLIC_URL", url)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value).startswith("DSRFLOW_PUBLIC_URL: expected the API's address without a path")
    assert url in str(refused.value)


def test_a_public_url_at_the_root_of_its_host_is_taken(monkeypatch):
    monkeypatch.setenv("DSRFLOW_PUBLIC_URL", "https://privacy.example.com/")
    assert load_settings().base_url == "https://privacy.example.com"


def test_the_api_process_stops_on_a_public_url_under_a_path(tmp_path):
    env = {**os.environ, **sound_environment(), "DSRFLOW_HOME": str(tmp_path),
           "DSRFLOW_PUBLIC_URL": "https://example.com/privacy"}
    done = subprocess.run([sys.executable, "-m", "cli.main", "api"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: DSRFLOW_PUBLIC_URL: expected the API's address without a path")


async def test_a_temporal_ui_under_a_path_may_call_the_codec_endpoint(monkeypatch):
    """A browser sends the UI's origin (scheme, host, port), never its path: the codec endpoint
    allows that origin, and the console still links each workflow under the path."""
    for name, value in {**sound_environment(), "DSRFLOW_TEMPORAL_UI_URL": "https://ops.example.com/temporal"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert temporal_ui_link(settings, "5aa5e29d-55fd-453b-b233-05bf023de1fc").startswith("https://ops.example.com/temporal/namespaces/default/")
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        for origin, allowed in (("https://ops.example.com", True), ("https://elsewhere.example.com", False)):
            answer = await http.options("/codec/decode", headers={**PREFLIGHT, "origin": origin})
            assert (answer.headers.get("access-control-allow-origin") == origin) is allowed, origin
