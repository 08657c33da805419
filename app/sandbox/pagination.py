"""AWS pages every list call with MaxItems and Marker; moto returns everything at once.

The patched list calls below page as IAM does: at most MaxItems (default 100, max 1000) per
page in name order, IsTruncated and an opaque Marker that survives the deletion of its item.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from moto.core.responses import ActionResult
from moto.iam.exceptions import ValidationError
from moto.iam.responses import IamResponse

from app.sandbox.patching import patch

MAX_ITEMS_DEFAULT, MAX_ITEMS_LIMIT = 100, 1000

T = TypeVar("T")


def paginate(
    items: Sequence[T], key: Callable[[T], str], param: Callable[..., Any]
) -> tuple[list[T], str | None]:
    """One page in name order, continuing after the marker's item even if it was deleted."""
    raw_max = param("MaxItems")
    max_items = int(raw_max) if raw_max is not None else MAX_ITEMS_DEFAULT
    if not 1 <= max_items <= MAX_ITEMS_LIMIT:
        raise ValidationError(
            f"1 validation error detected: Value '{max_items}' at 'maxItems' failed to "
            f"satisfy constraint: Member must have value between 1 and {MAX_ITEMS_LIMIT}"
        )
    ordered = sorted(items, key=lambda item: (key(item).lower(), key(item)))
    marker = param("Marker")
    if marker:
        try:
            after = base64.urlsafe_b64decode(marker.encode()).decode()
        except ValueError as exc:
            raise ValidationError("Invalid Marker.") from exc
        ordered = [i for i in ordered if (key(i).lower(), key(i)) > (after.lower(), after)]
    page = ordered[:max_items]
    if len(ordered) <= max_items:
        return page, None
    return page, base64.urlsafe_b64encode(key(page[-1]).encode()).decode()


@patch(IamResponse, "list_mfa_devices")
def _list_mfa_devices(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    # AWS pages every list call with MaxItems/Marker; moto returns everything at once.
    user = self.backend.get_user(self._get_param("UserName"))
    devices, marker = paginate(
        list(user.mfa_devices.values()), lambda d: d.serial_number, self._get_param
    )
    items = [
        {"UserName": user.name, "SerialNumber": d.serial_number, "EnableDate": d.enable_date}
        for d in devices
    ]
    return ActionResult({"MFADevices": items, "IsTruncated": bool(marker), "Marker": marker})


@patch(IamResponse, "list_virtual_mfa_devices")
def _list_virtual_mfa_devices(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    # AWS returns the seed and QR code only from CreateVirtualMFADevice, never in lists;
    # moto lists them, and its pages can end on an empty page.
    status = self._get_param("AssignmentStatus") or "Any"
    devices = [
        d
        for d in list(self.backend.virtual_mfa_devices.values())  # a copy: writes run meanwhile
        if status == "Any" or (d.user is not None) == (status == "Assigned")
    ]
    page, marker = paginate(devices, lambda d: d.serial_number, self._get_param)
    items = [
        {"SerialNumber": d.serial_number, "User": d.user, "EnableDate": d.enable_date}
        if d.user is not None
        else {"SerialNumber": d.serial_number}
        for d in page
    ]
    return ActionResult({"VirtualMFADevices": items, "IsTruncated": bool(marker), "Marker": marker})


@patch(IamResponse, "list_users")
def _list_users(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    # AWS: at most MaxItems (default 100, max 1000) per page, IsTruncated + Marker.
    users = list(self.backend.list_users(self._get_param("PathPrefix"), None, None))
    page, marker = paginate(users, lambda u: u.name, self._get_param)
    return ActionResult({"Users": page, "IsTruncated": bool(marker), "Marker": marker})


@patch(IamResponse, "get_group")
def _get_group(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    # AWS pages the group's members like any list call.
    group = self.backend.get_group(self._get_param("GroupName"))
    page, marker = paginate(list(group.users), lambda u: u.name, self._get_param)
    result = {"Group": group, "Users": page, "IsTruncated": bool(marker), "Marker": marker}
    return ActionResult(result)
