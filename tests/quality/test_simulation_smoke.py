"""A tiny run of ``bench/qc_simulation.py``'s core: the simulation works, and QC bites."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

_spec = importlib.util.spec_from_file_location(
    "qc_simulation", Path(__file__).resolve().parents[2] / "bench" / "qc_simulation.py"
)
sim = sys.modules.setdefault("qc_simulation", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(sim)

CLASSES = ["0", "1"]
RULES = [
    {
        "kind": "fast_responses",
        "params": {"window": 6, "count": 3, "seconds": 2.0},
        "action": {"scope": "project", "duration_hours": 24, "reject_pending": True},
    },
    {
        "kind": "majority_agreement",
        "params": {"window": 20, "min_answers": 6, "threshold": 0.6, "min_votes": 2},
        "action": {"scope": "project", "duration_hours": 24, "reject_pending": True},
    },
]


def test_small_crowd_spammers_are_restricted_and_their_answers_rejected():
    # given four careful workers, one random spammer and one constant fast clicker
    profiles = [sim.Profile(sim.HONEST, 1.0, seed) for seed in range(4)] + [
        sim.Profile(sim.SPAMMER, 0.5, 11),
        sim.Profile(sim.FAST, 0.5, 12, constant="1"),
    ]
    regular = {f"r{i}": CLASSES[i % 2] for i in range(40)}
    gold = [(f"g{i}", CLASSES[i % 2]) for i in range(10)]
    common = {"profiles": profiles, "classes": CLASSES, "gold": gold, "regular": regular, "seed": 3}

    # when the crowd works the batch with the rules, and again without
    with_qc = sim.simulate(label="qc", rules=RULES, **common)
    without = sim.simulate(label="noqc", rules=[], **common)

    # then both bad workers are restricted, no careful one is, and their answers were rejected
    assert with_qc.restricted == {sim.SPAMMER: 1, sim.FAST: 1}
    assert with_qc.honest_good == 4 and with_qc.honest_good_restricted == 0
    assert with_qc.bad_share < without.bad_share
    assert with_qc.mv_accuracy >= without.mv_accuracy
    assert with_qc.covered == 1.0 and 0 < with_qc.gold_overhead < 0.5
    assert without.restricted == {}
