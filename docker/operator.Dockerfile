# The roster-operator image. Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t roster-operator:0.1.0 .
# Pure Rust (rustls with ring): the build needs nothing but cargo.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p roster-operator --bin roster-operator \
    && cp target/release/roster-operator /roster-operator

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /roster-operator /usr/local/bin/roster-operator
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/roster-operator"]
