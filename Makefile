# Every entry point a user needs. Each target creates .venv and installs the project when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
RIG    ?= rigs/virtual.toml
MODEL  ?=

.PHONY: help test lint sim conformance conformance-all certify demo campaign bench fuzz clean

help:
	@echo "make conformance [RIG=rigs/virtual.toml] [MODEL=iskra-wm3m4c]  the Gherkin conformance suite (the main job)"
	@echo "make conformance-all                      the suite on every simulated meter model; one verdict table"
	@echo "make certify [RIG=...] [MODEL=...]       the suite into one certification archive reports/certification-*.tar.gz"
	@echo "make demo                                 same as conformance, on the virtual rig"
	@echo "make test                                 lint, unit and integration tests, conformance on the virtual rig"
	@echo "make sim                                  start a simulated meter on a pty (meter-sim --pty --speed 600)"
	@echo "make campaign [RIG=..] [MODEL=..] [SCHEDULES=500] [JOBS=2] [SEED=1]  fault campaign: nothing lost or duplicated"
	@echo "make bench                                benchmarks, printed side by side"
	@echo "make fuzz [FUZZ_BUDGET=45|1000000runs]    each fuzz target in turn: inputs, coverage, crashes"
	@echo "make lint                                 ruff"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,fuzz]'
	touch $(STAMP)

# An independent Eastron client library (sdm_modbus) needs an older pymodbus than the project pins: it
# gets a virtualenv of its own, for the test that reads the simulated SDM630 with it.
EASTRON := .venv-eastron/.installed-stamp
$(EASTRON): tests/simulator/eastron-client-requirements.txt
	$(PYTHON) -m venv .venv-eastron
	.venv-eastron/bin/python -m pip install --quiet -r tests/simulator/eastron-client-requirements.txt
	touch $(EASTRON)

lint: $(STAMP)
	$(VENV)/bin/ruff check simulator driver rigs features tests bench examples campaign fuzz

# Unit and integration tests (tests/, with a short seeded pass of every fuzz target in tests/fuzz), then
# the conformance suite (the plugin's official scenarios in features/) on every simulated model, two at a
# time, with the model x requirement table.
test: $(STAMP) $(EASTRON) lint
	$(PY) -m pytest -q -p no:cacheprovider tests
	$(PY) -m rigs.conformance_all --jobs 2 --reports reports/test-models

sim: $(STAMP)
	$(VENV)/bin/meter-sim --pty --speed 600

clean:
	rm -rf $(VENV) .venv-eastron reports .pytest_cache .ruff_cache

# The conformance suite (features/, rigs/): reports/junit.xml, cucumber.json, wire.log, summary.md/.json.
CONFORMANCE_ARGS := -p no:cacheprovider -q --rig $(RIG) $(if $(MODEL),--model $(MODEL)) --conformance-reports reports \
	--junitxml=reports/junit.xml --cucumberjson=reports/cucumber.json

conformance: $(STAMP)
	@mkdir -p reports
	$(PY) -m pytest $(CONFORMANCE_ARGS) features/scenarios.py

conformance-all: $(STAMP)
	$(PY) -m rigs.conformance_all --jobs 2

# A certification bundle (rigs/bundle.py, docs/conformance.md): the suite's reports in a fresh directory
# reports/certification-<rig>-<model>-<UTC>/ and one archive of it; check it with meter-hil verify-bundle.
certify: $(STAMP)
	$(VENV)/bin/meter-hil certify --rig $(RIG) $(if $(MODEL),--model $(MODEL)) --out reports

demo: RIG = rigs/virtual.toml
demo: conformance

# Benchmarks (bench/): each prints its tables and adds its figures to reports/bench.json.
# Quick sizes by default (a few minutes in all); BENCH_ARGS=--full for longer, steadier runs.
BENCH_ARGS ?= --quick

bench: $(STAMP)
	$(PY) bench/modbus_turnaround.py $(BENCH_ARGS)
	$(PY) bench/wire_throughput.py $(BENCH_ARGS)
	$(PY) bench/time_compression.py $(BENCH_ARGS)
	$(PY) bench/conformance_suite.py $(BENCH_ARGS)
	$(PY) bench/remote_latency.py $(BENCH_ARGS)
	$(PY) bench/conformance_all.py $(BENCH_ARGS)
	$(PY) bench/campaign_speed.py $(BENCH_ARGS)
	$(PY) bench/goals.py

# Fault campaign (campaign/, docs/reliability.md): SCHEDULES seeded schedules of sessions with link drops,
# power losses, meter-sim kills and whole-system failures on JOBS rigs in parallel, on the rig file RIG
# (default rigs/campaign.toml: the virtual rig with campaign timing) and its model or MODEL. Failing
# schedules are saved under reports/campaign/ for `python -m campaign --replay FILE`.
CAMPAIGN_RIG = $(if $(filter command line environment,$(origin RIG)),$(RIG),rigs/campaign.toml)

campaign: $(STAMP)
	$(PY) -m campaign --rig $(CAMPAIGN_RIG) $(if $(MODEL),--model $(MODEL)) --schedules $(or $(SCHEDULES),500) \
		--seed $(or $(SEED),1) --jobs $(or $(JOBS),2) --failures reports/campaign

# Coverage-guided fuzzing (fuzz/, atheris; docs/reliability.md "Fuzzing"): each target in turn for
# FUZZ_BUDGET seconds (default 45: about four minutes in all) or inputs (e.g. FUZZ_BUDGET=1000000runs),
# then inputs tried, exec/s, coverage (libFuzzer's cov and ft) and crashes; corpus, logs and crash inputs
# under reports/fuzz/. Exit status 1 when a target crashed.
FUZZ_BUDGET ?= 45

fuzz: $(STAMP)
	$(PY) -m fuzz.run --budget $(FUZZ_BUDGET) --out reports/fuzz
