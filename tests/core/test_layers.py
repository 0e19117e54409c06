"""Imports run down the layers of docs/architecture.md, never back up, and nothing in the
library but the ``llmrec`` command (which dispatches ``up``/``down``/``pipeline``) imports the
local stack."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {
    "errors": 0, "settings": 0,
    "io": 1,
    "days": 2, "text": 2, "progress": 2,
    "etl": 3, "data": 3,
    "ingest": 4, "models": 4, "metrics": 4, "topk": 4,
    "training": 5, "plots": 5,
    "recommenders": 6,
    "evaluation": 7, "scoring": 7, "serving": 7, "tuning": 7, "comparison": 7,
    "registry": 8, "evaluate": 8,
    "orchestration": 9,
    "cli": 10,
}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "llmrec_core" and len(parts) > 1 and parts[1] in LAYERS else None


def test_every_library_module_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in (ROOT / "llmrec_core").iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert names <= set(LAYERS), f"no layer for {sorted(names - set(LAYERS))}"


def test_imports_never_run_back_up_a_layer():
    upward = []
    for path in (ROOT / "llmrec_core").rglob("*.py"):
        here = _part(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for module in _imports(path):
            if module.startswith("llmrec_stack") and here != "cli":
                upward.append(f"{path.relative_to(ROOT)} imports the local stack ({module})")
            there = _part(module)
            if here and there and there != here and LAYERS[there] > LAYERS[here]:
                upward.append(f"{path.relative_to(ROOT)} ({here}) imports {module} ({there})")
    assert not upward, "\n".join(sorted(upward))
