# dsrflow api / worker image. docker-compose.yml runs it as `dsrflow api` and `dsrflow worker`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DSRFLOW_HOME=/var/lib/dsrflow

RUN groupadd --system --gid 10001 dsrflow \
    && useradd --system --uid 10001 --gid dsrflow --home-dir /var/lib/dsrflow --shell /usr/sbin/nologin dsrflow \
    && mkdir -p /var/lib/dsrflow \
    && chown dsrflow:dsrflow /var/lib/dsrflow

WORKDIR /src

# One COPY per package: `COPY a b dest/` would copy the folders' contents, not the folders.
COPY pyproject.toml README.md ./
COPY dsrflow/ dsrflow/
COPY schemas/ schemas/
COPY workflows/ workflows/
COPY activities/ activities/
COPY workers/ workers/
COPY api/ api/
COPY policy/ policy/
COPY migrations/ migrations/
COPY devstack/ devstack/
COPY cli/ cli/

RUN pip install --no-cache-dir . \
    && rm -rf /src/build

USER dsrflow
WORKDIR /var/lib/dsrflow

EXPOSE 8000
CMD ["dsrflow", "api"]
