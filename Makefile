# The README's test command is `make test`; CI (.ci/run) calls exactly that.
# It starts what the service-backed suites need (PostgreSQL) and fails,
# rather than skips, when a prerequisite cannot be had.

GO ?= go

.PHONY: test test-short vet fmt bench proto phasm docker docker-postgres

test:
	./scripts/test.sh

# test-short: what plain `go test ./...` runs (service-backed suites skip).
test-short:
	$(GO) test ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./machine/... ./examples/...
	$(GO) test -run '^$$' -bench . -benchtime 3s ./persistence/pebblestore/
	PHASM_BENCH_CLIENTS=128 $(GO) test -run '^$$' -bench 'BankPebble$$|BankNaive|PebbleRaw|ColdActivation' -benchtime 100000x ./actor/

# proto: regenerate the remote envelope (needs protoc and protoc-gen-go
# v1.36.12; the generated file is committed, so builds need neither).
proto:
	cd actor/wire && protoc --go_out=. --go_opt=paths=source_relative wire.proto

# phasm: the binary, static (CGO_ENABLED=0), in bin/phasm.
phasm:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/phasm ./cmd/phasm

# docker: the phasm:dev image, FROM scratch with the host-built static binary
# (no registry is reachable: nothing is pulled). See docs/docker.md.
PHASM_IMAGE ?= phasm:dev
docker:
	./cmd/phasm/docker/build-image.sh $(PHASM_IMAGE)

# docker-postgres: a local PostgreSQL image for docker-compose.yml, built from
# Debian's packages with debootstrap (no base image is pulled). See docs/docker.md.
PHASM_PG_IMAGE ?= phasm-postgres:15
docker-postgres:
	./cmd/phasm/docker/build-postgres-image.sh $(PHASM_PG_IMAGE)
