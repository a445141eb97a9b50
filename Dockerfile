# Static binaries (pure Go: CGO off), on a distroless base with no shell.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/smsflow ./cmd/smsflow \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/sms-agent ./cmd/sms-agent \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/smsflow /smsflow
# The agent ships in the image for operators to copy to source servers:
#   docker create --name a smsflow && docker cp a:/sms-agent . && docker rm a
COPY --from=build /out/sms-agent /sms-agent
# The data volume must be writable by the nonroot user (uid 65532).
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/smsflow"]
CMD ["web"]
