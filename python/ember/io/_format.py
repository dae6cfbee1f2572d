"""save / load: state dicts in the safetensors format (through the ``safetensors`` package).

Never pickle: a safetensors file is an 8-byte little-endian header length, a JSON header
(dtype, shape and byte range of every tensor, plus a string->string ``__metadata__`` map) and the
raw tensor bytes. Loading one can't run code.

What ember writes
-----------------
Two layouts, told apart by ``__metadata__["ember.layout"]``:

``flat`` -- a model ``state_dict`` (every key a ``str``, every value an array or Tensor). Each
    entry is stored under its own name (``"0.weight"``), so the file is an ordinary safetensors
    file that any other tool (``safetensors.torch.load_file``) reads. ``ember.keys`` keeps the
    original key order (safetensors itself sorts the tensors).

``tree`` -- anything nested (an optimizer ``state_dict``, a checkpoint): dicts, lists, tuples,
    arrays, numpy scalars, and JSON scalars (None, bool, int, float incl. nan/inf, str). Every
    array is stored as a tensor named by its path of container keys joined with ``/``
    (``state/0/exp_avg``, ``model/0.weight``; a ``/`` or ``%`` inside a key is written ``%2F`` /
    ``%25``). ``ember.tree`` is the JSON skeleton with each container tagged, so key types
    (an optimizer's integer parameter ids) and tuple-vs-list survive the round trip:

        {"d": [[key, node], ...]}   dict (insertion order kept; key is a JSON str or int)
        {"l": [node, ...]}          list
        {"t": [node, ...]}          tuple
        {"a": "tensor/name"}        ndarray (or ember Tensor: loaded back as ndarray)
        {"s": "tensor/name"}        numpy scalar (stored as a 0-d tensor, loaded as a scalar)
        null / true / 3 / 0.5 / NaN / "text"     a plain scalar

Every file also carries ``ember.format_version`` and ``ember.crc32``: a CRC-32 of all tensor
bytes in sorted-name order, so a file whose data bytes were damaged (not only truncated) is
rejected. Files written by other tools (no ember metadata) load as a flat dict.

Writes are atomic: the bytes go to a temporary file in the target's directory, are flushed and
fsync'ed, and the temporary file is renamed over the target with ``os.replace``; a crash never
leaves a half-written checkpoint under the real name.
"""
from __future__ import annotations

import json
import numbers
import os
import struct
import tempfile
import zlib
from collections import OrderedDict

import numpy as np

__all__ = ["save", "load", "save_checkpoint", "load_checkpoint"]

FORMAT_VERSION = "1"
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


# ---------------------------------------------------------------------------------------------
# Encoding

def _as_array(v):
    from ..tensor import Tensor

    if isinstance(v, Tensor):
        return v.data
    if isinstance(v, np.ndarray):
        return v
    return None


def _check_dtype(arr, where):
    if arr.dtype.kind not in "biuf" or arr.dtype.byteorder == ">":
        raise TypeError(f"save: {where}: cannot store an array of dtype {arr.dtype} (numeric "
                        f"and bool dtypes only)")


def _escape(key: str) -> str:
    return key.replace("%", "%25").replace("/", "%2F")


def _is_flat(obj) -> bool:
    if not isinstance(obj, dict) or not obj:
        return False
    return all(isinstance(k, str) and _as_array(v) is not None for k, v in obj.items())


def _encode_tree(obj, tensors):
    """JSON skeleton of obj; arrays go into ``tensors`` under their path."""

    def enc(v, path):
        arr = _as_array(v)
        if arr is not None:
            name = "/".join(path) if path else "_"
            _check_dtype(arr, name)
            tensors[name] = np.ascontiguousarray(arr)
            return {"a": name}
        if isinstance(v, np.generic):
            name = "/".join(path) if path else "_"
            arr = np.asarray(v)
            _check_dtype(arr, name)
            tensors[name] = arr.reshape(())
            return {"s": name}
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, numbers.Integral):
            return int(v)
        if isinstance(v, numbers.Real):
            return float(v)
        if isinstance(v, dict):
            items = []
            for k, x in v.items():
                if isinstance(k, bool) or not isinstance(k, (str, numbers.Integral)):
                    raise TypeError(f"save: dict keys must be str or int, got {k!r} at "
                                    f"{'/'.join(path) or 'top level'}")
                k = k if isinstance(k, str) else int(k)
                items.append([k, enc(x, path + [_escape(str(k))])])
            return {"d": items}
        if isinstance(v, (list, tuple)):
            body = [enc(x, path + [str(i)]) for i, x in enumerate(v)]
            return {"t": body} if isinstance(v, tuple) else {"l": body}
        raise TypeError(f"save: cannot store a {type(v).__name__} at "
                        f"{'/'.join(path) or 'top level'} (arrays, dicts, lists, tuples, "
                        f"numbers, str and None only; no pickle)")

    return enc(obj, [])


