"""A forged model in the registry cannot run code: bundles and checkpoints hold no pickles.

Scoring, the gate and the pyfunc used to load registered models with
``torch.load(weights_only=False)``, so anyone who could register a version and move
``champion`` could run any code in the nightly scoring job."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import torch

from jobs import score
from llmrec_core.io import tensorfile, tracking
from llmrec_core.registry import pyfunc
from llmrec_core.registry.bundle import Bundle, load_bundle, register, save_bundle
from llmrec_core.registry.pyfunc import SIGNATURE, input_example


class Payload:
    """Unpickling this writes a file: the stand-in for any code an attacker wants run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def popularity(item_ids):
    return {"kind": "popularity", "name": "popularity", "item_ids": list(item_ids), "scores": torch.arange(len(item_ids), dtype=torch.float32)}


def register_popularity(settings, snap, trained: str, tags: dict | None = None, run: str = "train") -> str:
    """Register a popularity model of ``snap``'s items, trained as of day ``trained``, in its own
    MLflow run (a cheap real version: no training); returns the version."""
    with tracking.run(run):
        b = Bundle(model=popularity(snap.item_ids), gate=popularity(snap.item_ids), reranker=None, meta={"ds": trained, "model": "popularity"})
        return register(settings, b, input_example(list(snap.item_ids[:5])), {"model": "popularity", **(tags or {})})


@pytest.fixture
def registry(toy_home, settings):
    _, last = toy_home
    tracking.setup(settings)
    return settings, last


def test_a_forged_champion_is_refused_and_nothing_runs_or_publishes(registry, tmp_path, capsys):
    settings, last = registry
    marker = tmp_path / "pwned"
    forged = tmp_path / "bundle"
    forged.mkdir()
    torch.save({"kind": "popularity", "payload": Payload(marker)}, forged / "model.pt")
    (forged / "meta.json").write_text(json.dumps({"ds": str(last)}))
    with tracking.run("forged"):
        # As an attacker with write access to the registry would: any artifact, no input example.
        version = tracking.register_bundle(forged, settings, None, {"promotion": "promoted: forged"},
                                           python_model=Path(pyfunc.__file__).with_name("pyfunc_model.py"), signature=SIGNATURE)
    tracking.promote(settings, version, "forged", expected=None)

    assert score.main(["--ds", str(last)]) == 1
    err = capsys.readouterr().err
    assert "error: refusing to load the model bundle" in err and "model.pt" in err and "Traceback" not in err
    assert not marker.exists()
    warehouse = settings.home / "warehouse.duckdb"
    if warehouse.exists():
        with duckdb.connect(str(warehouse), read_only=True) as con:
            tables = {r[0] for r in con.sql("select table_name from information_schema.tables").fetchall()}
            assert "user_recommendations" not in tables or con.sql("select count(*) from user_recommendations").fetchone()[0] == 0


def test_a_registered_model_holds_no_pickle_at_all(registry, tmp_path):
    settings, last = registry
    bundle = Bundle(model=popularity(["i1", "i2"]), gate=popularity(["i1", "i2"]), reranker=None, meta={"ds": str(last)})
    with tracking.run("clean"):
        version = register(settings, bundle, input_example([f"i{k}" for k in range(5)]), {})
    root = tracking.download_bundle(settings, version, tmp_path).parents[1]
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files and not [p for p in files if p.suffix in (".pkl", ".pt", ".pickle", ".bin")]
    for p in files:
        assert not p.read_bytes()[:2] == b"\x80\x04", f"{p} is a pickle"
    assert load_bundle(root / "artifacts" / "bundle").model["item_ids"] == ["i1", "i2"]


@pytest.mark.parametrize("forgery", ["extra_pickle", "json_class", "mixed_pair", "not_json"])
def test_every_other_shape_of_bundle_is_refused_before_it_is_read(tmp_path, forgery):
    path = save_bundle(tmp_path / "b", Bundle(model=popularity(["i1"]), gate=popularity(["i1"]), reranker=None, meta={"ds": "2024-01-01"}))
    if forgery == "extra_pickle":
        torch.save({"payload": Payload(tmp_path / "pwned")}, path / "gate.pt")
    elif forgery == "json_class":
        meta = json.loads((path / "model.json").read_text())
        meta["object"]["scores"] = {"__class__": "Popen", "fields": {"args": "touch pwned"}}
        (path / "model.json").write_text(json.dumps(meta))
    elif forgery == "mixed_pair":
        other = tmp_path / "other"
        tensorfile.save(popularity(["i1", "i2", "i3"]), other)
        (path / "model.safetensors").write_bytes(tensorfile.file(other, ".safetensors").read_bytes())
    else:
        (path / "model.json").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(tensorfile.UnsafeFileError):
        load_bundle(path)
    assert not (tmp_path / "pwned").exists()


def test_the_file_format_round_trips_what_models_export(tmp_path):
    from llmrec_core.data.interactions import KindVocab

    obj = {"t": torch.ones(2, 3), "tied": None, "n": 3, "inf": float("-inf"), "tuple": (1, "a"), "kinds": KindVocab(("click",), "rate", 1.0, 5.0),
           "optimizer": {"state": {0: {"step": torch.tensor(4.0)}}, "param_groups": [{"params": [0], "betas": (0.9, 0.99)}]}}
    obj["tied"] = obj["t"]
    tensorfile.save(obj, tmp_path / "x")
    back = tensorfile.load(tmp_path / "x")
    assert torch.equal(back["t"], obj["t"]) and torch.equal(back["tied"], obj["t"])
    assert back["tuple"] == (1, "a") and back["kinds"] == obj["kinds"] and back["inf"] == float("-inf")
    assert back["optimizer"]["state"][0]["step"].item() == 4.0 and back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
    with pytest.raises(TypeError, match="cannot be stored without pickling"):
        tensorfile.save({"payload": Payload(tmp_path / "pwned")}, tmp_path / "y")
