"""The directory: every IAM user of the account with a status, for the dashboard and the API.

A refresh reads the whole account in O(N/1000) IAM calls (ListUsers, GetGroup,
ListVirtualMFADevices, the credential report), never one call per user, and stores a
snapshot. Statuses combine that snapshot with the portal's own invitations when read, so an
invite or an enrollment shows at once, without waiting for the next refresh.
"""

from app.services.directory.detail import AccessKeyFacts, UserDetail, user_detail
from app.services.directory.listing import (
    MAX_PER_PAGE,
    DirectoryPage,
    DirectoryRow,
    export_rows,
    list_users,
)
from app.services.directory.records import Snapshot, get_snapshot
from app.services.directory.refresh import REPORT_WAIT_SECONDS, refresh_directory

__all__ = [
    "MAX_PER_PAGE",
    "REPORT_WAIT_SECONDS",
    "AccessKeyFacts",
    "DirectoryPage",
    "DirectoryRow",
    "Snapshot",
    "UserDetail",
    "export_rows",
    "get_snapshot",
    "list_users",
    "refresh_directory",
    "user_detail",
]
