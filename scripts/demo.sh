#!/usr/bin/env bash
# Runs the product locally with no cluster: installs what is missing (Debian packages, Node 24, npm
# packages, the lab kernel), boots the lab VM and runs the LVS-DR demo in it (scripts/demo-lab.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES=(qemu-system-x86 busybox-static ipvsadm iproute2 kmod iputils-arping ca-certificates)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH="$(bash scripts/setup-node.sh):$PATH"
[ -d node_modules ] || npm ci --no-audit --no-fund
exec node --no-warnings test/vm/run.ts --timeout 1200 -- node --no-warnings scripts/demo-lab.ts