def _crc(tensors) -> int:
    crc = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.size:
            crc = zlib.crc32(memoryview(a.reshape(-1)).cast("B"), crc)
    return crc


def _state_of(obj):
    """A Module or Optimizer is saved through its state_dict()."""
    if not isinstance(obj, (dict, list, tuple)) and hasattr(obj, "state_dict"):
        return obj.state_dict()
    return obj


def save(obj, path, metadata: dict | None = None) -> None:
    """Writes ``obj`` (a state dict, or a Module/Optimizer via its ``state_dict()``) to ``path``.

    A model state_dict is written as a plain safetensors file; nested objects (optimizer state,
    checkpoints) use the documented ``tree`` layout above. ``metadata``: extra str->str entries
    for the header. The write is atomic.
    """
    import safetensors.numpy as stnp

    obj = _state_of(obj)
    tensors: dict = {}
    meta = {"ember.format_version": FORMAT_VERSION}
    if _is_flat(obj):
        for k, v in obj.items():
            arr = _as_array(v)
            _check_dtype(arr, k)
            tensors[k] = np.ascontiguousarray(arr)
        meta["ember.layout"] = "flat"
        meta["ember.keys"] = json.dumps(list(obj.keys()))
    else:
        tree = _encode_tree(obj, tensors)
        meta["ember.layout"] = "tree"
        meta["ember.tree"] = json.dumps(tree, allow_nan=True)
    meta["ember.crc32"] = str(_crc(tensors))
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"save: metadata must map str to str, got {k!r}: {v!r}")
            if k.startswith("ember."):
                raise ValueError(f"save: metadata keys starting with 'ember.' are reserved, "
                                 f"got {k!r}")
            meta[k] = v
    data = stnp.save(tensors, metadata=meta)
    _atomic_write(os.fspath(path), data)


