"""QC rules, restrictions, filters, skills, reliability and the worker's own view."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from crowd.enums import RestrictionScope
from crowd.models import Assignment, QualityRule, Reliability, Restriction, WorkerSkill
from crowd.quality.reliability import estimate
from crowd.quality.scoring import gold_score
from marketplace.models import Skill, Task
from tests.factories import AssignmentFactory, WorkerFactory, client_for, open_batch

pytestmark = pytest.mark.django_db

GOLD_RULE = {
    "kind": "gold_accuracy",
    "params": {"window": 10, "min_answers": 3, "threshold": 0.6},
    "action": {"scope": "project", "duration_hours": 24, "reject_pending": True},
}


def _claim(client, batch, count=1):
    return client.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": count}, format="json")


def _submit(client, pk, answer="cat"):
    return client.post(f"/api/v1/work/assignments/{pk}/submit", {"answer": answer}, format="json")


@pytest.mark.parametrize(
    ("answer", "gold", "config", "expected"),
    [
        ("cat", "cat", {}, (True, 1.0)),
        ("dog", "cat", {"kind": "exact"}, (False, 0.0)),
        (3.4, 3.0, {"kind": "numeric", "tolerance": 0.5}, (True, 1.0)),
        (3.6, 3.0, {"kind": "numeric", "tolerance": 0.5}, (False, 0.0)),
        ("3", 3, {"kind": "numeric", "tolerance": 1}, (False, 0.0)),
        (["a", "b"], ["b", "a"], {"kind": "set"}, (True, 1.0)),
        (["a", "b", "c"], ["a", "b"], {"kind": "jaccard", "threshold": 0.6}, (True, 2 / 3)),
        (["a"], ["a", "b", "c"], {"kind": "jaccard", "threshold": 0.6}, (False, 1 / 3)),
    ],
)
def test_gold_scoring(answer, gold, config, expected):
    assert gold_score(answer, gold, config) == expected


def test_reliability_prior_and_interval():
    new = estimate(0, 0)
    assert new.mean == pytest.approx(0.8)
    spammer = estimate(3, 12)
    assert spammer.mean == pytest.approx(7 / 17)
    assert spammer.low < spammer.mean < spammer.high


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": "fuzzy"}, "kind"),
        ({"kind": "numeric", "tolerance": -1}, "tolerance"),
        ({"kind": "jaccard", "threshold": 0}, "threshold"),
        ({"kind": "exact", "x": 1}, "Unknown"),
    ],
)
def test_bad_answer_comparison_is_400(project, requester_client, config, message):
    response = requester_client.patch(
        f"/api/v1/projects/{project.pk}", {"answer_comparison": config}, format="json"
    )
    assert response.status_code == 400
    assert message in str(response.json()["detail"])


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({**GOLD_RULE, "params": {"window": 0, "min_answers": 1, "threshold": 0.5}}, "params"),
        ({**GOLD_RULE, "params": {"window": 5, "min_answers": 6, "threshold": 0.5}}, "params"),
        ({**GOLD_RULE, "params": {"window": 5, "min_answers": 3, "threshold": 0.5, "windw": 3}}, "params"),
        ({**GOLD_RULE, "kind": "vibes"}, "kind"),
        ({**GOLD_RULE, "action": {"scope": "platform", "duration_hours": 1}}, "action"),
        ({**GOLD_RULE, "action": {"scope": "batch", "duration_hours": 0}}, "action"),
        (
            {
                "kind": "fast_responses",
                "params": {"window": 3, "count": 5, "seconds": 2},
                "action": GOLD_RULE["action"],
            },
            "params",
        ),
    ],
)
def test_invalid_rules_are_400_and_not_stored(batch, requester_client, rule, field):
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/rules", rule, format="json")
    assert response.status_code == 400
    assert field in response.json()["detail"]
    assert not QualityRule.objects.exists()


def test_rules_of_another_requesters_batch_are_404(requester_client):
    other = open_batch(regular=1)
    response = requester_client.post(f"/api/v1/batches/{other.pk}/rules", GOLD_RULE, format="json")
    assert response.status_code == 404


def test_gold_accuracy_rule_restricts_once_and_rejects_pending(requester, requester_client):
    # given a batch where every claim is gold (beside regular work) with the rule
    batch = open_batch(
        project__requester=requester, regular=5, gold=10, gold_rate=1.0, max_claims_per_request=10
    )
    assert (
        requester_client.post(f"/api/v1/batches/{batch.pk}/rules", GOLD_RULE, format="json").status_code
        == 201
    )
    worker = WorkerFactory()
    client = client_for(worker.user)
    leases = [a["id"] for a in _claim(client, batch, 5).json()["assignments"]]

    # when the worker answers every control task wrong
    responses = [_submit(client, pk, "dog") for pk in leases]

    # then one restriction at the project, and the pending answers were rejected
    (restriction,) = Restriction.objects.filter(worker=worker)
    assert (restriction.scope, restriction.project_id, restriction.created_by) == (
        "project",
        batch.project_id,
        "rule",
    )
    assert restriction.ends_at is not None
    # the third wrong answer fired the rule: it and the two before were rejected, and the two
    # leases still held were handed back, so those answers are refused
    assert [r.status_code for r in responses] == [200, 200, 200, 409, 409]
    assert responses[2].json()["status"] == "rejected"
    assert [r.json()["code"] for r in responses[3:]] == ["assignment_released"] * 2
    assert set(Assignment.objects.filter(pk__in=leases[:3]).values_list("status", flat=True)) == {"rejected"}
    assert set(Assignment.objects.filter(pk__in=leases[3:]).values_list("status", flat=True)) == {"released"}
    rel = Reliability.objects.get(worker=worker, project=batch.project)
    assert (rel.gold_total, rel.gold_correct) == (3, 0)
    # and the worker can no longer see or claim the batch
    assert client.get("/api/v1/work/batches").json()["count"] == 0
    refused = _claim(client, batch)
    assert refused.status_code == 403
    assert refused.json()["code"] == "worker_restricted"
    assert refused.json()["detail"]["reason"] == restriction.reason
    # and /work/me shows it, with reliability but no per-task scores
    me = client.get("/api/v1/work/me").json()
    assert [r["id"] for r in me["restrictions"]] == [restriction.pk]
    assert me["reliability"] == {
        "score": 0.8,
        "interval": me["reliability"]["interval"],
        "answers_counted": 0,
    }

    # when the requester lifts it, twice
    lifted = requester_client.post(f"/api/v1/restrictions/{restriction.pk}/lift")
    again = requester_client.post(f"/api/v1/restrictions/{restriction.pk}/lift")

    # then
    assert lifted.status_code == 200 and lifted.json()["lifted_at"] is not None
    assert again.status_code == 409
    assert _claim(client, batch).status_code == 200


def test_skips_in_row_rule(requester, requester_client):
    batch = open_batch(project__requester=requester, regular=5)
    rule = {"kind": "skips_in_row", "params": {"count": 3}, "action": {"scope": "batch", "duration_hours": 1}}
    requester_client.post(f"/api/v1/batches/{batch.pk}/rules", rule, format="json")
    worker = WorkerFactory()
    client = client_for(worker.user)
    leases = [a["id"] for a in _claim(client, batch, 4).json()["assignments"]]
    _submit(client, leases[0])
    for pk in leases[1:3]:
        client.post(f"/api/v1/work/assignments/{pk}/skip")
    assert not Restriction.objects.exists()
    client.post(f"/api/v1/work/assignments/{leases[3]}/skip")
    (r,) = Restriction.objects.all()
    assert (r.scope, r.batch_id, r.reason) == ("batch", batch.pk, "You skipped 3 tasks in a row.")


def test_fast_responses_rule(requester, requester_client):
    batch = open_batch(project__requester=requester, regular=5)
    rule = {
        "kind": "fast_responses",
        "params": {"window": 3, "count": 3, "seconds": 60},
        "action": {"scope": "requester", "duration_hours": None},
    }
    requester_client.post(f"/api/v1/batches/{batch.pk}/rules", rule, format="json")
    worker = WorkerFactory()
    client = client_for(worker.user)
    for pk in [a["id"] for a in _claim(client, batch, 3).json()["assignments"]]:
        _submit(client, pk)
    (r,) = Restriction.objects.all()
    assert (r.scope, r.requester_id, r.ends_at) == ("requester", requester.pk, None)


def test_majority_agreement_rule(requester, requester_client):
    batch = open_batch(project__requester=requester, regular=3, overlap=3)
    rule = {
        "kind": "majority_agreement",
        "params": {"window": 10, "min_answers": 3, "threshold": 0.5, "min_votes": 2},
        "action": {"scope": "batch", "duration_hours": 2},
    }
    requester_client.post(f"/api/v1/batches/{batch.pk}/rules", rule, format="json")
    honest = [client_for(WorkerFactory().user) for _ in range(2)]
    for c in honest:
        for pk in [a["id"] for a in _claim(c, batch, 3).json()["assignments"]]:
            _submit(c, pk, "cat")
    odd = WorkerFactory()
    oc = client_for(odd.user)
    for pk in [a["id"] for a in _claim(oc, batch, 3).json()["assignments"]]:
        _submit(oc, pk, "dog")
    assert list(Restriction.objects.values_list("worker_id", flat=True)) == [odd.pk]


def test_skill_filters_gate_list_and_claim(requester, requester_client):
    # given a batch open to workers with skill >= 50
    skill = requester_client.post("/api/v1/skills", {"name": "English"}, format="json").json()
    batch = open_batch(project__requester=requester, regular=2)
    response = requester_client.patch(
        f"/api/v1/batches/{batch.pk}",
        {"filters": [{"skill": skill["id"], "op": ">=", "value": 50}]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    low, high, none = WorkerFactory(), WorkerFactory(), WorkerFactory()
    WorkerSkill.objects.create(worker=low, skill_id=skill["id"], value=40)
    WorkerSkill.objects.create(worker=high, skill_id=skill["id"], value=60)

    # then
    for worker, visible in ((low, 0), (high, 1), (none, 0)):
        client = client_for(worker.user)
        assert client.get("/api/v1/work/batches").json()["count"] == visible
        claim = _claim(client, batch)
        assert claim.status_code == (200 if visible else 403)
        if not visible:
            assert claim.json()["code"] == "filters_not_met"


@pytest.mark.parametrize(
    ("op", "value", "holders"),
    [("exists", None, {"a", "b"}), ("not exists", None, {"c"}), ("==", 70, {"b"}), ("<=", 30, {"a"})],
)
def test_skill_filter_comparators(requester, requester_client, op, value, holders):
    skill = Skill.objects.create(requester=requester, name="S")
    batch = open_batch(project__requester=requester, regular=1)
    f = {"skill": skill.pk, "op": op} | ({"value": value} if value is not None else {})
    assert (
        requester_client.patch(f"/api/v1/batches/{batch.pk}", {"filters": [f]}, format="json").status_code
        == 200
    )
    workers = {"a": WorkerFactory(), "b": WorkerFactory(), "c": WorkerFactory()}
    WorkerSkill.objects.create(worker=workers["a"], skill=skill, value=20)
    WorkerSkill.objects.create(worker=workers["b"], skill=skill, value=70)
    seen = {k for k, w in workers.items() if client_for(w.user).get("/api/v1/work/batches").json()["count"]}
    assert seen == holders


def test_unknown_skill_in_a_filter_is_400(batch, requester_client):
    other = Skill.objects.create(requester=open_batch().project.requester, name="Theirs")
    response = requester_client.patch(
        f"/api/v1/batches/{batch.pk}", {"filters": [{"skill": other.pk, "op": "exists"}]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == {"filters": [f"Unknown skill(s): {other.pk}."]}


def _control_answers(batch, worker, *, right: int, wrong: int, hours_ago: float) -> None:
    """Scored control answers of ``worker`` in ``batch``'s project, submitted ``hours_ago``."""
    at = timezone.now() - timedelta(hours=hours_ago)
    for i, correct in enumerate([True] * right + [False] * wrong):
        task = Task.objects.create(
            batch=batch,
            input={"text": f"g{worker.pk}-{hours_ago}-{i}"},
            is_gold=True,
            gold_answer="cat",
            overlap=1,
        )
        AssignmentFactory(
            task=task,
            worker=worker,
            status="submitted",
            answer="cat" if correct else "dog",
            gold_correct=correct,
            submitted_at=at,
        )


