"""Test-suite setup: tiny configurations for notebooks, and nbval acceptance of cleaned notebooks."""
import os

# Notebooks read this (the kernel inherits the environment) to train tiny models in seconds.
os.environ.setdefault("AVATARL_TINY", "1")
# Two pytest-xdist workers share the cores: one thread each avoids oversubscription stalls.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items):
    "Give every output-bearing notebook cell an execution count, so nbval treats it as run."
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and cell.get("outputs") and cell.get("execution_count") is None:
            cell["execution_count"] = 1
