# confab-sfu image: the media server. Takes rooms from Redis, takes its seat in their calls
# through the gateways and forwards every participant's media, all of it on one UDP port.
# Build from the repository root:
#   docker build -f deploy/docker/sfu.Dockerfile -t confab-sfu .
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
RUN cargo chef cook --release --locked --recipe-path recipe.json -p confab-sfu
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY vendor vendor
COPY services services
COPY tests/bench tests/bench
COPY tests/stack tests/stack
COPY proto proto
RUN cargo build --release --locked -p confab-sfu --bin confab-sfu

FROM debian:${DEBIAN_RELEASE}-slim
# No runtime packages: DTLS is rustls (ring, linked statically) and the SFU reaches the gateways
# with plain ws:// inside the deployment, so it needs no CA certificates.
# Same uid as the other images: the keys volume is shared.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/confab --no-create-home confab
COPY --from=builder /src/target/release/confab-sfu /usr/local/bin/confab-sfu
COPY deploy/docker/healthcheck /usr/local/bin/confab-healthcheck
ENV CONFAB_BIND=0.0.0.0:8092 \
    CONFAB_MEDIA_BIND=0.0.0.0:7882
USER 10001:10001
# 8092: health and metrics only. 7882/udp: all media of all rooms (ICE, DTLS, SRTP). Publish it
# with the same number on the host (-p 7882:7882/udp) and set CONFAB_MEDIA_ADDRESS to the
# host's address as browsers reach it: docs/operations.md, "Media server (`confab-sfu`)".
EXPOSE 8092
EXPOSE 7882/udp
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["confab-healthcheck", "/readyz"]
ENTRYPOINT ["confab-sfu"]
