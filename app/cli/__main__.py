"""`python -m app.cli`: the same command line as `iam-onboard`."""

import sys

from app.cli import main

sys.exit(main())
