# The portal as a container: `iam-onboard serve` on port 8000, as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IAM_ONBOARD_DATABASE_URL=sqlite:////data/iam-onboard.db

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them. requirements.lock holds the
# runtime dependencies only: the sandbox (moto, Flask: the `demo` extra) is not in the image.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# A regular (not editable) install: templates, static files, translations and migrations are
# package data inside app/, so the installed package serves every page by itself.
COPY . .
RUN pip install --no-deps . \
    && groupadd --system --gid 10001 iam-onboard \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin \
        iam-onboard \
    && mkdir -p /data \
    && chown 10001:10001 /data

# /data is the one writable place, e.g. for a SQLite file (PostgreSQL is the production choice).
# The image suits a read-only root filesystem (deploy/iam-onboard.yaml runs it so): the code writes
# only to /data and to /tmp, which gets a volume of its own there; `make deploy-check` runs the
# installed code as an unprivileged user with a single writable folder.
VOLUME ["/data"]
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

EXPOSE 8000
# The slim image has no curl; the standard library can make the request.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["iam-onboard", "serve", "--host", "0.0.0.0", "--port", "8000"]
