# tagcfg: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# Integration tests reach DynamoDB Local and moto through the real AWS SDK.
FEATURES := --features adapters/aws

.PHONY: run test test-unit lint fmt validate build deploy watch-image emulators lambda-invoke invoke-stream-publisher invoke-cache-refresher bench bench-compare build-tools fuzz clean-tools

## run: build and start the local all-in-one server (embedded store, no AWS, no Docker)
run:
	$(CARGO) run -p tagcfg -- serve

## test: the template validation and renderings (which deploy-check reads), then unit +
##       integration tests (installs and starts DynamoDB Local and moto itself)
test: validate build-tools
	infra/with-emulators.sh $(CARGO) test --workspace $(FEATURES)

## build-tools: protoc (Debian protobuf-compiler), which the etcd client of crates/bench is built with
build-tools:
	@. infra/tools.sh && need_debian_package protoc protobuf-compiler

## validate: template.yaml rendered through the SAM transform for every parameter combination
##           (target/rendered), then cfn-lint on the sources and each rendering, offline
validate:
	infra/validate.sh

## build: the three Lambda bootstraps through `sam build`, then checked (`cargo xtask check-bootstraps`).
##        ARCH=arm64 (the template's default) cross-compiles with zig from PyPI;
##        ARCH=x86_64 is the native fallback (then deploy with Architecture=x86_64).
ARCH ?= arm64
build:
	infra/sam-build.sh $(ARCH)

## deploy: `sam deploy` of what `make build` built; `--guided` the first time (docs/DEPLOY.md)
deploy:
	infra/sam-deploy.sh

## watch-image: the watch-server container image as an OCI layout in target/watch-server-image,
##              no container engine needed (ARCH=arm64 by default; push: docs/DEPLOY.md)
watch-image:
	infra/watch-image.sh $(ARCH)

## test-unit: the tests that need no emulator (AWS integration tests report themselves skipped)
test-unit: build-tools
	$(CARGO) test --workspace $(FEATURES)

## lint: formatting and clippy, warnings are errors
lint: build-tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(FEATURES) -- -D warnings

## fmt: format the code
fmt:
	$(CARGO) fmt --all

## emulators: start DynamoDB Local and moto and open a shell with the endpoints exported
emulators:
	infra/with-emulators.sh $$SHELL

## fuzz: every cargo-fuzz target for FUZZ_SECS seconds (default 60) from fuzz/corpus; a crash
##       fails and leaves its input in fuzz/artifacts/ (infra/fuzz.sh; never part of `make test`)
fuzz:
	infra/fuzz.sh

## bench: every benchmark (results and how to read them: docs/BENCHMARKS.md)
bench:
	$(CARGO) bench -p http-api --bench warm_path -- --noplot
	$(CARGO) bench -p tagcfg --bench watch
	$(CARGO) bench -p tagcfg --bench limits
	$(CARGO) bench -p stream-publisher --bench convert -- --noplot
	$(CARGO) build --release -p config-api
	@ls -l $${CARGO_TARGET_DIR:-target}/release/config-api | awk '{printf "config-api release binary (stripped): %.2f MiB\n", $$5 / 1048576}'
	$(CARGO) xtask cold-start $${CARGO_TARGET_DIR:-target}/release/config-api 30

## bench-compare: tagcfg beside etcd (unpacked from Debian into .tools) with one load generator,
##                every scenario in alternating rounds, tables into docs/BENCHMARKS.md (~11 min;
##                QUICK=1: every scenario briefly, into target/ — a check, not a measurement)
bench-compare:
	infra/bench-compare.sh

## lambda-invoke: config-api under `cargo lambda watch` on the emulators, fed every events/api event
##                (or EVENTS="get-flag list"); cargo-lambda comes from PyPI, no zig needed
lambda-invoke:
	infra/with-emulators.sh infra/lambda-local.sh config-api $(EVENTS)

## invoke-stream-publisher: the stream publisher on the emulators, fed events/stream/*.json
invoke-stream-publisher:
	infra/with-emulators.sh infra/lambda-local.sh stream-publisher $(EVENTS)

## invoke-cache-refresher: the cache-refresher (and a watch server) on the emulators, fed events/eventbridge/*.json
invoke-cache-refresher:
	infra/with-emulators.sh infra/lambda-local.sh cache-refresher $(EVENTS)

clean-tools:
	rm -rf .tools
