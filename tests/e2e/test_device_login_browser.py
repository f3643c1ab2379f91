"""Done when: a new user runs the local server, `fastest login`, approves in the browser page, and
`fastest whoami` answers. The real server process, the real CLI process, and the approval clicked
in headless Chromium (Debian's `chromium` + `chromium-driver`, driven by selenium)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.chromium import headless_chromium, needs_chromium
from tests.e2e.conftest import FASTEST, running_server

pytestmark = needs_chromium


@pytest.fixture
def browser():
    with headless_chromium() as driver:
        driver.set_page_load_timeout(30)
        yield driver


def client_env(config_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTEST_")}
    env["FASTEST_CONFIG_DIR"] = str(config_dir)
    return env


def read_verification_url(process: subprocess.Popen, timeout: float = 30.0) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        match = re.search(r"\(or open (\S+\?user_code=([A-Z]{4}-[A-Z]{4}))\)", line)
        if match:
            return match.group(1), match.group(2)
    raise AssertionError(f"fastest login printed no verification URL:\n{''.join(seen)}")


def test_login_with_the_device_flow_approved_in_chromium(tmp_path: Path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    config_dir = tmp_path / "config"
    env = client_env(config_dir)
    with running_server(tmp_path / "data", {"FASTEST_DEVICE_POLL_INTERVAL_SECONDS": "1"}) as (base_url, _):
        login = subprocess.Popen(
            [*FASTEST, "login", "--server", base_url], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url, user_code = read_verification_url(login)
            assert url.startswith(f"{base_url}/device?user_code=")

            # A person opens the page, checks the code against the terminal, and approves.
            browser.get(f"{base_url}/device")
            field = browser.find_element(By.ID, "user_code")
            assert browser.find_element(By.CSS_SELECTOR, "label[for=user_code]").text
            field.send_keys(user_code.lower().replace("-", ""))  # as typed: case and dash do not matter
            field.submit()
            WebDriverWait(browser, 20).until(expected_conditions.presence_of_element_located((By.ID, "approve")))
            assert browser.find_element(By.ID, "device-code").text == user_code
            assert browser.find_element(By.ID, "signed-in-as").text == "owner@localhost"
            browser.find_element(By.ID, "approve").click()
            WebDriverWait(browser, 20).until(expected_conditions.title_contains("Sign-in approved"), browser.page_source)
            assert "owner@localhost" in browser.find_element(By.TAG_NAME, "main").text

            output, _ = login.communicate(timeout=60)
        finally:
            if login.poll() is None:
                login.kill()
                login.wait()
        assert login.returncode == 0, output
        assert f"logged in to {base_url} as owner@localhost" in output

        saved = config_dir / "config.json"
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700

        whoami = subprocess.run([*FASTEST, "whoami"], env=env, capture_output=True, text=True, timeout=60)
        assert whoami.returncode == 0, whoami.stderr
        assert whoami.stdout.startswith("owner@localhost (usr_") and base_url in whoami.stdout

        # The same code cannot be approved twice: the page says so.
        browser.get(url)
        assert "unknown, expired or already used" in browser.find_element(By.ID, "error").text

        logout = subprocess.run([*FASTEST, "logout"], env=env, capture_output=True, text=True, timeout=60)
        assert logout.returncode == 0 and "logged out" in logout.stdout, logout.stderr
        assert not saved.exists()
        after = subprocess.run([*FASTEST, "whoami"], env=env, capture_output=True, text=True, timeout=60)
        assert after.returncode == 2 and "not logged in" in after.stderr


def test_another_site_cannot_make_the_browser_approve(tmp_path: Path, browser):
    """A page on another origin auto-submits the approve form, even knowing the form token: the
    server refuses it (Origin / Sec-Fetch-Site), and the device stays unapproved."""
    import http.server
    import threading

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    import httpx

    with running_server(tmp_path / "data") as (base_url, _):
        started = httpx.post(f"{base_url}/v1/oauth/device", json={"client_name": "attacker"}).json()
        browser.get(started["verification_uri_complete"])  # the victim's browser has the form cookie
        token = browser.find_element(By.NAME, "csrf_token").get_attribute("value")
        attack = (
            f'<!doctype html><html><body><form id="f" method="post" action="{base_url}/device/approve">'
            f'<input name="user_code" value="{started["user_code"]}"><input name="csrf_token" value="{token}">'
            '</form><script>document.getElementById("f").submit()</script></body></html>'
        ).encode()

        class Attacker(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(attack)

            def log_message(self, *args) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
            WebDriverWait(browser, 20).until(expected_conditions.url_contains("/device/approve"))
            WebDriverWait(browser, 20).until(expected_conditions.presence_of_element_located((By.ID, "error")))
            assert "not sent from this page" in browser.find_element(By.ID, "error").text
        finally:
            server.shutdown()
            server.server_close()
        answer = httpx.post(f"{base_url}/v1/oauth/token", json={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": started["device_code"]})
        assert answer.json()["error"] == "authorization_pending"


def test_google_sign_in_form_post_checks_the_nonce(tmp_path: Path, browser):
    """The device page's "Sign in with Google" in a real browser: the (loopback) Google posts the ID
    token back cross-site with `response_mode=form_post`; a token carrying this page's nonce gets
    the confirmation and approves, a token minted for an earlier request is refused."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    import httpx

    from tests.api.google_idp import CLIENT_ID, FakeGoogle

    with FakeGoogle() as idp:
        env = {"FASTEST_GOOGLE_CLIENT_IDS": CLIENT_ID, "FASTEST_GOOGLE_JWKS_URL": idp.jwks_url,
               "FASTEST_GOOGLE_AUTHORIZE_URL": idp.authorize_url}
        with running_server(tmp_path / "data", env) as (base_url, _):
            def start() -> dict:
                return httpx.post(f"{base_url}/v1/oauth/device", json={"client_name": "laptop"}).json()

            def poll(started: dict) -> dict:
                return httpx.post(f"{base_url}/v1/oauth/token", json={
                    "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": started["device_code"]}).json()

            started = start()
            browser.get(started["verification_uri_complete"])
            browser.find_element(By.ID, "google-sign-in").click()
            WebDriverWait(browser, 20).until(expected_conditions.presence_of_element_located((By.ID, "approve")))
            assert browser.current_url == f"{base_url}/device/google"
            assert browser.find_element(By.ID, "signed-in-as").text == "grace@example.com"
            browser.find_element(By.ID, "approve").click()
            WebDriverWait(browser, 20).until(expected_conditions.title_contains("Sign-in approved"), browser.page_source)
            assert poll(started)["user"]["email"] == "grace@example.com"

            # Google posts back a token minted for the earlier request (its nonce is spent): refused.
            idp.replay = idp.minted[0]
            other = start()
            browser.get(other["verification_uri_complete"])
            browser.find_element(By.ID, "google-sign-in").click()
            WebDriverWait(browser, 20).until(expected_conditions.presence_of_element_located((By.ID, "error")))
            assert "not started from this page" in browser.find_element(By.ID, "error").text
            assert not browser.find_elements(By.ID, "approve")
            assert poll(other)["error"] == "authorization_pending"
