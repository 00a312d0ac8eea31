# Multi-stage build: compile in the Rust image, run as a non-root user in a slim Debian image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY src ./src
COPY migrations ./migrations
COPY web ./web
COPY benches ./benches
COPY schema.graphql ./
RUN cargo build --release --locked --bin leadcache

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app --shell /usr/sbin/nologin leadcache \
    && mkdir -p /app/data && chown leadcache:leadcache /app/data
COPY --from=build /src/target/release/leadcache /usr/local/bin/leadcache
USER leadcache
WORKDIR /app
ENV LEAD_DATABASE_PATH=/app/data/leads.db \
    LEADCACHE_BACKUP_DIR=/app/data/backups \
    LEADCACHE_BIND=0.0.0.0:8080 \
    LOG_FORMAT=json
VOLUME /app/data
EXPOSE 8080
# Listening on 0.0.0.0 requires an API token: create one first with
#   docker run --rm -v leadcache:/app/data IMAGE leadcache token create --name admin --role admin
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["leadcache", "serve"]
