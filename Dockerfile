# ward's container image: the static-ish `ward` binary on a distroless base.
#
#   docker build -t ward:0.1.0 .
#
# Build stage: the Rust toolchain on Debian 12, a locked release build.
# Runtime stage: distroless "cc" (glibc, libgcc, CA certificates for JWKS
# over https; no shell, no package manager), as the image's non-root user
# (65532, the uid the Helm chart runs as). Only the binary is copied.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
# A workspace member: cargo reads its manifest even for `--bin ward` (the
# module itself is not in the image yet: docs/envoy-module.md).
COPY envoy-module envoy-module
RUN cargo build --release --locked --bin ward \
    && cp target/release/ward /ward

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /ward /ward
USER nonroot:nonroot
# 9001: ext_authz gRPC; 9901: admin (/healthz, /readyz, /metrics).
EXPOSE 9001 9901
ENTRYPOINT ["/ward"]
CMD ["serve", "--config", "/etc/ward/ward.yaml"]
