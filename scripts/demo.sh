#!/usr/bin/env bash
# Runs the product locally with no cluster: installs what is missing (Debian packages, Node 24, npm
# packages; the lab kernel and the kube-apiserver build are fetched and cached on first use), starts a real
# kube-apiserver on 127.0.0.1 and boots the lab VM with the controller and agents (scripts/demo.ts).
# `bash scripts/demo.sh --standalone`: the agent alone, from YAML files, no Kubernetes at all.
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
if [ "${1:-}" = "--standalone" ]; then
  exec node --no-warnings test/vm/run.ts --timeout 1200 -- node --no-warnings scripts/demo-standalone-lab.ts
fi
exec node --no-warnings scripts/demo.ts
