# ki2api: gunicorn with gevent workers serving the Flask app on :8989.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HOST=0.0.0.0 PORT=8989 KI2API_STATE_DIR=/app/state

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt \
    && useradd --create-home --uid 10001 ki2api \
    && mkdir -p /app/state && chown ki2api /app/state

COPY wsgi.py ./
COPY config ./config
COPY ki2api ./ki2api

USER ki2api
EXPOSE 8989
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8989'), timeout=4)"
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"]
