# syntax=docker/dockerfile:1
# roomkey: `docker build -t roomkey .`, then `docker run roomkey api|worker|all`
# (see docker-compose.yml for the environment it needs).
ARG NODE_IMAGE=node:20.20-bookworm-slim

FROM ${NODE_IMAGE} AS base
# The npm that wrote package-lock.json; it enforces package.json "allowScripts"
# (the image's bundled npm 10 ignores that field and runs every install script).
RUN npm install --global --no-fund --no-audit --loglevel=error npm@11.19.1
WORKDIR /app

FROM base AS build
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-fund --no-audit
COPY tsconfig.json tsconfig.build.json ./
# src/gen is committed: no code generation here.
COPY src ./src
COPY workers ./workers
RUN npm run build

FROM base AS deps
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-fund --no-audit && npm cache clean --force

FROM base AS runtime
ENV NODE_ENV=production
# Root-owned and read-only to the `node` user; package.json carries "type": "module".
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
EXPOSE 50051 8080 9464
# Health: `node dist/src/health/healthcheck.js` (api) or `node dist/src/health/healthcheck.js worker`.
ENTRYPOINT ["node", "dist/src/main.js"]
CMD ["api"]
