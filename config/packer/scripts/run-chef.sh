#!/usr/bin/env bash
# On the build instance (root): converge the app's run list in local mode with the run's attributes.
# Environment (from the Packer template): CHEF_RUN_LIST (comma-separated recipe[…]/role[…]),
# CHEF_ATTRIBUTES (JSON file, deleted afterwards: it may hold secrets), COOKBOOK_PATH, CINC_VERSION.
set -euo pipefail
: "${CHEF_RUN_LIST:?}" "${CHEF_ATTRIBUTES:?}" "${COOKBOOK_PATH:?}" "${CINC_VERSION:?}"
trap 'rm -f -- "$CHEF_ATTRIBUTES" /tmp/ami-pipeline-solo.*.rb' EXIT
chmod 600 "$CHEF_ATTRIBUTES"

if command -v cinc-solo >/dev/null; then
  solo=cinc-solo
elif command -v chef-solo >/dev/null; then
  solo=chef-solo
else
  # The SOE image normally ships Cinc; otherwise install the pinned major version.
  installer="$(mktemp /tmp/cinc-install.XXXXXXXX)"
  curl --fail --silent --show-error --location --proto '=https' --output "$installer" https://omnitruck.cinc.sh/install.sh
  bash "$installer" -v "$CINC_VERSION"
  rm -f -- "$installer"
  solo=cinc-solo
fi

# The config reads the cookbook path from the environment: no value is written into Ruby source.
solo_rb="$(mktemp /tmp/ami-pipeline-solo.XXXXXXXX.rb)"
printf '%s\n' "cookbook_path [ENV.fetch('COOKBOOK_PATH')]" >"$solo_rb"
export COOKBOOK_PATH
"$solo" --config "$solo_rb" --no-color --chef-license accept-silent \
  --json-attributes "$CHEF_ATTRIBUTES" \
  --override-runlist "$CHEF_RUN_LIST"
