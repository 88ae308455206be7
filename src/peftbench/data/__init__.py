"""Data: sources, the seeded split, perturbations, and tokenized batches."""

from peftbench.data.prepared import PreparedData, TokenizedSet, prepare_data
from peftbench.data.sources import LabelledText, load_source

__all__ = ["LabelledText", "PreparedData", "TokenizedSet", "load_source", "prepare_data"]
