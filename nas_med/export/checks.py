"""An exported model folder checked as a whole before anything is allocated from it.

``check_folder(folder)`` reads ``spec.json`` and ``preprocessing.json`` (size and nesting depth bounded, so a
hostile file never reaches a RecursionError or a huge allocation), builds the spec on the meta device (no
memory), bounds its parameter count, reads only the header of ``model.safetensors`` and checks that the three
agree: channels, input size and classes of spec and preprocessing; every weight tensor's name, dtype and shape
against the spec's; the header's offsets against the file's size. Every problem is one UserError naming the
file and the value.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from ..errors import UserError, read_text_limited

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MAX_PARAMS", "check_folder", "check_operating_point", "check_preprocessing",
           "check_state", "check_weights", "read_json", "read_spec_file", "spec_shapes"]

MAX_JSON_BYTES = 1 << 20  # spec.json and preprocessing.json are a few kilobytes
MAX_JSON_DEPTH = 32  # a spec nests 4 levels deep
MAX_PARAMS = 2_000_000_000  # 8 GB of float32 weights: far above any model nas-med exports
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1}


def _depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON ``text`` (outside strings)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def read_json(path: Path, what: str | None = None) -> Any:
    """The JSON document at ``path``, with its size and depth bounded; UserError naming the file otherwise."""
    what = what or str(path)
    text = read_text_limited(path, MAX_JSON_BYTES, f"'{what}'")
    deepest = _depth(text)
    if deepest > MAX_JSON_DEPTH:
        raise UserError(f"'{what}' is nested {deepest} levels deep; at most {MAX_JSON_DEPTH} are allowed.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"'{what}' is not valid JSON: {exc}") from None
    except RecursionError:  # (the depth bound makes this unreachable; kept as a last guard)
        raise UserError(f"'{what}' is nested too deeply.") from None


def parse_spec(folder: Path):
    """The ArchSpec of ``folder/spec.json``, bounded, not yet checked against the other files (``check_folder``;
    ``load.read_spec`` is the public reader)."""
    return read_spec_file(folder / "spec.json")


def read_spec_file(path: Path):
    """The ArchSpec of a spec file (``spec.json``, ``arch show --json``), its size, nesting and stated sizes
    bounded before anything is built; UserError naming the file otherwise."""
    from ..arch.spec import ArchSpec

    data = read_json(path)
    if isinstance(data, dict):  # an ensemble's count and average sit beside the member's spec (read_ensemble)
        data = {k: v for k, v in data.items() if k not in ENSEMBLE_KEYS}
    try:
        spec = ArchSpec.from_dict(data)
    except UserError as exc:
        raise UserError(f"'{path}': {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        raise UserError(f"'{path}' is not a valid nas-med spec: {str(exc)[:200]}") from None
    _bound_spec(spec, str(path))
    return spec


ENSEMBLE_KEYS = ("ensemble", "ensemble_average",  # spec.json: members K (1: one network) and how they average
                 "test_flips")  # and whether the forward averages over horizontal flips (arch.flip)
MAX_ENSEMBLE = 20


def read_ensemble(folder: Path) -> tuple[int, str]:
    """(members, average) stated in ``folder/spec.json``: (1, 'softmax') for a single network."""
    data = read_json(folder / "spec.json")
    k = data.get("ensemble", 1) if isinstance(data, dict) else 1
    average = data.get("ensemble_average", "softmax") if isinstance(data, dict) else "softmax"
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_ENSEMBLE:
        raise UserError(f"'{folder / 'spec.json'}': 'ensemble' must be an integer from 1 to {MAX_ENSEMBLE}, got "
                        f"{k!r}.")
    if average not in ("softmax", "sigmoid"):
        raise UserError(f"'{folder / 'spec.json'}': 'ensemble_average' must be softmax or sigmoid, got {average!r}.")
    return k, average


def read_flips(folder: Path) -> bool:
    """Whether ``folder/spec.json`` says the model averages over horizontal flips at test time."""
    data = read_json(folder / "spec.json")
    flips = data.get("test_flips", False) if isinstance(data, dict) else False
    if not isinstance(flips, bool):
        raise UserError(f"'{folder / 'spec.json'}': 'test_flips' must be true or false, got {str(flips)[:40]}.")
    return flips


def ensemble_shapes(member: dict[str, tuple[tuple[int, ...], str]], k: int,
                    channels: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """The state dict shapes of ``arch.ensemble.Ensemble`` of ``k`` members with ``member``'s shapes."""
    if k == 1:
        return member
    out = {f"members.{i}.{name}": v for i in range(k) for name, v in member.items()}
    out["scale"] = out["shift"] = ((k, channels), "F32")
    return out


MAX_SPEC = {"input_size": 4096, "in_channels": 64, "num_classes": 100_000, "stages": 64, "blocks": 1024,
            "width": 1 << 24}


