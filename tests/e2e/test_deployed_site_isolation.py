"""A deployed site's script runs in the owner's browser on the server's machine, where the device
page would sign in as the local owner: it must not be able to approve a device sign-in of its own
and walk away with a token. Real server, real deploy, headless Chromium running the page's script."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.e2e.chromium import headless_chromium, needs_chromium
from tests.e2e.conftest import Cli, admin_token, running_server, write

pytestmark = needs_chromium

# What a hostile page tries: start a device sign-in asking for secrets, read the device page's form
# token, approve as the local owner, redeem the code. It reports in the title either way.
ATTACK = """
(async () => {
  const api = %(api)s;
  let outcome = 'no token';
  try {
    const start = await fetch(api + '/v1/oauth/device', {method: 'POST', headers: {'content-type': 'application/json'},
      body: JSON.stringify({client_name: 'innocent', scope: 'secrets:read projects:read'})});
    const device = await start.json();
    const page = await (await fetch(api + '/device?user_code=' + device.user_code, {credentials: 'include'})).text();
    const csrf = page.match(/name="csrf_token" value="([^"]+)"/)[1];
    await fetch(api + '/device/approve', {method: 'POST', credentials: 'include',
      headers: {'content-type': 'application/x-www-form-urlencoded'},
      body: 'user_code=' + encodeURIComponent(device.user_code) + '&csrf_token=' + encodeURIComponent(csrf)});
    const grant = await (await fetch(api + '/v1/oauth/token', {method: 'POST', headers: {'content-type': 'application/json'},
      body: JSON.stringify({grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: device.device_code})})).json();
    outcome = grant.access_token ? 'TOKEN ' + grant.access_token : 'refused ' + JSON.stringify(grant);
  } catch (error) {
    outcome = 'failed ' + error;
  }
  document.title = 'done: ' + outcome;
})();
"""


def deploy_attack(cli: Cli, tmp_path: Path, name: str, api: str) -> str:
    folder = tmp_path / name
    write(folder / "index.html", "<!doctype html><title>loading</title><script src=attack.js></script><h1>Hello</h1>")
    write(folder / "attack.js", ATTACK % {"api": json.dumps(api)})
    cli("init", "--project", name, cwd=folder)
    return cli("deploy", cwd=folder).stdout.strip().splitlines()[-1]


def outcome(browser, url: str) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(lambda driver: driver.title.startswith("done: "))
    return browser.title


def test_a_deployed_pages_script_cannot_sign_in_as_the_local_owner(tmp_path: Path):
    data_dir = tmp_path / "data"
    with running_server(data_dir, {"FASTEST_RATE_LIMIT_PER_MINUTE": "100000"}) as (base_url, _):
        cli = Cli(tmp_path / "config")
        cli("login", "--server", base_url, "--token", admin_token(data_dir, "owner@localhost"), cwd=tmp_path)
        # The path fallback: the page is at the server's own address, and its script asks that address.
        fallback = urlsplit(deploy_attack(cli, tmp_path, "fallback", "")).hostname.split(".")[0]
        fallback_url = f"{base_url}/_deployments/{fallback}/"
        served = httpx.get(fallback_url, timeout=10)
        policy = served.headers["content-security-policy"]
        assert policy.split()[0] == "sandbox" and "allow-same-origin" not in policy
        assert "set-cookie" not in served.headers
        # Its own origin (dep-….localhost), asking the server's address across origins.
        own_url = deploy_attack(cli, tmp_path, "own", base_url)
        assert urlsplit(own_url).hostname.endswith(".localhost")

        with headless_chromium() as browser:
            browser.set_page_load_timeout(30)
            # The device page itself still signs the owner in for a real person (see
            # test_device_login_browser): what fails here is the script, not the page.
            for url in (fallback_url, own_url):
                seen = outcome(browser, url)
                assert "TOKEN" not in seen and seen.startswith("done: failed"), (url, seen)

        audit = httpx.get(f"{base_url}/v1/audit", headers={"Authorization": f"Bearer {admin_token(data_dir, 'owner@localhost')}"},
                          timeout=10).json()
        assert not [event for event in audit["events"] if event["type"].startswith("device.")], audit
