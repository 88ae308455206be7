"""Data: sources, the seeded split, perturbations, and tokenized batches."""

from .prepared import PreparedData, TokenizedSet, prepare_data
from .sources import LabelledText, load_source

__all__ = ["LabelledText", "PreparedData", "TokenizedSet", "load_source", "prepare_data"]
