# syntax=docker/dockerfile:1
# lasersell-bot in a container.
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

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/lasersell-bot
COPY requirements.lock /tmp/requirements.lock
RUN /opt/lasersell-bot/bin/pip install --only-binary=:all: -r /tmp/requirements.lock
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
    LASERSELL_HEALTH_URL=http://127.0.0.1:9464/healthz
USER 10001:10001
WORKDIR /var/lib/lasersell-bot
VOLUME /var/lib/lasersell-bot
EXPOSE 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request as u; sys.exit(u.urlopen(os.environ['LASERSELL_HEALTH_URL'], timeout=4).status != 200)"]
ENTRYPOINT ["lasersell-bot"]
CMD ["run", "--config", "/etc/lasersell-bot/config.toml"]
