#!/usr/bin/env bash
# The deployment checks of issue 19, in a venv of their own (.venv-deploy, from
# tools/deploy-check.lock: checkov's and cfn-lint's dependencies do not fit the app's locks):
#   - cfn-lint: no error on any template under deploy/;
#   - checkov -d deploy: no failed check (skips are inline, each with a reason);
#   - hadolint and checkov on the Dockerfile;
#   - the Dockerfile's install steps in a fresh venv, then `iam-onboard --help` (no Docker engine).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-deploy
LOCK=tools/deploy-check.lock
STAMP=$VENV/.installed-$(sha256sum "$LOCK" | cut -c1-16)

if [ ! -f "$STAMP" ]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -r "$LOCK"
  touch "$STAMP"
fi

echo "-- cfn-lint"
# Exit codes: 2 errors, 4 warnings, 8 informational; only errors fail (warnings are printed).
rc=0
"$VENV/bin/cfn-lint" deploy/*.yaml || rc=$?
if [ $(( rc & 2 )) -ne 0 ] || [ $(( rc & 1 )) -ne 0 ]; then
  echo "cfn-lint reported errors"; exit 1
fi
echo "-- checkov -d deploy"
"$VENV/bin/checkov" --config-file .checkov.yaml -d deploy
echo "-- checkov and hadolint on the Dockerfile"
"$VENV/bin/checkov" --config-file .checkov.yaml --framework dockerfile -f Dockerfile
"$VENV/bin/hadolint" Dockerfile
echo "-- the Dockerfile's install steps in a fresh venv"
"$PYTHON" tools/dockerfile_steps.py
echo "deploy checks passed"
