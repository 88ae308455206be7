"""Size on disk of what a user would ship: peft's saved adapter, or the parameters a plain method changed
(every weight for full fine-tuning; biases and head for BitFit), as safetensors."""

from __future__ import annotations

import tempfile
from pathlib import Path

from torch import nn


def shipped_bytes(model: nn.Module) -> int:
    with tempfile.TemporaryDirectory(prefix="peftbench-size-") as tmp:
        if hasattr(model, "peft_config"):
            model.save_pretrained(tmp, safe_serialization=True)
        else:
            from safetensors.torch import save_file

            changed = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
            save_file(changed, str(Path(tmp) / "model.safetensors"))
        return sum(f.stat().st_size for f in Path(tmp).rglob("*.safetensors"))
