# ki2api: gunicorn with gevent workers serving the Flask app on :8989 (docs/deployment.md, "Docker").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 PORT=8989 KI2API_STATE_DIR=/app/state \
    KIRO_TOKEN_FILE=/home/ki2api/.aws/sso/cache/kiro-auth-token.json

WORKDIR /app
# Dependencies in their own layer: a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

# A fixed non-root user, uid/gid 10001. docker-compose.yml may run the container as the host user instead
# (PUID/PGID) so refreshed tokens can be written back to the mounted token folder; the state directory is
# therefore writable by any uid (sticky, like /tmp).
RUN groupadd --gid 10001 ki2api \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin ki2api \
    && mkdir -p /app/state /home/ki2api/.aws/sso/cache \
    && chown -R 10001:10001 /app/state /home/ki2api \
    && chmod 1777 /app/state

COPY wsgi.py openapi.yaml ./
COPY config ./config
COPY ki2api ./ki2api

USER 10001:10001
EXPOSE 8989
# gunicorn's graceful stop: listener closed at once, open streams get GRACEFUL_TIMEOUT seconds.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8989'), timeout=4)"]
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"]
