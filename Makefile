# The two commands of the README. Each installs what it needs first (idempotent).
.PHONY: study test install install-test

install:
	bash scripts/install.sh

install-test:
	bash scripts/install.sh --test

study: install
	HF_HUB_OFFLINE=1 .venv/bin/peftbench run

test: install-test
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15
