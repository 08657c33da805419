"""Eventual consistency for the sandbox: just-written IAM entities that other calls do not see yet.

AWS IAM user guide, "Troubleshoot IAM" ("Changes that I make are not always immediately
visible"): a change must replicate before every call sees it. For a random part of the window
after a successful write (drawn per entity), the user, virtual MFA device, MFA assignment,
login profile or group membership it created is unseen: calls naming it answer NoSuchEntity
(and change nothing), list answers omit it. Deletions are seen at once.
"""

from __future__ import annotations

import random
import re
import threading
import xml.etree.ElementTree as ET  # noqa: S405 - parses only moto's own answers, in-process
from collections.abc import Callable, Mapping
from typing import Any

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
_SERIAL = re.compile(r"<SerialNumber>([^<]+)</SerialNumber>")


Key = tuple[str, ...]


class ConsistencyWindow:
    """Writes that other calls do not see yet: each for a random part of the window."""

    def __init__(self, window_ms: float, clock: Callable[[], float], rng: random.Random) -> None:
        self.window_s = window_ms / 1000
        self._clock, self._rng = clock, rng
        self._until: dict[Key, float] = {}
        self._lock = threading.Lock()

    def wrote(self, *key: str) -> float:
        """Record a write; returns the seconds it stays unseen."""
        with self._lock:
            now = self._clock()
            for old in [k for k, until in self._until.items() if until <= now]:
                del self._until[old]
            unseen = self._rng.uniform(0, self.window_s)
            self._until[key] = now + unseen
            return unseen

    def unseen(self, *key: str) -> bool:
        with self._lock:
            until = self._until.get(key)
            return until is not None and self._clock() < until

    def pending(self) -> bool:
        """Anything still unseen (lists need rewriting only then)."""
        with self._lock:
            now = self._clock()
            return any(until > now for until in self._until.values())

    def clear(self) -> None:
        with self._lock:
            self._until.clear()


class NotYetVisible(Exception):
    """The call names an entity the window still hides: AWS answers NoSuchEntity (HTTP 404)."""

    status, code = 404, "NoSuchEntity"


def _no_user(name: str) -> NotYetVisible:
    return NotYetVisible(f"The user with name {name} cannot be found.")


def _no_device(serial: str) -> NotYetVisible:
    return NotYetVisible(f"MFA Device with serial number {serial} does not exist.")


def _no_profile(name: str) -> NotYetVisible:
    return NotYetVisible(f"Login Profile for User {name} cannot be found.")


_LOGIN_PROFILE_ACTIONS = {"GetLoginProfile", "UpdateLoginProfile", "DeleteLoginProfile"}
_ASSIGNED_DEVICE_ACTIONS = {"DeactivateMFADevice", "ResyncMFADevice", "GetMFADevice"}


def check_visible(window: ConsistencyWindow, action: str, params: Mapping[str, str]) -> None:
    """NoSuchEntity when the call names an entity the window still hides."""
    user, serial = params.get("UserName"), params.get("SerialNumber")
    if user and action != "CreateUser" and window.unseen("user", user):
        raise _no_user(user)
    if user and action in _LOGIN_PROFILE_ACTIONS and window.unseen("login-profile", user):
        raise _no_profile(user)
    if serial and window.unseen("device", serial):
        raise _no_device(serial)
    if serial and action in _ASSIGNED_DEVICE_ACTIONS and window.unseen("mfa", serial):
        raise _no_device(serial)


def record_write(
    window: ConsistencyWindow, action: str, params: Mapping[str, str], body: bytes
) -> None:
    """After a successful write: what it created stays unseen for a while."""
    user = params.get("UserName", "")
    if action == "CreateUser":
        window.wrote("user", user)
    elif action == "CreateLoginProfile":
        window.wrote("login-profile", user)
    elif action == "AddUserToGroup":
        window.wrote("member", params.get("GroupName", ""), user)
    elif action == "EnableMFADevice":
        window.wrote("mfa", params.get("SerialNumber", ""))
    elif action == "CreateVirtualMFADevice":
        found = _SERIAL.search(body.decode("utf-8", "replace"))
        if found:
            window.wrote("device", found.group(1))


def _text(element: ET.Element, name: str) -> str:
    child = element.find(f"{{{IAM_NS}}}{name}")
    return child.text or "" if child is not None else ""


def _members(root: ET.Element, list_name: str) -> tuple[ET.Element | None, list[ET.Element]]:
    container = root.find(f".//{{{IAM_NS}}}{list_name}")
    if container is None:
        return None, []
    return container, list(container.findall(f"{{{IAM_NS}}}member"))


def filter_list(
    window: ConsistencyWindow, action: str, params: Mapping[str, str], body: bytes
) -> bytes:
    """A list answer without the entries the window still hides (the page may come out short)."""
    if action not in _LISTS or not window.pending():
        return body
    root = ET.fromstring(body)  # noqa: S314  # nosec B314 - moto's own answer, in-process
    if not _LISTS[action](window, params, root):
        return body
    ET.register_namespace("", IAM_NS)
    answer: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return answer


def _drop(container: ET.Element | None, members: list[ET.Element], hide: Any) -> bool:
    dropped = False
    for member in members:
        if container is not None and hide(member):
            container.remove(member)
            dropped = True
    return dropped


def _list_users(window: ConsistencyWindow, params: Mapping[str, str], root: ET.Element) -> bool:
    container, members = _members(root, "Users")
    return _drop(container, members, lambda m: window.unseen("user", _text(m, "UserName")))


def _get_group(window: ConsistencyWindow, params: Mapping[str, str], root: ET.Element) -> bool:
    group = params.get("GroupName", "")
    container, members = _members(root, "Users")

    def hide(m: ET.Element) -> bool:
        name = _text(m, "UserName")
        return window.unseen("user", name) or window.unseen("member", group, name)

    return _drop(container, members, hide)


def _groups_for_user(
    window: ConsistencyWindow, params: Mapping[str, str], root: ET.Element
) -> bool:
    user = params.get("UserName", "")
    container, members = _members(root, "Groups")
    return _drop(container, members, lambda m: window.unseen("member", _text(m, "GroupName"), user))


def _mfa_devices(window: ConsistencyWindow, params: Mapping[str, str], root: ET.Element) -> bool:
    container, members = _members(root, "MFADevices")
    return _drop(container, members, lambda m: window.unseen("mfa", _text(m, "SerialNumber")))


def _virtual_devices(
    window: ConsistencyWindow, params: Mapping[str, str], root: ET.Element
) -> bool:
    # A new device is missing; a just-enabled one still looks unassigned (AWS would list it
    # under AssignmentStatus=Unassigned too; here it is only dropped from Assigned).
    only_assigned = params.get("AssignmentStatus") == "Assigned"
    container, members = _members(root, "VirtualMFADevices")
    changed = False
    for member in members:
        serial = _text(member, "SerialNumber")
        if window.unseen("device", serial) or (only_assigned and window.unseen("mfa", serial)):
            if container is not None:
                container.remove(member)
                changed = True
        elif window.unseen("mfa", serial):
            for name in ("User", "EnableDate"):
                child = member.find(f"{{{IAM_NS}}}{name}")
                if child is not None:
                    member.remove(child)
                    changed = True
    return changed


_LISTS: dict[str, Callable[[ConsistencyWindow, Mapping[str, str], ET.Element], bool]] = {
    "ListUsers": _list_users,
    "GetGroup": _get_group,
    "ListGroupsForUser": _groups_for_user,
    "ListMFADevices": _mfa_devices,
    "ListVirtualMFADevices": _virtual_devices,
}
