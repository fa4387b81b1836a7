#!/usr/bin/env bash
# On the build instance (root): fetch the release artifact, check its sha256, unpack it.
# Environment (from the Packer template): ARTIFACT_S3_URI ARTIFACT_SHA256 ARTIFACT_DIR AWS_DEFAULT_REGION.
# The artifact is a tar.gz holding the application and its vendored cookbooks (cookbooks/).
set -euo pipefail
: "${ARTIFACT_S3_URI:?}" "${ARTIFACT_SHA256:?}" "${ARTIFACT_DIR:?}"

download="$(mktemp /tmp/ami-pipeline-artifact.XXXXXXXX)"
trap 'rm -f -- "$download"' EXIT

aws s3 cp --only-show-errors "$ARTIFACT_S3_URI" "$download"
printf '%s  %s\n' "$ARTIFACT_SHA256" "$download" | sha256sum --check --strict --quiet ||
  {
    echo "artifact $ARTIFACT_S3_URI does not match its sha256 $ARTIFACT_SHA256" >&2
    exit 1
  }

install -d -m 0755 "$ARTIFACT_DIR"
tar -xzf "$download" -C "$ARTIFACT_DIR" --no-same-owner
printf '%s\n' "$ARTIFACT_SHA256" >"$ARTIFACT_DIR/.sha256"
