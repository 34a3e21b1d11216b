# Cairn worker image (used by docker-compose.yml as `cairn-worker`).
# bin/cairn.js runs the TypeScript sources through tsx, so there is no build step.
# Node 22 (LTS); Node 20 is past end of life.
FROM node:22-slim

WORKDIR /app
ENV NODE_ENV=production

# Dependencies first so source edits do not invalidate this layer. This image runs the
# repository's example agents from their sources, so it keeps tsx (a devDependency since the
# package ships compiled code); the Temporal worker's native bridge ships glibc prebuilds, which is
# why this is a Debian (slim) image rather than Alpine.
COPY package.json package-lock.json ./
RUN npm ci --include=dev && npm cache clean --force

COPY . .

# The files stay root-owned and read-only to the worker: run the bin with node directly (npx would
# try to install the package and chmod its bin, which fails as USER node).
USER node
CMD ["node", "/app/bin/cairn.js", "worker"]
