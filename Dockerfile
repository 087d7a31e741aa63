# syntax=docker/dockerfile:1
# The sealroom image: one image for every process (coordinator, enclave worker, witness).
# Build: docker build -t sealroom:local .   Run: docker compose up (compose.yaml).
# For a dstack CVM, push it and name it by digest: sealroom app-compose --image NAME@sha256:...

# The interpreter CI tests with. Pin it by digest for a reproducible enclave image
# (docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/sealroom
# Only what the package needs: no tests, no benchmarks, no test extras.
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/sealroom/bin/pip install ".[postgres]"

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/sealroom/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SEALROOM_HOME=/var/lib/sealroom
RUN groupadd --system --gid 10001 sealroom \
    && useradd --system --uid 10001 --gid sealroom --home-dir /var/lib/sealroom \
       --create-home --shell /usr/sbin/nologin sealroom \
    && install --directory --owner sealroom --group sealroom --mode 0700 \
       /var/lib/sealroom/public /var/lib/sealroom/witness /var/lib/sealroom/enclave
# (Named volumes mounted on these start with this owner and mode.)
COPY --from=build /opt/sealroom /opt/sealroom
USER 10001:10001
WORKDIR /var/lib/sealroom
EXPOSE 8470 8471
# Healthchecks are per process (compose.yaml): `sealroom probe URL` exits 0 on a 2xx answer.
ENTRYPOINT ["sealroom"]
CMD ["serve", "--host", "0.0.0.0"]
