# streife: `make run` starts the bot, `make test` runs the test suite.
# Both set up everything on first use: the service's virtual environment (.venv, newest Python
# 3.12+), the NLU side's (.venv-nlu, Python 3.10 with Rasa 3.6), and the trained model in models/.

SHELL := /bin/bash
# The service (bot/): the newest supported Python found, current aiohttp and friends, no Rasa.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The NLU side (nlu/): Rasa 3.6 on Python 3.10, its last supported version.
VENV_NLU := .venv-nlu
NLU_PY := $(VENV_NLU)/bin/python
NLU_STAMP := $(VENV_NLU)/.installed
MODEL := models/nlu.tar.gz
NLU_DATA := $(wildcard data/nlu/*.yml)

# Candidate interpreters: PATH first, then pyenv's versions.
find_python = $(shell \
	for c in $(1) $$(pyenv root 2>/dev/null)/versions/$(2)*/bin/$(1) /usr/local/bin/$(1) /usr/bin/$(1); do \
		if [ -x "$$(command -v $$c 2>/dev/null)" ] && $$c -c 'import sys; assert sys.version_info[:2] == ($(3))' 2>/dev/null; then \
			command -v $$c; break; \
		fi; \
	done)
comma := ,
PYTHON310 ?= $(call find_python,python3.10,3.10,3$(comma) 10)
PYTHON310 := $(PYTHON310)
# 3.12 or newer: lingua-language-detector (bot/language.py) has wheels for 3.12+ only.
PYTHON_SERVICE ?= $(or $(call find_python,python3.13,3.13,3$(comma) 13),$(call find_python,python3.12,3.12,3$(comma) 12))
PYTHON_SERVICE := $(PYTHON_SERVICE)

.PHONY: run test setup train chat lint crossval bench clean help validate evaluate review browser postgres

help:
	@echo "make run    set up, train if needed, start the bot (web chat and inbox on 127.0.0.1)"
	@echo "make test   set up, train if needed, run the test suite"
	@echo "make train  retrain the NLU model from data/ and config.yml"
	@echo "make chat   talk to the bot in the console"
	@echo "make validate  check data/ (file and line for every problem)"
	@echo "make evaluate  cross-validation, held-out and real development set side by side, threshold curves: reports/<time>/report.html (about 10 minutes)"
	@echo "make review    export what the bot did not understand from the log: reviews/<time>.yml"
	@echo "make crossval  compare config.yml with Rasa's default pipeline (up to an hour: the default trains slowly)"
	@echo "make bench  latency, throughput and start-up against Rasa's own server, fuzzing (bench/RESULTS.md)"

run: setup $(MODEL)
	$(PY) -m bot serve

chat: setup $(MODEL)
	$(PY) -m bot chat

# The suite runs in both environments: the service's tests (real NLU workers for the model) and
# the NLU side's (Rasa in process); tests/conftest.py picks each module's side.
test: setup $(MODEL) lint browser postgres
	$(PY) -m pytest
	STREIFE_TEST_BACKEND=postgresql $(PY) -m pytest $(POSTGRES_SUITES)
	$(NLU_PY) -m pytest

setup: $(STAMP) $(NLU_STAMP)

$(STAMP): requirements.txt constraints.txt
	@if [ -z "$(PYTHON_SERVICE)" ]; then \
		echo "error: no Python 3.12 or newer found for the service." >&2; \
		echo "Install one (e.g. 'apt-get install python3 python3-venv' on Debian 12, or 'pyenv install 3.13'), or point make at it: make PYTHON_SERVICE=/path/to/python3 test" >&2; \
		exit 1; \
	fi
	@echo "Setting up $(VENV) (the service) with $(PYTHON_SERVICE)"
	@[ -x $(PY) ] && $(PY) -c 'import sys; assert sys.version_info[:2] >= (3, 12)' 2>/dev/null || { rm -rf $(VENV); $(PYTHON_SERVICE) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip==26.3"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements.txt
	$(PY) -m pip check
	@touch $@

$(NLU_STAMP): requirements-nlu.txt constraints-nlu.txt
	@if [ -z "$(PYTHON310)" ]; then \
		echo "error: Python 3.10 not found (Rasa 3.6 needs Python 3.8-3.10)." >&2; \
		echo "Install it, e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv'," >&2; \
		echo "or point make at one: make PYTHON310=/path/to/python3.10 test" >&2; \
		exit 1; \
	fi
	@echo "Setting up $(VENV_NLU) (Rasa) with $(PYTHON310) (first time: about 4 minutes, 2.7 GB)"
	@[ -x $(NLU_PY) ] && $(NLU_PY) -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null || { rm -rf $(VENV_NLU); $(PYTHON310) -m venv $(VENV_NLU); }
	$(NLU_PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip==24.0"
	$(NLU_PY) -m pip install --quiet --disable-pip-version-check -c constraints-nlu.txt -r requirements-nlu.txt
	$(NLU_PY) -m pip check
	@touch $@

train: setup
	$(NLU_PY) -m nlu.train

$(MODEL): config.yml nlu/classifier.py $(NLU_DATA) | $(NLU_STAMP)
	$(NLU_PY) -m nlu.train

# Trainers' workflow (TRAINING.md). A running `bot serve` picks up a new model by itself.
validate: setup
	$(NLU_PY) -m nlu.validate

evaluate: setup $(MODEL)
	PYTHONWARNINGS=ignore $(NLU_PY) -m nlu.report

review: setup
	$(NLU_PY) -m nlu.review

crossval: setup
	PYTHONWARNINGS=ignore $(NLU_PY) -m nlu.crossval config.yml nlu/default_config.yml

# Figures for bench/RESULTS.md (about 25 min: Rasa's own server is trained once into bench/out/).
bench: setup $(MODEL)
	$(PY) -m bench.compare_rasa
	$(PY) -m bench.startup
	$(PY) -m bench.triage_latency
	$(PY) -m bench.nlu_throughput
	$(PY) -m bench.inbox_latency
	$(PY) -m bench.officers_day
	$(PY) -m bench.telegram_load
	$(PY) -m bench.mastodon_load
	$(PY) -m bench.x_load
	$(PY) -m bench.comments_load
	$(PY) -m bench.fuzz_webhooks
	$(PY) -m bench.attack
	$(NLU_PY) -m bench.accuracy_baseline
	$(NLU_PY) -m bench.accuracy_sets

# The handover log's suites run a second time on PostgreSQL (tests start their own server from
# these binaries in a temporary folder; nothing needs a running server): tests/conftest.py.
PG_BIN ?= /usr/lib/postgresql/15/bin
POSTGRES_SUITES := tests/test_handover_log.py tests/test_handover_states.py tests/test_privacy.py \
	tests/test_dispatcher.py tests/test_recovery.py tests/test_accounts.py tests/test_textblocks.py \
	tests/test_comments_privacy.py tests/test_comment_executor.py tests/test_search.py \
	tests/test_search_comments.py tests/test_stats.py tests/test_web.py tests/test_inbox.py tests/test_webchat.py \
	tests/test_comments_inbox.py tests/test_login_security.py tests/test_alerts.py tests/test_flood_inbox.py

postgres:
	@if [ ! -x $(PG_BIN)/initdb ]; then \
		echo "Installing Debian's postgresql-15 for the tests on PostgreSQL (needs root; no server is started)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
		|| { echo "error: could not install PostgreSQL 15; as root run: apt-get install postgresql-15" >&2; exit 1; }; \
	fi

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
	rm -rf $(VENV) $(VENV_NLU) models
