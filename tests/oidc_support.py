"""A real OpenID Provider for the SSO tests: panva's oidc-provider (tests/oidc, pinned in its
package-lock.json) run by Node on a free 127.0.0.1 port, and a walk through its login pages."""

from __future__ import annotations

import fcntl
import html
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from tests.helpers import free_port

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "iam-onboard"
CLIENT_SECRET = "test-client-secret"  # noqa: S105 - the test provider's own, in provider.mjs
# The provider's accounts (provider.mjs): alice and erin are in iam-admins at example.com; bob
# is not in the group; carol is in it at another domain; dave's email is not verified.
ALLOWED_GROUP = "iam-admins"
ALLOWED_DOMAIN = "example.com"


@dataclass
class OidcProvider:
    issuer: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def settings(self, **extra: Any) -> dict[str, Any]:
        """Portal settings for this provider (make_portal overrides)."""
        values: dict[str, Any] = {
            "oidc_issuer": self.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "oidc_admin_groups": [ALLOWED_GROUP],
            "oidc_allowed_domains": [ALLOWED_DOMAIN],
            "oidc_provider_name": "Test IdP",
        }
        values.update(extra)
        return values

    def next_id_token(self, claims: dict[str, Any] | None = None, kid: str = "k1") -> None:
        """The next token response carries its ID token changed so, signed with `kid`."""
        r = self._http.post(
            f"{self.issuer}/test/next-id-token", json={"claims": claims or {}, "kid": kid}
        )
        r.raise_for_status()

    def publish_key(self, kid: str) -> None:
        r = self._http.post(f"{self.issuer}/test/publish-key", json={"kid": kid})
        r.raise_for_status()

    def stop(self) -> None:
        self._http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_oidc_provider(skip_or_fail: Callable[[str], None]) -> OidcProvider:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        skip_or_fail(
            "node and npm are needed for the OpenID Provider tests (apt-get install nodejs npm)"
        )
    assert node and npm
    # pytest-xdist workers share tests/oidc: one runs `npm ci` (which first deletes
    # node_modules) while the others wait on the lock, then find the provider installed.
    with (OIDC_DIR / ".npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            done = subprocess.run(  # noqa: S603 - npm from PATH, fixed arguments
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=OIDC_DIR,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                skip_or_fail(f"npm ci in tests/oidc failed: {done.stderr[-500:]}")
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"iam-onboard-oidc-provider-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - node from PATH, our own script
            [node, "provider.mjs", str(port)], cwd=OIDC_DIR, stdout=log, stderr=subprocess.STDOUT
        )
    issuer = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if (
                httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code
                == 200
            ):
                return OidcProvider(issuer=issuer, process=process, log_path=log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    output = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"the OpenID Provider did not start:\n{output}")


_FORM = re.compile(r"<form([^>]*)>(.*?)</form>", re.IGNORECASE | re.DOTALL)
_ACTION = re.compile(r'action="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def _submit(client: httpx.Client, url: str, page: str, login: str) -> httpx.Response:
    """Post the page's form as a person would: the provider's login form (its devInteractions
    take any password), or its confirmation to leave a session of another account."""
    match = _FORM.search(page)
    assert match, f"no form on {url}: {page[:500]}"
    attributes, body = match.groups()
    action = _ACTION.search(attributes)
    assert action, attributes
    data = {name: html.unescape(value) for name, value in _HIDDEN.findall(body)}
    if 'name="login"' in body:
        data.update(prompt="login", login=login, password="any")
    target = urljoin(url, html.unescape(action.group(1)))
    return client.post(target, data=data, follow_redirects=False)


def walk_to_callback(client: httpx.Client, start_url: str, *, login: str, portal_url: str) -> str:
    """From a portal URL that sends the browser to the provider, through its login page, to the
    portal's callback URL, returned unopened (a test may open it twice)."""
    url = start_url
    for _hop in range(16):
        r = client.get(url, follow_redirects=False)
        while r.status_code == 200:
            posted = _submit(client, url, r.text, login)
            url = str(posted.request.url)
            r = posted
        assert r.status_code in (302, 303), r.text[:500]
        url = urljoin(url, r.headers["location"])
        if url.startswith(f"{portal_url}/admin/oidc/callback"):
            return url
    raise AssertionError(f"the provider never sent the browser back to the portal (last {url})")
