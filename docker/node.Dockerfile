# The roster-node image (one registry member). Build from the repository root:
#   docker build -f docker/node.Dockerfile -t roster-node:0.1.0 .
# Code generation uses a pure-Rust protobuf compiler: the build needs nothing but cargo.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p roster-node --bin roster-node \
    && cp target/release/roster-node /roster-node

FROM debian:bookworm-slim
COPY --from=build /roster-node /usr/local/bin/roster-node
# The operator mounts the Raft data volume here (ROSTER_DATA_DIR).
RUN mkdir -p /var/lib/roster && chown 65532:65532 /var/lib/roster
USER 65532:65532
WORKDIR /var/lib/roster
ENV ROSTER_DATA_DIR=/var/lib/roster
EXPOSE 8848 9848 9849
ENTRYPOINT ["/usr/local/bin/roster-node"]
