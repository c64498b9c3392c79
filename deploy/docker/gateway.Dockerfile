# confab-gateway image: WebSocket signaling (GET /v1/signal), stateless apart from Redis, so run
# as many as the load needs. Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t confab-gateway .
# Same build pattern as api.Dockerfile (cargo-chef caches the dependency layer).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
# protoc: crates/protocol's build script generates the protobuf types.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src

FROM chef AS planner
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY vendor vendor
COPY services services
COPY tests/bench tests/bench
COPY tests/stack tests/stack
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p confab-gateway
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY vendor vendor
COPY services services
COPY tests/bench tests/bench
COPY tests/stack tests/stack
COPY proto proto
RUN cargo build --release --locked -p confab-gateway --bin confab-gateway

# No extra packages: the gateway makes no TLS connections (the JWKS URL is plain http inside
# the deployment) and bash, for the health check, is in the base image.
FROM debian:${DEBIAN_RELEASE}-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/confab --no-create-home confab
COPY --from=builder /src/target/release/confab-gateway /usr/local/bin/confab-gateway
COPY deploy/docker/healthcheck /usr/local/bin/confab-healthcheck
ENV CONFAB_BIND=0.0.0.0:8081
USER 10001:10001
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["confab-healthcheck", "/readyz"]
ENTRYPOINT ["confab-gateway"]
