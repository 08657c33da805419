"""CSRF on every state-changing route outside /api/, found by walking the app's own routes.

A signed-in admin's browser is the victim: each route is sent the request a hostile page could
make it send (no csrf_token, or the token of another session); both must get the 403 "form has
expired" page. The same request with the right token must not: that shows the 403 came from the
CSRF check. A POST route added later is covered without touching this file.
"""

from __future__ import annotations

import pytest

from tests.security.support import UNSAFE_METHODS, Route, app_routes, fill
from tests.security.world import World

EXPIRED = "This form has expired"
DUMMY = {"token": "x" * 43, "name": "nobody", "mail_id": 1, "path": "app.css"}


def web_form_routes(world: World) -> list[Route]:
    return [
        r
        for r in app_routes(world.client.app)
        if r.method in UNSAFE_METHODS and not r.path.startswith("/api/")
    ]


def dummy_path(route: Route) -> str:
    return fill(route.path, **{p: DUMMY[p] for p in route.params})


def test_the_app_has_the_form_routes_this_file_expects(world: World) -> None:
    # Not a list to keep in step: a floor, so an enumeration that found nothing cannot pass.
    keys = {r.key for r in web_form_routes(world)}
    assert {"POST /admin/sign-in", "POST /admin/invite", "POST /enroll/verify"} <= keys
    assert len(keys) >= 15


def test_every_form_route_refuses_a_missing_or_foreign_csrf_token(world: World) -> None:
    people = world.personas()
    victim, other = people["admin_a"], people["admin_b"]
    wrong: list[str] = []
    for route in web_form_routes(world):
        path = dummy_path(route)
        for label, form in (
            ("no token", {"code": "123456"}),
            ("empty token", {"csrf_token": "", "code": "123456"}),
            ("another session's token", {"csrf_token": other.csrf, "code": "123456"}),
            ("a made-up token", {"csrf_token": victim.csrf[:-2] + "xx", "code": "123456"}),
        ):
            r = world.send(victim, route.method, path, form=form)
            if r.status_code != 403 or EXPIRED not in r.text:
                wrong.append(f"{route.key} with {label}: {r.status_code}")
        # The control: the victim's own token passes the check (whatever the route says then).
        r = world.send(victim, route.method, path, form={"csrf_token": victim.csrf})
        if EXPIRED in r.text:
            wrong.append(f"{route.key} refused its own session's token")
    assert wrong == []


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "TRACE", "PROPFIND"])
def test_other_methods_on_web_paths_need_the_token_too(world: World, method: str) -> None:
    # No such routes exist today; if one is added, it is behind the same check from day one.
    admin = world.personas()["admin_a"]
    for path in ("/admin/invite", "/admin/users/look", "/enroll"):
        r = world.send(admin, method, path, form={"user_name": "mallory"})
        assert r.status_code == 403 and EXPIRED in r.text, (method, path, r.status_code)


def test_the_token_counts_only_in_a_urlencoded_form_body(world: World) -> None:
    admin = world.personas()["admin_a"]
    path = "/admin/outbox/retry"
    assert world.send(admin, "POST", path, form={"csrf_token": admin.csrf}).status_code == 303
    refused = [
        world.send(admin, "POST", f"{path}?csrf_token={admin.csrf}", form={}),
        world.send(admin, "POST", path, json={"csrf_token": admin.csrf}),
        world.send(admin, "POST", path, headers={"X-CSRF-Token": admin.csrf}),
        world.client.post(  # multipart: a form a hostile page could also send
            path,
            files={"csrf_token": (None, admin.csrf)},
            headers=admin.request_headers(),
            follow_redirects=False,
        ),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]


def test_a_cross_site_post_without_the_cookie_is_refused(world: World) -> None:
    # SameSite=Lax keeps the cookie off a cross-site POST: the request arrives with none.
    admin = world.personas()["admin_a"]
    world.client.cookies.clear()
    r = world.client.post(
        "/admin/outbox/retry", data={"csrf_token": admin.csrf}, follow_redirects=False
    )
    assert r.status_code == 403 and EXPIRED in r.text


def test_the_api_takes_no_cookie_so_it_needs_no_csrf_token(world: World) -> None:
    people = world.personas()
    # An admin's cookie is worth nothing there: a hostile page cannot ride on it.
    r = world.send(
        people["admin_a"],
        "POST",
        "/api/v1/invitations",
        json={"user_name": "mallory", "email": "m@example.com"},
    )
    assert r.status_code == 401
    r = world.send(people["api_token"], "GET", "/api/v1/users")
    assert r.status_code == 200
