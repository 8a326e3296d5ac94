# syntax=docker/dockerfile:1
# One image, two binaries (and the kubectl plugin, for `kubectl exec ... -- kubectl-lvs export -f -`):
#   lvs-controller  (node dist/controller/main.js)  the Deployment; runs as the non-root default user
#   lvs-agent       (node dist/agent/main.js)       the DaemonSets; their pods run it as root, privileged
#   kubectl-lvs     (node dist/cli/main.js)         status / import / export
# There is no ENTRYPOINT: the pods set `command`.
#
#   docker build -t ghcr.io/lvs-operator/lvs-operator:0.1.0 .
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Dependencies first, so that a source change does not reinstall them. netlink ships prebuilt
# N-API binaries (linux-x64, arm64, arm, ia32): no compiler is needed.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY crds ./crds
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM ${NODE_IMAGE}
# iproute2: ip(8) for debugging VIPs; iputils-arping: gratuitous ARP on VIP takeover; ipv6toolkit: na6,
# unsolicited neighbour advertisements for IPv6 VIPs; kmod: modprobe ip_vs and the scheduler modules;
# ipvsadm: to inspect the table the agent programs (kubectl exec).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iproute2 iputils-arping ipv6toolkit kmod ipvsadm \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 65532 lvs \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin lvs
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/crds ./crds
RUN printf '#!/bin/sh\nexec node /app/dist/controller/main.js "$@"\n' > /usr/local/bin/lvs-controller \
 && printf '#!/bin/sh\nexec node /app/dist/agent/main.js "$@"\n' > /usr/local/bin/lvs-agent \
 && printf '#!/bin/sh\nexec node /app/dist/cli/main.js "$@"\n' > /usr/local/bin/kubectl-lvs \
 && chmod 0755 /usr/local/bin/lvs-controller /usr/local/bin/lvs-agent /usr/local/bin/kubectl-lvs
ENV NODE_ENV=production
USER 65532:65532
ENTRYPOINT []
CMD ["lvs-agent", "--help"]
LABEL org.opencontainers.image.title="lvs-operator" \
      org.opencontainers.image.description="Kubernetes operator for Linux Virtual Server (IPVS): lvs-controller and lvs-agent" \
      org.opencontainers.image.licenses="Apache-2.0"