def test_min_reliability_filter_reads_control_answers_past_the_reveal_delay(requester):
    batch = open_batch(project__requester=requester, regular=1, min_reliability=0.7)
    good, bad = WorkerFactory(), WorkerFactory()
    _control_answers(batch, bad, right=2, wrong=8, hours_ago=25)
    assert client_for(good.user).get("/api/v1/work/batches").json()["count"] == 1  # the prior: 0.8
    assert client_for(bad.user).get("/api/v1/work/batches").json()["count"] == 0  # (4+2)/(5+10)=0.4


def test_a_fresh_wrong_control_answer_changes_no_eligibility(requester):
    # given a worker just above the bar on answers older than a day, and a batch they may see
    batch = open_batch(project__requester=requester, regular=1, min_reliability=0.7)
    worker = WorkerFactory()
    client = client_for(worker.user)
    _control_answers(batch, worker, right=3, wrong=2, hours_ago=25)  # (4+3)/(5+5) = 0.7

    def seen() -> tuple:
        me = client.get("/api/v1/work/me").json()
        batch_status = client.get(f"/api/v1/work/batches/{batch.pk}").status_code
        return batch_status, me["reliability"], me["reliability_by_project"]

    before = seen()

    # when they answer control tasks wrongly now (live reliability far below the bar)
    _control_answers(batch, worker, right=0, wrong=10, hours_ago=0.1)
    Reliability.objects.create(worker=worker, project=batch.project, gold_total=15, gold_correct=3)
    after = seen()
    claim = client.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": 1}, format="json")

    # then nothing the worker sees moves until those answers are a day old: not the batch, not
    # work/me, not the claim
    assert before == after
    assert before[0] == 200
    assert claim.status_code == 200

    # and a day later the batch is out of reach (the same lagged figure work/me shows)
    with override_settings(GOLD_REVEAL_DELAY_HOURS=0):
        assert client.get(f"/api/v1/work/batches/{batch.pk}").status_code == 404
        assert client.get("/api/v1/work/me").json()["reliability"]["answers_counted"] == 15
        refused = client.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": 1}, format="json")
        assert (refused.status_code, refused.json()["code"]) == (403, "filters_not_met")


