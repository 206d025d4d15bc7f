"""Truth inference and agreement over crowd answers: pure NumPy/SciPy, no Django, no I/O.

Everything takes parallel integer arrays, one row per answer (``task_idx``, ``worker_idx``,
``label``; ``encode`` turns ids into such codes), and returns plain dataclasses of arrays, so the
same code serves an instant per-task consensus, a periodic batch re-fit and the benchmarks.
"""

from ._encode import Encoded, encode, encode_multilabel
from .agreement import PairwiseKappa, fleiss_kappa, krippendorff_alpha, pairwise_cohen_kappa
from .em import (
    DEFAULT_POLICY,
    EMPolicy,
    confusion_counts,
    confusion_from_counts,
    dawid_skene,
    one_coin_dawid_skene,
    posteriors_from_model,
)
from .majority import accuracy_to_weights, majority_vote, weighted_vote
from .multilabel import MultiLabelResult, multilabel_dawid_skene
from .numeric import NumericResult, weighted_median
from .result import AggregationResult

__all__ = [
    "DEFAULT_POLICY",
    "AggregationResult",
    "EMPolicy",
    "Encoded",
    "MultiLabelResult",
    "NumericResult",
    "PairwiseKappa",
    "accuracy_to_weights",
    "confusion_counts",
    "confusion_from_counts",
    "dawid_skene",
    "encode",
    "encode_multilabel",
    "fleiss_kappa",
    "krippendorff_alpha",
    "majority_vote",
    "multilabel_dawid_skene",
    "one_coin_dawid_skene",
    "pairwise_cohen_kappa",
    "posteriors_from_model",
    "weighted_median",
    "weighted_vote",
]
