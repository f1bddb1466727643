# The phasm image: the static binary on an empty base.
#
# No registry is reachable from where this is built, so nothing is pulled:
# the binary is built on the host (CGO_ENABLED=0, see `make docker`) and
# copied with CA certificates (when the host has them) into the build
# context, which holds:
#
#   phasm    the static binary
#   certs/   ca-certificates.crt, or nothing
#   data/    an empty directory: the node's data volume mount point
#   tmp/     an empty directory: `phasm load`'s temporary data
FROM scratch
COPY phasm /phasm
COPY certs/ /etc/ssl/certs/
COPY --chown=65532:65532 data/ /data/
COPY --chown=65532:65532 tmp/ /tmp/
ENV TMPDIR=/tmp
USER 65532:65532
# Admin HTTP API (`phasm node --admin 0.0.0.0:7480`), node-to-node and Raft
# (used when the cluster lands).
EXPOSE 7480 7000 7001
VOLUME ["/data"]
ENTRYPOINT ["/phasm"]
CMD ["--help"]
