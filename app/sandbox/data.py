"""Filling the sandbox account with many users at once, for the scale tests and benchmarks.

Made inside moto's in-process backend: 5,000 CreateUser calls over HTTP would take minutes, and
what is measured is the portal reading them, which still goes over HTTP.
"""

from __future__ import annotations

from moto.core.utils import utcnow
from moto.iam.models import MFADevice, User, iam_backends

from app.sandbox.server import SANDBOX_ACCOUNT_ID


def populate(
    *, users: int, with_mfa: int = 0, group: str | None = "MFA", prefix: str = "user"
) -> list[str]:
    """Create `users` IAM users (the first `with_mfa` with an enabled virtual MFA device)."""
    backend = iam_backends[SANDBOX_ACCOUNT_ID]["global"]
    target = backend.get_group(group) if group else None
    names: list[str] = []
    for i in range(users):
        name = f"{prefix}{i:05d}"
        user = User(SANDBOX_ACCOUNT_ID, "us-east-1", name, "/")  # type: ignore[abstract]
        backend.users[name] = user
        if target is not None:
            target.users.append(user)
        if i < with_mfa:
            device = backend.create_virtual_mfa_device(name, "/")
            device.enable_date = utcnow()
            device.user = user
            user.mfa_devices[device.serial_number] = MFADevice(device.serial_number, "", "")
        names.append(name)
    return names


def main() -> None:
    """`python -m app.sandbox.data`: a standalone sandbox (optionally filled), until killed."""
    import argparse
    import signal
    import threading

    from app.sandbox.server import start_sandbox

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--users", type=int, default=0)
    parser.add_argument("--with-mfa", type=int, default=0)
    args = parser.parse_args()
    sandbox = start_sandbox(port=args.port)
    if args.users:
        populate(users=args.users, with_mfa=args.with_mfa, group=None)
    print(sandbox.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
