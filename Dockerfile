# The hub's image: every hub process (worker, support page, Folkeregister connector, CLI) runs
# from it with a different command. Built by docker-compose.yml; no build step needs the network
# beyond PyPI.
FROM python:3.11.11-slim-bookworm

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub ./hub
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /var/lib/nir-hub --create-home nir

USER nir
WORKDIR /var/lib/nir-hub
ENV NIR_DATA_DIR=/var/lib/nir-hub/faust \
    NIR_WEB_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
EXPOSE 6066 6067 6071 6072
CMD ["hub", "worker", "-l", "info"]