def _atomic_write(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# Decoding

def _bad(path, why):
    return ValueError(f"load: {path!s} is not a valid ember/safetensors file: {why}")


def _read_header(path, data: bytes):
    size = len(data)
    if size < 8:
        raise _bad(path, f"only {size} bytes (truncated or empty)")
    (n,) = struct.unpack("<Q", data[:8])
    if n == 0 or n > _MAX_HEADER:
        raise _bad(path, f"implausible header length {n} (not a safetensors file?)")
    if 8 + n > size:
        raise _bad(path, f"header says {n} bytes but the file has {size - 8} after the length "
                         f"prefix (truncated)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _bad(path, "header is not a JSON object")
    body = size - 8 - n
    need = 0
    for k, info in header.items():
        if k == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
            need = max(need, int(end))
        except (TypeError, KeyError, ValueError):
            raise _bad(path, f"entry {k!r} has no valid data_offsets") from None
    if need > body:
        raise _bad(path, f"tensor data needs {need} bytes but the file holds {body} "
                         f"(truncated)")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise _bad(path, "__metadata__ is not a JSON object")
    return meta


def _decode_tree(node, tensors, path):
    def dec(v):
        if not isinstance(v, dict):
            return v
        if len(v) != 1:
            raise _bad(path, f"malformed ember.tree node {v!r}")
        (tag, body), = v.items()
        if tag == "d":
            return {(k if isinstance(k, (str, int)) else str(k)): dec(x) for k, x in body}
        if tag == "l":
            return [dec(x) for x in body]
        if tag == "t":
            return tuple(dec(x) for x in body)
        if tag in ("a", "s"):
            if body not in tensors:
                raise _bad(path, f"ember.tree refers to a missing tensor {body!r}")
            arr = tensors[body]
            return arr if tag == "a" else arr[()]
        raise _bad(path, f"unknown ember.tree tag {tag!r}")

    try:
        return dec(node)
    except (TypeError, ValueError) as e:
        if isinstance(e, ValueError) and str(e).startswith("load:"):
            raise
        raise _bad(path, f"malformed ember.tree ({e})") from None


def load(path):
    """Reads a file written by :func:`save` (or any safetensors file) back.

    Returns an ``OrderedDict`` name -> ndarray for a model state_dict (feed it to
    ``model.load_state_dict``), or the nested object for an optimizer state / checkpoint. A
    truncated, corrupt or non-safetensors file raises ``ValueError`` naming the path.
    """
    import safetensors.numpy as stnp

    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    meta = _read_header(path, data)
    try:
        tensors = stnp.load(data)
    except Exception as e:  # SafetensorError has no stable import path across versions
        raise _bad(path, f"safetensors could not decode it ({e})") from None
    if "ember.crc32" in meta:
        try:
            want = int(meta["ember.crc32"])
        except ValueError:
            raise _bad(path, "ember.crc32 is not an integer") from None
        if _crc(tensors) != want:
            raise _bad(path, "checksum mismatch: the tensor data is corrupt")
    layout = meta.get("ember.layout", "flat")
    if layout == "tree":
        try:
            tree = json.loads(meta["ember.tree"])
        except (KeyError, json.JSONDecodeError) as e:
            raise _bad(path, f"missing or invalid ember.tree ({e})") from None
        return _decode_tree(tree, tensors, path)
    if layout != "flat":
        raise _bad(path, f"unknown ember.layout {layout!r}")
    keys = None
    if "ember.keys" in meta:
        try:
            keys = json.loads(meta["ember.keys"])
        except json.JSONDecodeError:
            raise _bad(path, "ember.keys is not valid JSON") from None
        if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(tensors):
            raise _bad(path, "ember.keys does not match the stored tensors")
    if keys is None:
        keys = sorted(tensors)
    return OrderedDict((k, tensors[k]) for k in keys)


def metadata(path) -> dict:
    """The header's string metadata (ember's entries and any passed to ``save``)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _bad(path, f"only {len(head)} bytes (truncated or empty)")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > _MAX_HEADER:
            raise _bad(path, f"implausible header length {n}")
        raw = f.read(n)
    if len(raw) < n:
        raise _bad(path, "header truncated")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"header is not valid JSON ({e})") from None
    return dict(header.get("__metadata__") or {})


# ---------------------------------------------------------------------------------------------
# Checkpoints

def save_checkpoint(path, model, optimizer=None, epoch=None, scheduler=None, **extra) -> None:
    """One file with everything needed to resume: model and optimizer (and scheduler) state,
    the epoch, and any extra JSON-able values or arrays (``best_val_loss=0.12``)."""
    ckpt = {"model": OrderedDict(model.state_dict()) if hasattr(model, "state_dict")
            else model}
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        ckpt["scheduler"] = scheduler.state_dict()
    if epoch is not None:
        ckpt["epoch"] = int(epoch)
    if extra:
        ckpt["extra"] = dict(extra)
    save(ckpt, path)


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, strict: bool = True):
    """Reads a :func:`save_checkpoint` file; loads the state into ``model`` / ``optimizer`` /
    ``scheduler`` when given. Returns the checkpoint dict (``ckpt["epoch"]``, ``ckpt["extra"]``)."""
    ckpt = load(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"load_checkpoint: {path!s} is not a checkpoint (no 'model' entry); "
                         f"was it written by em.save instead of em.io.save_checkpoint?")
    if model is not None:
        model.load_state_dict(ckpt["model"], strict=strict)
    if optimizer is not None:
        if "optimizer" not in ckpt:
            raise ValueError(f"load_checkpoint: {path!s} holds no optimizer state")
        optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        if "scheduler" not in ckpt:
            raise ValueError(f"load_checkpoint: {path!s} holds no scheduler state")
        scheduler.load_state_dict(ckpt["scheduler"])
    return ckpt
