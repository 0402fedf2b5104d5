# `make lab` opens the lab in JupyterLab; `make test` runs every test. Both set up .venv first;
# `make test` also installs the system packages its tests start (Chromium, PostgreSQL) if missing.
# `make demo` grades the demo class in demo/ (demo/README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STUDENT_DIR ?= student
LAB_PORT ?= 8888
DEMO_OUT ?= demo/out
# Test files run on two processes, each file whole on one (its fixtures built once); `make
# test PARALLEL=` runs them in this process, one after another.
PARALLEL ?= -n 2 --dist loadfile

.PHONY: setup system-packages student lab demo test check lint data figures bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-data.txt pyproject.toml
	@PYTHON=$(PYTHON) bash tools/install_system_packages.sh setup
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-data.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	@# The grader's bytecode, which an environment with PYTHONDONTWRITEBYTECODE never saves:
	@# each of a batch's processes (coordinator, workers, renderers) imports it, 0.3 s apiece.
	$(PY) -m compileall -q -j 0 grader
	touch $@

# The student version (solutions removed by nbgrader). Never overwritten: it holds work.
student: setup
	@if [ -f $(STUDENT_DIR)/C2_W2_Assignment.ipynb ]; then \
		echo "Keeping $(STUDENT_DIR)/C2_W2_Assignment.ipynb (delete it for a fresh copy)"; \
	else \
		$(PY) -m grader release --out $(STUDENT_DIR); \
	fi

# JupyterLab on 127.0.0.1 without nbgrader's instructor tools (see tools/student_lab.py).
lab: student
	cd $(STUDENT_DIR) && $(CURDIR)/$(PY) $(CURDIR)/tools/student_lab.py \
		--ServerApp.port=$(LAB_PORT) C2_W2_Assignment.ipynb

# The demo class graded as a real class is: five students in nbgrader's collected layout
# (right, wrong twice, late, broken), a due date and 10% off per started day late. Without
# root the grader still grades it, and warns that its kernels are not confined (demo/README.md).
# A second run resumes: it keeps the results of unchanged submissions.
demo: setup
	$(PY) -m grader autograde demo/submitted --out $(DEMO_OUT) \
		--due 2026-12-01T23:00:00Z --late-penalty 10%
	@echo "A student's feedback page: $(DEMO_OUT)/feedback/wrong-softmax/C2_W2_Assignment.html"

# What the tests start besides Python: Chromium (browser tests), PostgreSQL (gradebook
# tests); installed with apt, through sudo when not root, only when missing. `setup` needs
# only Python's venv module (python3-venv on Debian's own Python).
system-packages:
	@PYTHON=$(PYTHON) bash tools/install_system_packages.sh test

# Never without the sandbox's tests: where the sandbox is missing (not root) they fail. To
# skip them on purpose, run pytest itself with GRADER_TESTS_WITHOUT_SANDBOX=1.
test: setup system-packages
	$(PY) -m ruff check .
	$(PY) -m mypy
	env -u GRADER_TESTS_WITHOUT_SANDBOX $(PY) -m pytest $(PARALLEL)

# The fast tier (tests/tiers.py): no kernel, no nbgrader command, no server; a few minutes.
# mypy checks the stage boundaries' type hints ([tool.mypy] in pyproject.toml).
check: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest $(PARALLEL) -m "not ($(shell $(PY) -c 'import sys; sys.path.insert(0, "tests"); import tiers; print(tiers.NOT_FAST)'))"

lint: setup
	$(PY) -m ruff check .

data: setup
	$(PY) tools/build_data.py

figures: setup
	$(PY) tools/draw_figures.py

bench: setup
	$(PY) bench/bench_notebook.py

# Never deletes a student's work: student/ goes only when it surely holds no notebook.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
	@if [ ! -e $(STUDENT_DIR) ]; then :; \
	elif found=$$(find $(STUDENT_DIR) -name '*.ipynb' -print -quit) && [ -z "$$found" ]; then \
		rm -rf $(STUDENT_DIR); \
	else \
		echo "Keeping $(STUDENT_DIR)/: it holds your notebook. Delete it yourself to start again."; \
	fi
