"""The embedded AWS for the demo, the tests and the benchmarks (never imported by `serve`)."""

from app.sandbox import aws_policies as _aws_policies  # noqa: F401  (registers its patch)
from app.sandbox.server import SANDBOX_ACCOUNT_ID, SANDBOX_CREDENTIALS, Sandbox, start_sandbox

__all__ = ["SANDBOX_ACCOUNT_ID", "SANDBOX_CREDENTIALS", "Sandbox", "start_sandbox"]
