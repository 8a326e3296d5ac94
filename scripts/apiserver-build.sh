#!/usr/bin/env bash
# Builds the integration-test control plane (test/apiserver/harness: embedded etcd +
# kube-apiserver from the k8s.io/kubernetes Go modules) unless it is already cached at
# ${LVS_CACHE_DIR:-$HOME/.cache/lvs-operator}/apiserver/<hash>/lvs-test-apiserver.
# Prints {"path":...,"built":bool,"ms":...}. Needs Go >= 1.25 (PATH, /usr/local/go/bin or $GO)
# and Node 24; modules come from GOPROXY. A cold build takes several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! node --version | grep -q '^v2[4-9]\.'; then
  PATH="$(bash scripts/setup-node.sh):$PATH"
fi
exec node --experimental-strip-types --no-warnings test/apiserver/build.ts "$@"
