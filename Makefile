# The README's test command is `make test`; CI (.ci/run) calls exactly that.
# It starts what the service-backed suites need (PostgreSQL) and fails,
# rather than skips, when a prerequisite cannot be had.

GO ?= go

.PHONY: test test-short vet fmt bench

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
