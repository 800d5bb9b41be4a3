# streife: `make run` starts the bot, `make test` runs the test suite.
# Both set up everything on first use: a Python 3.10 virtual environment in .venv
# with pinned packages, and the trained NLU model in models/.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MODEL := models/nlu.tar.gz
NLU_DATA := $(wildcard data/nlu/*.yml)
STAMP := $(VENV)/.installed

# A Python 3.10 interpreter: PATH first, then pyenv's versions.
PYTHON310 ?= $(shell \
	for c in python3.10 $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do \
		if [ -x "$$(command -v $$c 2>/dev/null)" ] && $$c -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then \
			command -v $$c; break; \
		fi; \
	done)

.PHONY: run test setup train chat lint crossval bench clean help validate evaluate review browser

help:
	@echo "make run    set up, train if needed, start the bot (web chat and inbox on 127.0.0.1)"
	@echo "make test   set up, train if needed, run the test suite"
	@echo "make train  retrain the NLU model from data/ and config.yml"
	@echo "make chat   talk to the bot in the console"
	@echo "make validate  check data/ (file and line for every problem)"
	@echo "make evaluate  cross-validation and held-out scores: reports/<time>/report.html (a few minutes)"
	@echo "make review    export what the bot did not understand from the log: reviews/<time>.yml"
	@echo "make crossval  compare config.yml with Rasa's default pipeline (up to an hour: the default trains slowly)"
	@echo "make bench  latency, throughput and start-up against Rasa's own server, fuzzing (bench/RESULTS.md)"

run: setup $(MODEL)
	$(PY) -m bot serve

chat: setup $(MODEL)
	$(PY) -m bot chat

test: setup $(MODEL) lint browser
	$(PY) -m pytest

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt
	@if [ -z "$(PYTHON310)" ]; then \
		echo "error: Python 3.10 not found (Rasa 3.6 needs Python 3.8-3.10)." >&2; \
		echo "Install it, e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv'," >&2; \
		echo "or point make at one: make PYTHON310=/path/to/python3.10 test" >&2; \
		exit 1; \
	fi
	@echo "Setting up $(VENV) with $(PYTHON310) (first time: about 4 minutes, 2.7 GB)"
	@[ -x $(PY) ] && $(PY) -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null || { rm -rf $(VENV); $(PYTHON310) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip==24.0"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements.txt
	$(PY) -m pip check
	@touch $@

train: setup
	$(PY) -m nlu.train

$(MODEL): config.yml nlu/classifier.py $(NLU_DATA) | $(STAMP)
	$(PY) -m nlu.train

# Trainers' workflow (TRAINING.md). A running `bot serve` picks up a new model by itself.
validate: setup
	$(PY) -m nlu.validate

evaluate: setup $(MODEL)
	PYTHONWARNINGS=ignore $(PY) -m nlu.report

review: setup
	$(PY) -m nlu.review

crossval: setup
	PYTHONWARNINGS=ignore $(PY) -m nlu.crossval config.yml nlu/default_config.yml

# Figures for bench/RESULTS.md (about 25 min: Rasa's own server is trained once into bench/out/).
bench: setup $(MODEL)
	$(PY) -m bench.compare_rasa
	$(PY) -m bench.startup
	$(PY) -m bench.triage_latency
	$(PY) -m bench.inbox_latency
	$(PY) -m bench.telegram_load
	$(PY) -m bench.fuzz_webhooks
	$(PY) -m bench.accuracy_baseline

# Debian's Chromium for the Playwright end-to-end test (installed once, as root).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "Installing Debian's chromium and chromium-driver for the browser test (needs root)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver \
		|| { echo "error: could not install chromium; as root run: apt-get install chromium chromium-driver" >&2; exit 1; }; \
	fi

lint: setup
	$(VENV)/bin/hadolint Dockerfile

clean:
	rm -rf $(VENV) models
