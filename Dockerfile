# ward's container image: the static-ish `ward` binary on a distroless base.
#
#   docker build -t ward:0.1.0 .
#
# Build stage: the Rust toolchain on Debian 12, a locked release build.
# Runtime stage: distroless "cc" (glibc, libgcc, CA certificates for JWKS
# over https; no shell, no package manager), as the image's non-root user
# (65532, the uid the Helm chart runs as). Only the binary and the Envoy
# module are copied.
#
# The module (libward_envoy.so, docs/envoy-module.md) sits beside the
# binary, where `ward install-module DIR` takes it from: the Helm chart's
# gateway mode with gateway.module.enabled runs that in an init container
# to hand it to Envoy's container (this image has no shell to copy it). It
# is built here on Debian 12 (glibc 2.36): the Envoy image that loads it
# must provide glibc 2.36 or newer (a Debian 12 or newer base does).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY envoy-module envoy-module
RUN cargo build --release --locked -p ward --bin ward \
    && cargo build --release --locked -p ward-envoy-module \
    && cp target/release/ward /ward \
    && cp target/release/libward_envoy.so /libward_envoy.so

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /ward /ward
COPY --from=build /libward_envoy.so /libward_envoy.so
# Numeric, so Kubernetes' runAsNonRoot can check it without a pod-level
# runAsUser (the sidecar container runs in a pod the chart does not own).
USER 65532:65532
# 9001: ext_authz gRPC; 9901: admin (/healthz, /readyz, /metrics).
EXPOSE 9001 9901
ENTRYPOINT ["/ward"]
CMD ["serve", "--config", "/etc/ward/ward.yaml"]
