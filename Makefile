# Two entry points: `make run` and `make test`. Both set up everything they need on a
# fresh Debian machine (as root) and are safe to run again.
SHELL := /bin/bash
.DEFAULT_GOAL := run

CARGO ?= cargo
# Where cargo puts what it builds (CARGO_TARGET_DIR moves it).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
# make run talks to the project's Redis, like a multi-node deployment would; unset it
# (CP__REDIS__URL=) to run on the in-process bus.
REDIS_URL ?= redis://127.0.0.1:$(or $(CP_REDIS_PORT),56379)
TWILIO_STANDIN ?= 127.0.0.1:58090

.PHONY: run test services

# An unset CP_ENV is production (shipped development secrets refused); make run is development.
run: export CP_ENV ?= development

services:
	./scripts/services.sh up

run: services
	$(CARGO) build --release --locked
	./scripts/web.sh build $(TARGET_DIR)/release/consultantpro
	$(TARGET_DIR)/release/consultantpro migrate
	@# Twilio cannot be reached from here: its local stand-in (config/development.toml points
	@# the server at it). One still running from an earlier run keeps serving.
	mkdir -p "$${CP_DATA_DIR:-.data}"
	($(TARGET_DIR)/release/consultantpro twilio-standin --listen $(TWILIO_STANDIN) --demo \
	  --hub-url "http://127.0.0.1:$${CP__SERVER__PORT:-8080}" >> "$${CP_DATA_DIR:-.data}/twilio-standin.log" 2>&1 &)
	$(TARGET_DIR)/release/consultantpro demo
	CP__REDIS__URL=$${CP__REDIS__URL-$(REDIS_URL)} exec $(TARGET_DIR)/release/consultantpro serve

# Tests use config/test.toml (database consultantpro_test, Redis on) and start their own
# servers on 127.0.0.1:0. TEST_LOG=1 shows the servers' logs.
test: export CP_ENV = test
test: export CP__REDIS__URL ?= $(REDIS_URL)
test: services
	$(CARGO) build --locked --all-targets
	$(CARGO) run --locked --quiet -- migrate
	$(CARGO) test --locked --all-targets --no-fail-fast
	./scripts/web.sh test $(TARGET_DIR)/debug/consultantpro
