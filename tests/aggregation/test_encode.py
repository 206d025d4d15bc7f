"""Coding ids into integer arrays, and input validation shared by every method."""

import numpy as np
import pytest

from crowd.aggregation import dawid_skene, encode, encode_multilabel, majority_vote


def test_encode_codes_ids_in_sorted_order_and_round_trips():
    enc = encode(["t2", "t1", "t2"], ["bob", "amy", "amy"], ["cat", "dog", "cat"])

    assert enc.tasks.tolist() == ["t1", "t2"]
    assert enc.workers.tolist() == ["amy", "bob"]
    assert enc.labels.tolist() == ["cat", "dog"]
    assert enc.task_idx.tolist() == [1, 0, 1]
    assert enc.worker_idx.tolist() == [1, 0, 0]
    assert enc.label.tolist() == [0, 1, 0]
    assert enc.tasks[enc.task_idx].tolist() == ["t2", "t1", "t2"]


def test_encode_with_label_values_keeps_an_unanswered_class():
    enc = encode([1, 2], [1, 1], ["b", "b"], label_values=["a", "b", "c"])

    assert enc.n_classes == 3
    assert enc.label.tolist() == [1, 1]


def test_encode_gold_maps_known_tasks_and_ignores_unanswered_ones():
    enc = encode(["t1", "t2"], ["w", "w"], ["no", "yes"])

    assert enc.encode_gold({"t2": "no", "t9": "yes"}).tolist() == [-1, 0]
    with pytest.raises(ValueError, match="no worker gave"):
        enc.encode_gold({"t1": "maybe"})


def test_encode_multilabel_builds_an_indicator_matrix():
    indicators, names = encode_multilabel([{"red", "big"}, set(), {"big"}])

    assert names.tolist() == ["big", "red"]
    assert indicators.tolist() == [[1, 1], [0, 0], [1, 0]]


@pytest.mark.parametrize("method", [majority_vote, dawid_skene])
def test_empty_input_is_a_clear_error(method):
    with pytest.raises(ValueError, match="input is empty"):
        method(np.array([], dtype=int), np.array([], dtype=int), np.array([], dtype=int))


def test_encode_empty_input_is_a_clear_error():
    with pytest.raises(ValueError, match="input is empty"):
        encode([], [], [])


@pytest.mark.parametrize(
    ("task_idx", "worker_idx", "label", "message"),
    [
        ([0, 1], [0], [0, 1], "one length"),
        ([0, -1], [0, 0], [0, 1], "negative"),
        ([0.0, 1.0], [0, 0], [0, 1], "integer codes"),
    ],
)
def test_malformed_codes_are_rejected(task_idx, worker_idx, label, message):
    with pytest.raises(ValueError, match=message):
        majority_vote(np.array(task_idx), np.array(worker_idx), np.array(label))


def test_a_code_beyond_an_explicit_size_is_rejected():
    with pytest.raises(ValueError, match="n_classes=2"):
        majority_vote(np.array([0]), np.array([0]), np.array([2]), n_classes=2)
