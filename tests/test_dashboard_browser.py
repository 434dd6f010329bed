"""The Ray dashboard in a real browser: headless Chromium signs in with the cluster's token, as a user
would, opens the Serve page and finds the decision service's application and each of its deployments
healthy, and the application's own page lists them.

`TALA_DASHBOARD_SCREENSHOT=docs/images/ray-dashboard-serve.png` also writes the Serve page's
screenshot there (the README's "Debugging throughput" picture is taken this way)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from browser import Browser
from decision_service import APP, running_decision_service

pytestmark = [pytest.mark.ray, pytest.mark.dashboard]
SCREENSHOT_ENV = "TALA_DASHBOARD_SCREENSHOT"
SIGN_IN = "Authentication Token Required"


@pytest.fixture(scope="module")
def service(ray_cluster, small_world, tmp_path_factory):
    with running_decision_service(small_world, tmp_path_factory.mktemp("dashboard_service")) as running:
        yield running


def auth_token() -> str:
    """The cluster's token, as `ray get-auth-token` prints it for a local cluster."""
    ray_cli = Path(sys.executable).with_name("ray")
    result = subprocess.run([ray_cli, "get-auth-token"], capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "a PNG file"
    return struct.unpack(">II", data[16:24])


def sign_in_if_asked(browser: Browser, shown: str) -> None:
    """Ray 2.60 guards the dashboard with a token (on by default): type it into the dialog."""
    if SIGN_IN in shown:
        browser.type_into("[role=dialog] input", auth_token())
        browser.click_button("Submit")


def test_the_serve_page_shows_the_application_and_its_deployments(ray_cluster, service, tmp_path):
    with service.client() as client:  # some traffic, so that the replicas have served something
        assert all(client.post("/v1/decisions", json=body).status_code == 200 for body in service.bodies[:10])
    dashboard = f"http://{ray_cluster.dashboard_url}"
    with Browser() as browser:
        browser.open(f"{dashboard}/#/serve")
        shown = browser.wait_until(lambda text: SIGN_IN in text or APP in text, "the sign-in or the app", timeout_s=60)
        sign_in_if_asked(browser, shown)
        shown = browser.wait_for_text("Applications / Deployments", APP, *service.deployments, timeout_s=120)
        assert SIGN_IN not in shown
        assert re.search(rf"{APP}\s*\n\s*RUNNING", shown), "the application is RUNNING"
        for name in service.deployments:
            assert re.search(rf"\b{name}\s*\n\s*HEALTHY", shown), f"deployment {name} is listed HEALTHY"
        screenshot = tmp_path / "serve.png"
        browser.screenshot(screenshot)
        assert png_size(screenshot) == (browser.width, browser.height)

        browser.open(f"{dashboard}/#/serve/applications/{APP}")
        detail = browser.wait_for_text("Import path", *service.deployments, timeout_s=60)
        assert re.search(rf"Deployments\n+{len(service.deployments)}\n", detail), "the application's count"
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(screenshot, os.environ[SCREENSHOT_ENV])
