# confab-recorder image: takes recording jobs from Redis, joins calls as a hidden WebRTC peer and
# writes one WebM per participant (libwebm, C++, linked statically; libstdc++ comes from the
# runtime image). Build from the repository root:
#   docker build -f deploy/docker/recorder.Dockerfile -t confab-recorder .
# Same build pattern as api.Dockerfile (cargo-chef caches the dependency layer).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
# protoc: crates/protocol's build script; g++ for libwebm is in the rust image already.
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
RUN cargo chef cook --release --locked --recipe-path recipe.json -p confab-recorder
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY vendor vendor
COPY services services
COPY tests/bench tests/bench
COPY tests/stack tests/stack
COPY proto proto
RUN cargo build --release --locked -p confab-recorder --bin confab-recorder

FROM debian:${DEBIAN_RELEASE}-slim
# libstdc++6: libwebm's C++ runtime. ca-certificates: TLS to S3.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libstdc++6 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Same uid as the API image: with local storage both use one recordings volume.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/confab --no-create-home confab \
 && mkdir -p /var/lib/confab/recordings /var/lib/confab/keys \
 && chown -R confab:confab /var/lib/confab
COPY --from=builder /src/target/release/confab-recorder /usr/local/bin/confab-recorder
COPY deploy/docker/healthcheck /usr/local/bin/confab-healthcheck
ENV CONFAB_BIND=0.0.0.0:8090 \
    CONFAB_RECORDINGS_DIR=/var/lib/confab/recordings
USER 10001:10001
WORKDIR /var/lib/confab
# 8090: health and metrics only. Media is WebRTC over UDP on ports the OS picks (webrtc-rs has
# no fixed range here), so it cannot be EXPOSEd: see docs/operations.md, "Recorder media".
EXPOSE 8090
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["confab-healthcheck", "/readyz"]
ENTRYPOINT ["confab-recorder"]