def test_training_batch_grants_the_skill_and_explains_wrong_answers(requester, requester_client):
    # given a training batch of two tasks with known answers
    skill = Skill.objects.create(requester=requester, name="Animals")
    batch = open_batch(project__requester=requester, regular=0, is_training=True, training_skill=skill)
    upload = [
        {"input": {"text": "a"}, "gold_answer": "cat", "gold_explanation": "It meows."},
        {"input": {"text": "b"}, "gold_answer": "dog", "gold_explanation": "It barks."},
    ]
    assert (
        requester_client.post(f"/api/v1/batches/{batch.pk}/tasks", upload, format="json").status_code == 201
    )
    worker = WorkerFactory()
    client = client_for(worker.user)
    leases = [a["id"] for a in _claim(client, batch, 2).json()["assignments"]]

    # when one answer is right, one wrong
    results = [_submit(client, pk, "cat").json() for pk in leases]

    # then the wrong one carries its explanation, and 50 % < the pass mark grants nothing
    assert sorted(r["explanation"] or "" for r in results) == ["", "It barks."]
    assert not WorkerSkill.objects.filter(worker=worker).exists()


def test_project_workers_use_pseudonyms_only(requester, requester_client):
    batch = open_batch(project__requester=requester, regular=2, overlap=2)
    worker = WorkerFactory(user__email="secret-person@example.com")
    client = client_for(worker.user)
    for pk in [a["id"] for a in _claim(client, batch, 2).json()["assignments"]]:
        _submit(client, pk)
    response = requester_client.get(f"/api/v1/projects/{batch.project_id}/workers")
    assert response.status_code == 200
    (row,) = response.json()
    assert row["worker"].startswith("w-") and row["answers"] == 2
    assert "secret-person" not in response.content.decode()
    assert str(worker.pk) != row["worker"]
    assert requester_client.get(f"/api/v1/projects/{open_batch().project_id}/workers").status_code == 404


def test_requester_restricts_by_pseudonym_but_not_platform(requester, requester_client):
    batch = open_batch(project__requester=requester, regular=2)
    worker = WorkerFactory()
    client = client_for(worker.user)
    (pk,) = [a["id"] for a in _claim(client, batch, 1).json()["assignments"]]
    _submit(client, pk)
    pseudonym = requester_client.get(f"/api/v1/projects/{batch.project_id}/workers").json()[0]["worker"]
    body = {"worker": pseudonym, "batch": batch.pk, "scope": "batch", "reason": "Spam.", "hours": None}
    assert requester_client.post("/api/v1/restrictions", body, format="json").status_code == 201
    assert Restriction.objects.get().scope == RestrictionScope.BATCH
    platform = requester_client.post("/api/v1/restrictions", {**body, "scope": "platform"}, format="json")
    assert platform.status_code == 403  # restriction_create_by_requester: admins only
