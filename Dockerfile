# Latchkey: build with the dev dependencies, run with production dependencies only.
# The build steps are the npm scripts CI runs (`npm ci`, `npm run build`); CI then starts the built
# dist/server.js, laid out as in the runtime stage below (test/foundation/build.test.ts).
# BASE_IMAGE: where no registry can be reached, scripts/build-image.sh makes an equivalent base
# (Debian bookworm minbase + Node 22) and passes it here. Node 22: the dependencies need it (kysely
# 0.29 and cookie 2 declare node >=22; package.json engines >=22.12).
ARG BASE_IMAGE=node:22-slim

FROM ${BASE_IMAGE} AS builder
WORKDIR /app
# argon2 is compiled from source here (--build-from-source: its prebuilt linux-x64 binary crashed
# Node 20; on Node 22 it loads, and without the flag nothing would be compiled): node-gyp needs these
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild argon2 --build-from-source
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build

FROM ${BASE_IMAGE} AS runtime
# MALLOC_MMAP_THRESHOLD_: large blocks (argon2's 19 MiB, the crypto threads' buffers) are then always
# mmapped and given back when freed; with glibc's adaptive threshold each thread keeps them (RSS after
# the benchmark: 121 MB instead of about 205 MB)
ENV NODE_ENV=production \
    MALLOC_MMAP_THRESHOLD_=131072 \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data \
    PATH=/app/bin:$PATH
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=builder /app/dist ./dist
# the argon2 binary compiled by the builder (no compiler here; install scripts are not run)
COPY --from=builder /app/node_modules/argon2/build ./node_modules/argon2/build
COPY migrations ./migrations
COPY bin ./bin
COPY scripts/ensure-built.js scripts/start.js ./scripts/
RUN groupadd --system --gid 10001 latchkey \
 && useradd --system --uid 10001 --gid latchkey --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin latchkey \
 && mkdir -p /data \
 && chown latchkey:latchkey /data \
 && chmod 0700 /data
USER latchkey:latchkey
# The embedded database (DATABASE_URL unset) lives in /data. Its key-encryption key, keys/kek under
# the working directory, must outlive the container just as the data does, so the server runs from
# /data and the KEK lands in /data/keys/kek. With DATABASE_URL=postgres://… give LATCHKEY_KEK or
# LATCHKEY_KEK_FILE (e.g. a mounted secret) instead; nothing is then written to /data.
VOLUME ["/data"]
WORKDIR /data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz').then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "/app/dist/server.js"]
