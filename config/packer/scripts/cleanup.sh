#!/usr/bin/env bash
# On the build instance (root), last: leave nothing of the build in the image.
set -euo pipefail
rm -rf /tmp/ami-pipeline-* /var/chef/cache /var/cinc/cache /root/.chef /root/.cinc
# A fresh identity and fresh host keys for every instance launched from the AMI.
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
if command -v cloud-init >/dev/null; then cloud-init clean --logs; fi
truncate -s 0 /etc/machine-id
find /var/log -type f -name '*.log' -exec truncate -s 0 {} +
rm -f /root/.bash_history /home/*/.bash_history
