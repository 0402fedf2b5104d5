"""The scripts in tools/ as modules, imported as tools.run_notebook is (the project root is
on sys.path, and tools/ is a namespace package)."""

import importlib

import pytest


@pytest.fixture(scope="session")
def build_data():
    return importlib.import_module("tools.build_data")


@pytest.fixture(scope="session")
def draw_figures():
    return importlib.import_module("tools.draw_figures")
