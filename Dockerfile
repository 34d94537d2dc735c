# syntax=docker/dockerfile:1
# Multi-stage: build with dev dependencies, run with production ones only, as a non-root user.
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY drizzle ./drizzle
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    ARTIFACT_STORE_PORT=5000 \
    ARTIFACT_STORE_DATA_DIR=/var/lib/artifact-store
WORKDIR /app
RUN groupadd --system registry && useradd --system --gid registry --home-dir /var/lib/artifact-store registry \
 && mkdir -p /var/lib/artifact-store && chown registry:registry /var/lib/artifact-store
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/drizzle ./drizzle
COPY package.json ./
USER registry
VOLUME ["/var/lib/artifact-store"]
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.ARTIFACT_STORE_PORT||5000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# SIGTERM lets in-flight requests finish and closes the database cleanly.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
