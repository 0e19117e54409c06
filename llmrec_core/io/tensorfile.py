"""Model files without pickles: tensors in safetensors, everything else in JSON.

``save(obj, path)`` writes ``path.safetensors`` (every tensor and numeric array in ``obj``) and
``path.json`` (the rest: dicts, lists, tuples, strings, numbers, booleans, None, and the few
plain data classes marked :func:`storable`, with each tensor replaced by a reference), and
``load(path)`` puts the object back together. Neither file can carry code: loading one never
runs anything but the JSON and safetensors parsers, so a forged registry version or checkpoint
can at worst fail to load. ``save`` refuses any other type instead of pickling it.

The JSON records the SHA-256 of its tensor file, so a pair from two different writes (a crash
between the two renames of :func:`save`) is refused rather than mixed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from llmrec_core.errors import LlmrecError

# torch and safetensors are imported where a file is written or read: marking a data class
# storable (at import of the data layer) must not load them.

FORMAT = "llmrec-tensorfile/1"
SUFFIXES = (".json", ".safetensors")


class UnsafeFileError(LlmrecError):
    """A model file that is not safetensors plus JSON (a pickle, say), or a damaged pair."""


_CLASSES: dict[str, type] = {}


def storable(cls: type) -> type:
    """Class decorator: a plain data class whose instances may be stored (by field, as JSON)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    _CLASSES[cls.__name__] = cls
    return cls


def _encode(obj: Any, tensors: dict, seen: set[int], where: str) -> Any:
    import torch

    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor | np.ndarray):
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind in "OUS":
                return {"__strings__": [str(x) for x in obj.tolist()]}
            obj = torch.from_numpy(np.ascontiguousarray(obj))
            kind = "__ndarray__"
        else:
            kind = "__tensor__"
        t = obj.detach().cpu().contiguous()
        if t.numel() and t.untyped_storage().data_ptr() in seen:
            t = t.clone()  # safetensors stores each storage once; tied weights get their own copy
        if t.numel():
            seen.add(t.untyped_storage().data_ptr())
        key = f"t{len(tensors)}"
        tensors[key] = t
        return {kind: key}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, seen, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, seen, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors, seen, f"{where}.{k}") for k, v in obj.items()}
        if all(isinstance(k, str | int) and not isinstance(k, bool) for k in obj):
            return {"__items__": [[k, _encode(v, tensors, seen, f"{where}[{k!r}]")] for k, v in obj.items()]}
    name = type(obj).__name__
    if dataclasses.is_dataclass(obj) and _CLASSES.get(name) is type(obj):
        fields = {f.name: _encode(getattr(obj, f.name), tensors, seen, f"{where}.{f.name}") for f in dataclasses.fields(obj)}
        return {"__class__": name, "fields": fields}
    raise TypeError(f"{where or 'value'}: a {type(obj).__module__}.{name} cannot be stored without pickling it")


def _decode(obj: Any, tensors: dict) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return tensors[obj["__ndarray__"]].numpy()
    if "__strings__" in obj:
        return np.asarray(obj["__strings__"], dtype=object)
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {k: _decode(v, tensors) for k, v in obj["__items__"]}
    if "__class__" in obj:
        cls = _CLASSES.get(obj["__class__"])
        if cls is None:
            raise UnsafeFileError(f"unknown class {obj['__class__']!r} in a model file")
        return cls(**{k: _decode(v, tensors) for k, v in obj["fields"].items()})
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(obj: Any, path: Path) -> None:
    """Write ``obj`` as ``path.safetensors`` and ``path.json``; each file appears whole (a
    temporary name, then a rename), the JSON last."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict = {}
    tree = _encode(obj, tensors, set(), "")
    tag = uuid.uuid4().hex[:8]
    tmp_tensors, tmp_json = path.with_name(f".{path.name}.{tag}.safetensors"), path.with_name(f".{path.name}.{tag}.json")
    try:
        save_file(tensors, str(tmp_tensors), metadata={"format": FORMAT})
        tmp_json.write_text(json.dumps({"format": FORMAT, "tensors_sha256": _sha256(tmp_tensors), "object": tree}), encoding="utf-8")
        os.replace(tmp_tensors, file(path, ".safetensors"))
        os.replace(tmp_json, file(path, ".json"))
    finally:
        tmp_tensors.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)


def file(path: Path, suffix: str) -> Path:
    """``path`` with ``suffix`` appended (``model`` -> ``model.json``; dots in the name stay)."""
    return Path(path).with_name(Path(path).name + suffix)


def exists(path: Path) -> bool:
    return all(file(path, s).is_file() for s in SUFFIXES)


def load(path: Path) -> Any:
    """The object :func:`save` wrote at ``path``; :class:`UnsafeFileError` for anything else."""
    from safetensors.torch import load_file

    path = Path(path)
    meta_path, tensor_path = file(path, ".json"), file(path, ".safetensors")
    if not exists(path):
        raise UnsafeFileError(f"{path}: no {meta_path.name} and {tensor_path.name} pair")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise UnsafeFileError(f"{meta_path}: not JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UnsafeFileError(f"{meta_path}: not an llmrec model file (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("tensors_sha256") != _sha256(tensor_path):
        raise UnsafeFileError(f"{tensor_path} does not match {meta_path.name} (a damaged or mixed pair)")
    try:
        tensors = load_file(str(tensor_path))
    except Exception as err:  # the safetensors parser's own errors
        raise UnsafeFileError(f"{tensor_path}: not a safetensors file ({err})") from None
    return _decode(meta["object"], tensors)
