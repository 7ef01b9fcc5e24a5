"""Each avatarl module imports only modules earlier in the reading order, including imports inside functions, so
that the notebooks can be read, exported and imported front to back."""
import ast, importlib
from pathlib import Path

import pytest

ORDER = ["data", "model", "loop", "filtering", "smoothing", "consensus", "reinforce", "explorer", "train",
         "reincarnation", "study", "bench", "cli"]  # the reading order of nbs/00 ... nbs/12
PACKAGE = Path(__file__).resolve().parents[1] / "avatarl"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_"))


def imported(path:Path) -> set[str]:
    "The avatarl modules a file imports anywhere in it: `from .x import`, `from avatarl.x import`, `import avatarl.x`."
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module: found.add(node.module.split(".")[0])  # from .x import y
            elif node.level == 1: found |= {a.name for a in node.names}  # from . import x
            elif node.module == "avatarl": found |= {a.name for a in node.names}  # from avatarl import x
            elif node.module and node.module.startswith("avatarl."): found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("avatarl.")}
    return found


def test_every_module_is_in_the_reading_order():
    assert set(MODULES) <= set(ORDER), f"add {sorted(set(MODULES) - set(ORDER))} to ORDER, where its notebook is read"


def test_the_finder_sees_every_form_of_import(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from .loop import train\nfrom . import data\nimport avatarl.model\nfrom avatarl.train import x\n"
                   "from avatarl import consensus\ndef f():\n    from .cli import main\n    import avatarl.study as s\n")
    assert imported(src) == {"loop", "data", "model", "train", "consensus", "cli", "study"}


@pytest.mark.parametrize("name", MODULES)
def test_imports_only_earlier_modules(name):
    later = {m for m in imported(PACKAGE / f"{name}.py") if m in ORDER and ORDER.index(m) >= ORDER.index(name)}
    assert not later, f"avatarl.{name} imports {sorted(later)}, which come at or after it in the reading order {ORDER}"


@pytest.mark.parametrize("name", MODULES)
def test_imports_cleanly(name):
    importlib.import_module(f"avatarl.{name}")
