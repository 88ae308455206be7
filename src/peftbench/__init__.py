"""peftbench: measure parameter-efficient fine-tuning methods on your model and data, and choose one."""

__version__ = "0.1.0"

from peftbench.api import (
    data_efficiency,
    export,
    parameters,
    races,
    rank_choice,
    results,
    run,
    study,
    summary,
    summary_table,
    tuning_choices,
)
from peftbench.errors import PeftbenchError  # noqa: E402

__all__ = ["PeftbenchError", "data_efficiency", "export", "parameters", "races", "rank_choice", "results", "run",
           "study", "summary", "summary_table", "tuning_choices", "__version__"]
