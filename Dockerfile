# Recoup worker and starter in one small, non-root image (distroless: no shell).
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t recoup:dev .
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ ./worker ./starter \
 && mkdir -p /out/codec-tls

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /out/starter /usr/local/bin/
# Where compose keeps the codec server's self-signed certificate (CODEC_TLS_SELF_SIGNED_DIR),
# owned by nonroot so that a named volume mounted there is writable.
COPY --from=build --chown=65532:65532 /out/codec-tls /var/lib/recoup/codec-tls
# The prompts are built in; mount a directory at /prompts and set PROMPTS_DIR=/prompts to override them.
VOLUME ["/prompts"]
USER nonroot:nonroot
EXPOSE 9090
# The worker answers /healthz on METRICS_ADDR (:9090); other commands override this check.
HEALTHCHECK --interval=15s --timeout=5s --retries=4 CMD ["/usr/local/bin/starter", "probe", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/worker"]
