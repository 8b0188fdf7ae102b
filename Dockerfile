# Caelus's image for those who build with Docker (or Podman/Buildah):
#   docker build -t caelus:0.1.0 .
# The same image, without a daemon: scripts/image (see README, "Container image").
# Runs as the non-root user 65532; the chart sets a read-only root filesystem
# and mounts /var/lib/caelus (chart cache) and /tmp.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The Helm engine ships in the helm-python-sdk wheel; scripts/install-helm-lib
# takes libhelm_c.so out of it into .tools/helm/.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-pip >/dev/null \
    && scripts/install-helm-lib \
    && cargo build --release --locked --bin caelus

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 caelus \
    && useradd --uid 65532 --gid 65532 --home-dir /var/lib/caelus --shell /usr/sbin/nologin caelus \
    && install -d -o 65532 -g 65532 /var/lib/caelus
COPY --from=build /src/target/release/caelus /usr/local/bin/caelus
COPY --from=build /src/.tools/helm/libhelm_c.so /usr/lib/caelus/libhelm_c.so
ENV CAELUS_HELM_LIB=/usr/lib/caelus/libhelm_c.so \
    CAELUS_DATA_DIR=/var/lib/caelus \
    CAELUS_LISTEN=0.0.0.0:8080 \
    HOME=/var/lib/caelus
WORKDIR /var/lib/caelus
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/caelus"]
CMD ["server"]
