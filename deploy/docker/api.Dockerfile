# confab-api image: the API, the browser client it serves (web/) and its one-off commands
# (`migrate`, `keygen`, `admin create`). Build from the repository root:
#   docker build -f deploy/docker/api.Dockerfile -t confab-api .
# Dependencies are compiled in their own layer (cargo-chef), so a change to Confab's code
# rebuilds only Confab's crates. The gateway and recorder Dockerfiles follow the same pattern.

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
RUN cargo chef cook --release --locked --recipe-path recipe.json -p confab-api
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY vendor vendor
COPY services services
COPY tests/bench tests/bench
COPY tests/stack tests/stack
COPY proto proto
# Embedded into the binary by sqlx::migrate!, so the image needs no migrations directory.
COPY migrations migrations
RUN cargo build --release --locked -p confab-api --bin confab-api

FROM debian:${DEBIAN_RELEASE}-slim
# ca-certificates: TLS to S3 and webhook receivers (it also brings the openssl CLI, which
# deploy/compose.yaml uses to make a development certificate).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# One unprivileged user with the same uid in all three images, so volumes they share (keys,
# recordings) need no ownership changes.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/confab --no-create-home confab \
 && mkdir -p /var/lib/confab/recordings /var/lib/confab/keys \
 && chown -R confab:confab /var/lib/confab
COPY --from=builder /src/target/release/confab-api /usr/local/bin/confab-api
COPY deploy/docker/healthcheck /usr/local/bin/confab-healthcheck
COPY web /usr/share/confab/web
ENV CONFAB_BIND=0.0.0.0:8080 \
    CONFAB_WEB_DIR=/usr/share/confab/web \
    CONFAB_RECORDINGS_DIR=/var/lib/confab/recordings
USER 10001:10001
WORKDIR /var/lib/confab
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["confab-healthcheck", "/readyz"]
ENTRYPOINT ["confab-api"]
CMD ["serve"]
