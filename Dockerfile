# Recoup worker and starter in one small, non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ ./worker ./starter

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /out/starter /usr/local/bin/
# Prompts are embedded; mount a directory here and set PROMPTS_DIR=/prompts to override them.
VOLUME ["/prompts"]
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/worker"]
