"""A scripted newcomer enrolls against the real `iam-onboard demo`, as from outside.

Only HTTP with a cookie jar, a real QR reader on the page's inline SVG, GNU oathtool for the
codes, and an AWS client on the sandbox endpoint afterwards.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from tests.conftest import skip_or_fail
from tests.helpers import Demo, clean_env, csrf_of, start_demo
from tests.qr_decode import decode_svg, svg_in_page

# JSON: the comma-separated form of this variable is refused by app/config.py for now.
GROUPS = '["Developers"]'


@pytest.fixture
def demo(tmp_path: Path):
    d = start_demo(tmp_path, env=clean_env(IAM_ONBOARD_ASSIGNABLE_GROUPS=GROUPS))
    yield d
    d.stop()


def _iam(demo: Demo):  # type: ignore[no-untyped-def]
    return boto3.client(
        "iam",
        endpoint_url=demo.iam_url,
        region_name="us-east-1",
        aws_access_key_id="any",
        aws_secret_access_key="any",
    )


def _oathtool_pair(seed: str) -> list[str]:
    oathtool = shutil.which("oathtool")
    if oathtool is None:
        skip_or_fail("oathtool is not installed (apt-get install oathtool)")
        raise AssertionError("unreachable")
    # The previous step's code and the current one: what a phone showed a moment ago and now.
    start = (int(time.time()) // 30 - 1) * 30
    result = subprocess.run(
        [oathtool, "--totp", "-b", "-w", "1", "--now", f"@{start}", seed],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def test_a_scripted_newcomer_enrolls_from_the_invite_link(demo: Demo, tmp_path: Path):
    iam = _iam(demo)
    iam.create_group(GroupName="Developers")
    invited = demo.cli(
        "invite", "newhire", "--email", "newhire@example.com", "--group", "Developers",
        IAM_ONBOARD_ASSIGNABLE_GROUPS=GROUPS,
    )  # fmt: skip
    assert invited.returncode == 0, invited.stderr
    link = invited.stdout.strip().splitlines()[-1]
    token = link.rsplit("/", 1)[1]

    seen: list[str] = []
    with httpx.Client(base_url=demo.portal_url, follow_redirects=True, event_hooks={"request": [
        lambda request: seen.append(str(request.url))
    ]}) as browser:  # fmt: skip
        for _ in range(3):  # mail scanners and previews open the link first
            landing = browser.get(link)
            assert landing.status_code == 200
        assert "newhire" in landing.text
        scan = browser.post(link, data={"csrf_token": csrf_of(landing.text)})
        assert scan.status_code == 200, scan.text
        assert str(scan.url) == demo.portal_url + "/enroll"
        assert scan.headers["cache-control"] == "no-store"

        grouped = re.search(r'id="secret"[^>]*>([A-Z2-7 ]+)</code>', scan.text)
        assert grouped, scan.text
        seed = grouped.group(1).replace(" ", "")
        (uri,) = decode_svg(svg_in_page(scan.text))
        assert uri.startswith("otpauth://totp/")
        assert parse_qs(urlsplit(uri).query)["secret"] == [seed]
        assert parse_qs(urlsplit(uri).query)["issuer"] == ["AWS 123456789012"]

        code1, code2 = _oathtool_pair(seed)
        done = browser.post(
            "/enroll/verify",
            data={"csrf_token": csrf_of(scan.text), "code1": code1, "code2": code2},
        )
        assert done.status_code == 200, done.text
        assert str(done.url) == demo.portal_url + "/enroll/done"
        password = re.search(r'id="temp-password">([^<]+)</code>', done.text)
        assert password, done.text
        assert "https://123456789012.signin.aws.amazon.com/console" in done.text
        assert "aws sts get-session-token --serial-number" in done.text
        assert "already shown" in browser.get("/enroll/done").text
        cookies = list(browser.cookies.values())

    after_landing = seen[3:]
    assert after_landing and not any(token in url for url in after_landing[1:]), seen
    assert not any(seed in c for c in cookies)

    serial = "arn:aws:iam::123456789012:mfa/iam-onboard/newhire"
    devices = iam.list_mfa_devices(UserName="newhire")["MFADevices"]
    assert [d["SerialNumber"] for d in devices] == [serial]
    profile = iam.get_login_profile(UserName="newhire")["LoginProfile"]
    assert profile["PasswordResetRequired"] is True
    groups = {g["GroupName"] for g in iam.list_groups_for_user(UserName="newhire")["Groups"]}
    assert groups == {"MFA", "Developers"}

    # Nothing of the seed or the password stays behind, and the demo's log holds neither.
    db_file = Path(demo.database_url.removeprefix("sqlite:///"))
    for path in db_file.parent.glob(db_file.name + "*"):
        data = path.read_bytes()
        assert seed.encode() not in data
        assert unescape(password.group(1)).encode() not in data
    output = demo.stop()
    assert seed not in output and token not in output and code1 not in output
