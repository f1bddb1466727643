# The README's test command is `make test`; CI (.ci/run) calls exactly that.
# It starts what the service-backed suites need (PostgreSQL) and fails,
# rather than skips, when a prerequisite cannot be had.

GO ?= go

.PHONY: test test-short vet fmt bench proto phasm docker docker-postgres faults-short faults-long

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

# The fault suite (cmd/phasm/internal/faults, build tag `faults`): three
# `phasm node` containers with mutual TLS, PostgreSQL on the host, the bank
# and dentist loads under a seeded nemesis (kills, leader kills,
# partitions, pauses, rolling restarts, PostgreSQL crash-restarts), and a
# checker. Needs docker and root (network namespaces, the PostgreSQL OS
# user). SEED reproduces a schedule; without it one is drawn and printed.
# faults-short: about 5 minutes, 20 faults of every kind; `make test` runs it.
SEED ?=
FAULTS_REPORT ?=
faults-short:
	PHASM_FAULTS_SEED=$(SEED) PHASM_FAULTS_MIN=20 PHASM_FAULTS_REPORT=$(FAULTS_REPORT) \
		PHASM_FAULTS_COMMAND="make faults-short SEED={seed}" \
		$(GO) test -tags faults -count=1 -v -timeout 30m -run '^TestFaults$$' ./cmd/phasm/internal/faults/

# faults-long: at least FAULTS faults and DURATION of them (defaults 100
# and 30m); the report goes to docs/faults/seed-SEED/.
FAULTS ?= 100
DURATION ?= 30m
faults-long:
	@test -n "$(SEED)" || { echo "faults-long needs SEED=N (the report is committed with it)"; exit 2; }
	PHASM_FAULTS_SEED=$(SEED) PHASM_FAULTS_MIN=$(FAULTS) PHASM_FAULTS_DURATION=$(DURATION) \
		PHASM_FAULTS_REPORT=$(CURDIR)/docs/faults/seed-$(SEED) \
		PHASM_FAULTS_COMMAND="make faults-long SEED={seed} FAULTS=$(FAULTS) DURATION=$(DURATION)" \
		$(GO) test -tags faults -count=1 -v -timeout 3h -run '^TestFaults$$' ./cmd/phasm/internal/faults/
