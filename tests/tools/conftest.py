"""Load the scripts in tools/ as modules: tools/ is a folder of scripts, not a package."""

import importlib.util
from pathlib import Path

import pytest

TOOLS_DIR = Path(__file__).resolve().parents[2] / "tools"


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f"tools_{name}", TOOLS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build_data():
    return load_tool("build_data")


@pytest.fixture(scope="session")
def draw_figures():
    return load_tool("draw_figures")
