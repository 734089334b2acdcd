# The hub's image: every hub process (worker, support page, Folkeregister connector, CLI) runs
# from it with a different command. Built by docker-compose.yml; no build step needs the network
# beyond PyPI.
# Pinned by tag only: a digest is never guessed, and no registry was reachable where this was
# written. tools/pin-images.sh prints each base image's digest (docker buildx imagetools inspect)
# to write as FROM python:3.11.11-slim-bookworm@sha256:<digest>.
FROM python:3.11.11-slim-bookworm

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub ./hub
# pg_dump and pg_restore (Debian's PostgreSQL 15 client, the server's version in compose) for
# `hub backup` and `hub restore` on PostgreSQL. The mount points of the volumes a hub service
# writes (kafka-access: the sources' passwords; the Maskinporten stand-in: its signing key;
# backup: the register's backups), owned by nir and closed to others: Docker gives a new named
# volume the owner and mode of the directory it is mounted on.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /var/lib/nir-hub --create-home nir \
    && install -d -o nir -m 700 /run/nir/kafka/secrets /var/lib/nir-hub/maskinporten /var/lib/nir-hub/backups

USER nir
WORKDIR /var/lib/nir-hub
ENV NIR_DATA_DIR=/var/lib/nir-hub/faust \
    NIR_WEB_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
EXPOSE 6066 6067 6071 6072
CMD ["hub", "worker", "-l", "info"]
