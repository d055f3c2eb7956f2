# syntax=docker/dockerfile:1
# MapLeakProbe: the `mapleak` CLI and Kubernetes operator.
#
#   docker build -t mapleakprobe:dev .
#   docker run --rm mapleakprobe:dev --help
#   docker run --rm --read-only --tmpfs /tmp -p 8080:8080 mapleakprobe:dev operator --redis-url redis://redis:6379
#
# build:   all dependencies, compiles TypeScript to dist/
# deps:    production dependencies only (no typescript, eslint, @types)
# runtime: distroless Node.js (no shell, no npm), uid/gid 65532, nothing
#          written at run time (works with readOnlyRootFilesystem: true)
# test/image/image.test.ts replays these stages without a container engine.
ARG NODE_MAJOR=24

FROM node:${NODE_MAJOR}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# The build copies uPlot next to the HTML report module (scripts/bundle-report-assets.mjs).
COPY scripts/bundle-report-assets.mjs ./scripts/
RUN npm run build

FROM node:${NODE_MAJOR}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="mapleakprobe" \
      org.opencontainers.image.description="Finds Go map memory that is never given back: the mapleak CLI and Kubernetes operator." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
ENV NODE_ENV=production \
    HOME=/tmp
# COPY before WORKDIR: the base image's user is already 65532, and a
# directory WORKDIR creates would belong to it; COPY makes /app root-owned.
# package.json carries "type": "module", which dist/ needs.
COPY --from=deps /app/package.json /app/package.json
COPY --from=deps /app/node_modules /app/node_modules
COPY --from=build /src/dist/src /app/dist/src
WORKDIR /app
USER 65532:65532
EXPOSE 8080
# Distroless keeps node at /nodejs/bin/node, which is not on its PATH.
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/src/cli/main.js"]
CMD ["operator"]
