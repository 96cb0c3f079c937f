# lasersell-bot in a container. Builds with BuildKit and with the legacy builder
# (DOCKER_BUILDKIT=0, Debian's docker.io): no `# syntax=` line, no BuildKit-only syntax.
#
#   docker build -t lasersell-bot .
#   docker run -d --name lasersell-bot --restart unless-stopped \
#     -v /srv/lasersell-bot/config.toml:/etc/lasersell-bot/config.toml:ro \
#     -v /srv/lasersell-bot/wallet.json:/run/secrets/wallet-keypair:ro \
#     -e CREDENTIALS_DIRECTORY=/run/secrets -e LASERSELL_API_KEY \
#     -v lasersell-bot-state:/var/lib/lasersell-bot \
#     lasersell-bot
#   docker logs -f lasersell-bot
#
# Secrets come from environment variables (LASERSELL_API_KEY, ...) or from files
# named like the systemd credentials (lasersell-api-key, wallet-keypair, ...) in
# $CREDENTIALS_DIRECTORY; /run/secrets is where Docker/Compose secrets appear.
# With keypair_path = "credential:wallet-keypair" the wallet is read from there.
# The journal is kept in the /var/lib/lasersell-bot volume ($STATE_DIRECTORY).
# The container runs as UID 10001: files mounted into it must be readable by it.
# /healthz and /metrics listen on 127.0.0.1:9464 inside the container (used by
# HEALTHCHECK); set http.listen = "0.0.0.0:9464" and publish the port to scrape
# metrics from outside, and set LASERSELL_HEALTH_URL if you change the port.

#
# Base image, pinned by digest: the tag says what it is, the digest makes the build
# reproducible (a re-pushed tag cannot change it). The digest is that of the tag's
# multi-platform index, so the same line works on amd64 and arm64. To move to a newer
# Python, take the index digest the registry reports for the new tag:
#   docker buildx imagetools inspect python:3.11.X-slim-bookworm   (the "Digest:" line)
# or after a `docker pull`: docker image inspect --format '{{index .RepoDigests 0}}' TAG
# With no registry at hand, build a local stand-in base (Debian's python3 3.11) with
# tools/docker-base.sh and pass it: docker build --build-arg PYTHON_IMAGE=lasersell-base:bookworm
# (make docker-test PYTHON_IMAGE=lasersell-base:bookworm does that).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/lasersell-bot
COPY requirements.lock /tmp/requirements.lock
RUN /opt/lasersell-bot/bin/pip install --require-hashes --only-binary=:all: -r /tmp/requirements.lock
COPY pyproject.toml README.md /src/
COPY lasersell_bot /src/lasersell_bot
RUN /opt/lasersell-bot/bin/pip install --no-deps /src

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 lasersell \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/lasersell-bot --shell /usr/sbin/nologin lasersell \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/lasersell-bot \
    && install -d -m 0755 /etc/lasersell-bot
COPY --from=build /opt/lasersell-bot /opt/lasersell-bot
ENV PATH=/opt/lasersell-bot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STATE_DIRECTORY=/var/lib/lasersell-bot \
    LASERSELL_HEALTH_URL=http://127.0.0.1:9464/healthz \
    LASERSELL_CONTAINER=docker
USER 10001:10001
WORKDIR /var/lib/lasersell-bot
VOLUME /var/lib/lasersell-bot
EXPOSE 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request as u; sys.exit(u.urlopen(os.environ['LASERSELL_HEALTH_URL'], timeout=4).status != 200)"]
ENTRYPOINT ["lasersell-bot"]
CMD ["run", "--config", "/etc/lasersell-bot/config.toml"]
