#!/usr/bin/env bash
# Prints, for every base image the stack uses (the Dockerfiles' FROM lines and docker-compose.yml's
# `image:` lines that are not built here), the reference pinned by digest, to paste in place of
# the tag: `FROM python:3.11.11-slim-bookworm@sha256:...`, `image: postgres:15.10@sha256:...`.
# A digest names the exact bytes pulled; a tag can be moved to other bytes by whoever controls it.
#
#   tools/pin-images.sh        needs docker with buildx and access to the registries
#
# It only reads the registries; it changes no file, so the pins can be reviewed before they are
# written. Already pinned references are printed as they are.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

images() {
  sed -n 's/^FROM \([^ ]*\).*/\1/p' "$root/Dockerfile" "$root/deploy/kafka/Dockerfile"
  sed -n 's/^ *image: *\([^ #]*\).*/\1/p' "$root/docker-compose.yml" | grep -v ':local$'
}

for image in $(images | sort -u); do
  if [[ "$image" == *@sha256:* ]]; then
    echo "$image"; continue
  fi
  # The index digest (a multi-platform list), as `docker pull` resolves the tag today.
  digest="$(docker buildx imagetools inspect "$image" --format '{{json .Manifest}}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["digest"])')"
  echo "$image@$digest"
done
