# Cairn worker image (used by docker-compose.yml as `cairn-worker`).
# bin/cairn.js runs the TypeScript sources through tsx, so there is no build step.
FROM node:20-slim

WORKDIR /app
ENV NODE_ENV=production

# Dependencies first so source edits do not invalidate this layer. This image runs the
# repository's example agents from their sources, so it keeps tsx (a devDependency since the
# package ships compiled code); the Temporal worker's native bridge ships glibc prebuilds, which is
# why this is a Debian (slim) image rather than Alpine.
COPY package.json package-lock.json ./
RUN npm ci --include=dev && npm cache clean --force

COPY . .
# Expose the package's own bin as node_modules/.bin/cairn so `npx cairn …` resolves locally on any
# npm version instead of looking the name up on the registry.
RUN ln -sf ../../bin/cairn.js node_modules/.bin/cairn

USER node
CMD ["node", "bin/cairn.js", "worker"]