def _bound_spec(spec, where: str) -> None:
    """Sizes a spec may state before even the meta-device build is tried (which takes time per module)."""
    stages = list(spec.stages or ())
    values = {"input_size": spec.input_size, "in_channels": spec.in_channels, "num_classes": spec.num_classes,
              "stages": len(stages), "blocks": sum(max(0, int(s.depth)) for s in stages),
              "width": max([int(s.width) for s in stages]
                           + [int(spec.stem.width) if spec.stem is not None else 0]
                           + [int(getattr(spec.head, "hidden", 0) or 0)])}
    for key, value in values.items():
        if value > MAX_SPEC[key]:
            what = {"blocks": "blocks in all (sum of the stage depths)", "width": "channels in a layer"}.get(key, key)
            raise UserError(f"'{where}' states {value:,} {what}; at most {MAX_SPEC[key]:,} are allowed.")


def spec_shapes(spec, where: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, dtype)}`` of the state dict ``build(spec)`` has, built on the meta device; UserError when
    the spec cannot be built or has more than MAX_PARAMS parameters."""
    import torch

    from ..arch import InvalidSpec, build

    try:
        with torch.device("meta"):
            model = build(spec)
    except (InvalidSpec, UserError) as exc:
        raise UserError(f"'{where}' describes a network that cannot be built: {exc}") from None
    except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
        text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise UserError(f"'{where}' describes a network that cannot be built: {text[:300]}") from None
    params = sum(p.numel() for p in model.parameters())
    if params > MAX_PARAMS:
        raise UserError(f"'{where}' describes a network of {params:,} parameters; at most {MAX_PARAMS:,} are "
                        f"allowed (nothing was allocated).")
    names = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}
    return {k: (tuple(v.shape), names.get(v.dtype, str(v.dtype))) for k, v in model.state_dict().items()}


def _number_list(value: Any, n: int, key: str, where: str, positive: bool = False) -> None:
    ok = (isinstance(value, list) and len(value) == n
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
    if ok and positive:
        ok = all(v > 0 for v in value)
    if not ok:
        need = f"{n} finite{' positive' if positive else ''} numbers (one per channel)"
        raise UserError(f"'{where}': '{key}' must be {need}, got {str(value)[:120]}.")


def check_preprocessing(pre: Any, spec, where: str) -> dict:
    """``preprocessing.json`` against the spec: input size, channels, per-channel mean/std, class names, task."""
    from ..data.types import TASKS

    if not isinstance(pre, dict):
        raise UserError(f"'{where}' must be a JSON object, got {type(pre).__name__}.")
    for key, want in (("input_size", spec.input_size), ("channels", spec.in_channels)):
        value = pre.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"'{where}': '{key}' must be an integer, got {str(value)[:80]}.")
        if value != want:
            raise UserError(f"'{where}' says {key} {value} but spec.json says {want}; the files do not belong "
                            f"together.")
    _number_list(pre.get("mean"), spec.in_channels, "mean", where)
    _number_list(pre.get("std"), spec.in_channels, "std", where, positive=True)
    names = pre.get("class_names")
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
        raise UserError(f"'{where}': 'class_names' must be a list of names, got {str(names)[:80]}.")
    if len(names) != spec.num_classes:
        raise UserError(f"'{where}' names {len(names)} classes but spec.json's network has {spec.num_classes} "
                        f"outputs; the files do not belong together.")
    if pre.get("task") not in TASKS:
        raise UserError(f"'{where}': 'task' must be one of {', '.join(TASKS)}, got {str(pre.get('task'))[:80]}.")
    activation = "sigmoid" if pre["task"] == "multilabel" else "softmax"
    if pre.get("activation", activation) != activation:
        raise UserError(f"'{where}' says activation {str(pre.get('activation'))[:80]} but its task {pre['task']} "
                        f"needs {activation}.")
    return pre


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_operating_point(op: Any, pre: dict, where: str) -> dict:
    """``operating_point.json`` against the preprocessing: a positive temperature; for a positive class, an index
    into the class names, the same name, and a threshold in [0, 1]."""
    if not isinstance(op, dict):
        raise UserError(f"'{where}' must be a JSON object, got {type(op).__name__}.")
    t = op.get("temperature")
    if not _finite(t) or not MIN_TEMPERATURE <= t <= MAX_TEMPERATURE:  # calibration fits T in this range only
        raise UserError(f"'{where}': 'temperature' must be a number from {MIN_TEMPERATURE:g} to "
                        f"{MAX_TEMPERATURE:g}, got {str(t)[:80]}.")
    for key in ("task", "class_names"):  # each file states them; a pair from two exports disagrees
        if key in op and op[key] != pre.get(key):
            raise UserError(f"'{where}' says {key} {str(op[key])[:80]} but preprocessing.json says "
                            f"{str(pre.get(key))[:80]}; the files do not belong together.")
    activation = "sigmoid" if pre.get("task") == "multilabel" else "softmax"
    stated = op.get("probabilities")
    if isinstance(stated, str) and not stated.startswith(activation):
        raise UserError(f"'{where}' computes probabilities as {stated[:80]!r} but preprocessing.json's task "
                        f"{pre.get('task')} needs {activation}; the files do not belong together.")
    index, names = op.get("positive_index"), pre.get("class_names") or []
    if index is not None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(names) or len(names) != 2:
            raise UserError(f"'{where}': 'positive_index' must index one of 2 class names, got {str(index)[:80]}.")
        if op.get("positive_class") != names[index]:
            raise UserError(f"'{where}' names the positive class {str(op.get('positive_class'))[:80]!r} but "
                            f"preprocessing.json's class {index} is {names[index]!r}; the files do not belong "
                            "together.")
        threshold = op.get("threshold")
        if threshold is not None and (not _finite(threshold) or not 0 <= threshold <= 1):
            raise UserError(f"'{where}': 'threshold' must be a number in [0, 1], got {str(threshold)[:80]}.")
    return op


MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 1e3


def check_state(state: dict, path: Path) -> None:
    """Weight values that give a number for every input: every tensor finite, every BatchNorm running variance
    at least 0 (a NaN weight, say, turns every prediction into the same class)."""
    import torch

    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise UserError(f"the weights '{path}' hold {bad} non-finite value(s) (NaN or infinity) in '{name}'; "
                            "this model cannot give a prediction.")
        if name.endswith("running_var") and bool((tensor < 0).any()):
            raise UserError(f"the weights '{path}' hold a negative BatchNorm variance in '{name}' "
                            f"(min {float(tensor.min()):g}); this model cannot give a prediction.")


def check_weights(path: Path, expected: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """The header of a safetensors file against ``expected`` (``spec_shapes``): same tensor names, dtypes and
    shapes, offsets inside the file. Only the header is read."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise UserError(f"cannot read the weights '{path}': not a safetensors file ({size} bytes).")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER_BYTES, size - 8):
                raise UserError(f"cannot read the weights '{path}': not a safetensors file (header length {n} "
                                f"for a file of {size} bytes).")
            raw = fh.read(n)
    except OSError as exc:
        raise UserError(f"cannot read the weights '{path}': {exc.strerror or exc}.") from None
    if _depth(raw.decode("utf-8", "replace")) > MAX_JSON_DEPTH:
        raise UserError(f"cannot read the weights '{path}': its header is nested too deeply.")
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the weights '{path}': not a safetensors file (its header is not JSON: "
                        f"{exc}).") from None
    if not isinstance(header, dict):
        raise UserError(f"cannot read the weights '{path}': not a safetensors file (its header is not a JSON "
                        f"object).")
    header.pop("__metadata__", None)
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        raise UserError(f"the weights '{path}' do not fit spec.json (missing: {missing[:3]}, unexpected: "
                        f"{unexpected[:3]}).")
    data_bytes = size - 8 - n
    for name, (shape, dtype) in expected.items():
        entry = header[name]
        if not isinstance(entry, dict):
            raise UserError(f"the weights '{path}': tensor '{name}' has no valid header entry.")
        got_shape, got_dtype, offsets = entry.get("shape"), entry.get("dtype"), entry.get("data_offsets")
        if not isinstance(got_shape, list) or tuple(got_shape) != shape:
            raise UserError(f"the weights '{path}' do not fit spec.json: '{name}' has shape "
                            f"{str(got_shape)[:80]}, the spec needs {list(shape)}.")
        if got_dtype != dtype:
            raise UserError(f"the weights '{path}' do not fit spec.json: '{name}' is {str(got_dtype)[:20]}, "
                            f"the spec needs {dtype}.")
        count = math.prod(shape)
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_bytes
                or offsets[1] - offsets[0] != count * _DTYPE_BYTES.get(dtype, 0)):
            raise UserError(f"the weights '{path}' are truncated or corrupt: '{name}' has data offsets "
                            f"{str(offsets)[:60]} in a data section of {data_bytes} bytes.")


