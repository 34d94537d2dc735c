# syntax=docker/dockerfile:1
# Multi-stage: build with dev dependencies, run with production ones only, as a non-root user.
# Node 24 LTS (the CI also tests Node 20 until it is dropped; see README "Supported Node versions").
FROM node:24-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 is a native addon: node-gyp needs python3, make and g++.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY bin ./bin
COPY drizzle ./drizzle
# `npm ci` builds dist/ through the `prepare` script; then drop the dev dependencies.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    ARTIFACT_STORE_PORT=5000 \
    ARTIFACT_STORE_DATA_DIR=/var/lib/artifact-store
WORKDIR /app
RUN groupadd --system registry && useradd --system --gid registry --home-dir /var/lib/artifact-store registry \
 && mkdir -p /var/lib/artifact-store && chown registry:registry /var/lib/artifact-store && chmod 0700 /var/lib/artifact-store
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/drizzle ./drizzle
COPY --from=build /app/bin ./bin
COPY package.json ./
USER registry
VOLUME ["/var/lib/artifact-store"]
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.ARTIFACT_STORE_PORT||5000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# node is PID 1 and gets SIGTERM itself: in-flight requests finish and the database closes cleanly.
# On first start it writes the admin password to /var/lib/artifact-store/initial-admin-password:
#   docker exec <container> cat /var/lib/artifact-store/initial-admin-password
STOPSIGNAL SIGTERM
CMD ["node", "bin/artifact-store.js", "serve"]
