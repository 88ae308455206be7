"""Prompt-based methods through peft: prefix tuning, P-tuning and prompt tuning (virtual tokens)."""

import torch
from torch import nn

from peftbench.methods.base import BuildContext, MethodFamily, Option
from peftbench.methods.lora import _wrap, peft_config

TOKENS = Option(16, int, "number of virtual tokens", minimum=1)


def build_prefix(model: nn.Module, o: dict, ctx: BuildContext) -> nn.Module:
    from peft import PrefixTuningConfig

    init = None if o.get("init", "random") == "random" else o["init"]  # specs stored before the option: random
    return _wrap(model, peft_config(ctx, PrefixTuningConfig, num_virtual_tokens=o["tokens"],
                                    prefix_projection=o["projection"], init_weights=init))


class ClsAfterPrompt(nn.Module):
    """A [CLS] pooler that reads the real [CLS] token behind `offset` prepended virtual tokens.

    P-tuning and prompt tuning prepend their virtual tokens to the input embeddings, so a BERT pooler
    (which reads position 0) would classify from the first virtual token: an input-independent embedding
    that sees the text only through attention. Reading [CLS], as every other method does, keeps the
    comparison fair."""

    def __init__(self, pooler: nn.Module, offset: int):
        super().__init__()
        self.inner, self.offset = pooler, offset  # not "pooler": peft matches modules_to_save by suffix

    def forward(self, hidden_states, *args, **kwargs):
        return self.inner(hidden_states[:, self.offset:], *args, **kwargs)


def pool_after_prompt(model: nn.Module, tokens: int, decoder: bool) -> nn.Module:
    """Make the model's pooler (if it has one) read [CLS] behind `tokens` virtual tokens. A decoder has no
    pooler: it classifies from its last token (see `last_token_after_prompt`)."""
    if decoder:
        return model
    for name, module in list(model.named_modules()):
        if name.rsplit(".", 1)[-1] == "pooler" and module is not None and hasattr(module, "dense"):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, "pooler", ClsAfterPrompt(module, tokens))
            break
    return model


def last_token_after_prompt(model: nn.Module, ctx: BuildContext) -> nn.Module:
    """Make a decoder classifier read its last real token when peft hands it embeddings.

    P-tuning and prompt tuning call the model with `inputs_embeds` (virtual tokens prepended) and no
    input ids, so transformers cannot see the padding and classifies every row from the last position: a
    pad token in every right-padded row. Before the model runs, each row's padding is moved to its front
    and positions are given explicitly, so the last position is the last real token and every token keeps
    the position (and output) it has unpadded. Only decoder classifiers need this."""
    if ctx.task_type == "SEQ_CLS" and ctx.decoder:
        model.register_forward_pre_hook(_padding_to_front, with_kwargs=True)
    return model


def _padding_to_front(module: nn.Module, args, kwargs):
    embeds, mask = kwargs.get("inputs_embeds"), kwargs.get("attention_mask")
    if embeds is None or mask is None or kwargs.get("input_ids") is not None or args:
        return None
    width = mask.shape[1]
    pos = torch.arange(width, device=mask.device)
    last = (pos * (mask != 0)).argmax(-1)  # each row's last real position
    shift = (width - 1 - last).unsqueeze(1)
    # no branch on the values (a row without padding rolls by 0: the same inputs, positions 0..width-1 as
    # the model's own), so `peftbench plan`'s fake-tensor trace takes the path a padded batch takes
    src = (pos.unsqueeze(0) - shift) % width  # roll each row right by its trailing padding
    mask = mask.gather(1, src)
    embeds = embeds.gather(1, src.unsqueeze(-1).expand_as(embeds))
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    return args, {**kwargs, "inputs_embeds": embeds, "attention_mask": mask, "position_ids": positions}


def build_ptuning(model: nn.Module, o: dict, ctx: BuildContext) -> nn.Module:
    from peft import PromptEncoderConfig

    model = last_token_after_prompt(pool_after_prompt(model, o["tokens"], ctx.decoder), ctx)
    return _wrap(model, peft_config(ctx, PromptEncoderConfig, num_virtual_tokens=o["tokens"],
                                    encoder_hidden_size=o["encoder_hidden"]))


def build_prompt(model: nn.Module, o: dict, ctx: BuildContext) -> nn.Module:
    from peft import PromptTuningConfig

    model = last_token_after_prompt(pool_after_prompt(model, o["tokens"], ctx.decoder), ctx)
    return _wrap(model, peft_config(ctx, PromptTuningConfig, num_virtual_tokens=o["tokens"]))


PREFIX = MethodFamily(
    name="prefix", summary="Prefix tuning: trained key/value prefixes in every attention layer.",
    default_lr=3e-2, build=build_prefix, lr_grid=(1e-2, 3e-2, 1e-1),
    # decoders: measured with zero prefixes (init=zero), the decoder default set's choice (evidence.py)
    decoder_lr=3e-2, decoder_lr_grid=(3e-3, 1e-2, 3e-2),
    options={"tokens": TOKENS, "projection": Option(False, bool, "reparameterise prefixes through an MLP"),
             # peft's own choice: random prefixes (its default), or zero ones, which start as a near no-op
             # (zero values; zero keys draw only a little attention) instead of swamping a small decoder.
             "init": Option("random", str, "prefix initialisation: random or zero", choices=("random", "zero"))},
)
PTUNING = MethodFamily(
    name="ptuning", summary="P-tuning: virtual-token embeddings produced by a small prompt-encoder MLP.",
    # Validation, default study, mean of three seeds: 3e-3 0.617, 1e-2 0.610, 3e-2 0.582 (methods/evidence).
    # The head trains at the method's rate: at 3e-2 with the head capped at 3e-3, len32 collapsed (0.578).
    default_lr=3e-3, build=build_ptuning, head_at_method_lr=True, lr_grid=(3e-3, 1e-2, 3e-2),
    options={"tokens": TOKENS, "encoder_hidden": Option(128, int, "prompt-encoder hidden size", minimum=1)},
)
PROMPT = MethodFamily(
    name="prompt", summary="Prompt tuning: trained virtual-token embeddings prepended to the input.",
    default_lr=3e-2, build=build_prompt, lr_grid=(1e-2, 3e-2, 1e-1), options={"tokens": TOKENS},
    decoder_lr=1e-2, decoder_lr_grid=(1e-2, 3e-2, 1e-1),  # validation evidence: methods/evidence.py
)