def check_folder(folder: Path):
    """The ArchSpec of an exported ``folder`` once spec.json, model.safetensors and (when present)
    preprocessing.json have been checked against each other; UserError naming the first disagreement."""
    spec = parse_spec(folder)
    k, _ = read_ensemble(folder)
    expected = ensemble_shapes(spec_shapes(spec, str(folder / "spec.json")), k, spec.in_channels)
    if (folder / "preprocessing.json").is_file():
        pre = check_preprocessing(read_json(folder / "preprocessing.json"), spec, str(folder / "preprocessing.json"))
        average = read_ensemble(folder)[1]
        if k > 1 and "activation" in pre and average != pre["activation"]:
            raise UserError(f"'{folder / 'spec.json'}' averages its members' {average} outputs but "
                            f"preprocessing.json's task {pre['task']} needs {pre['activation']}; the files do not "
                            "belong together.")
        if pre.get("test_flips", False) != read_flips(folder):
            raise UserError(f"'{folder / 'preprocessing.json'}' and spec.json disagree on test_flips; the files do "
                            "not belong together.")
    if (folder / "model.safetensors").is_file():
        check_weights(folder / "model.safetensors", expected)
    if (folder / "operating_point.json").is_file() and (folder / "preprocessing.json").is_file():
        check_operating_point(read_json(folder / "operating_point.json"),
                              read_json(folder / "preprocessing.json"), str(folder / "operating_point.json"))
    return spec
