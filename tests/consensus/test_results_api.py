"""Results export (JSON Lines, CSV), snapshots and agreement: the requester's public contract."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest
from celery.exceptions import Retry
from django.utils import timezone

from crowd.enums import AssignmentStatus
from marketplace.models import BatchSnapshot, Task
from marketplace.selectors import worker_pseudonym
from marketplace.services.consensus import batch_refit
from marketplace.services.results import snapshot_write
from marketplace.tasks import batch_snapshot_task
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    ProjectFactory,
    WorkerFactory,
    client_for,
    iso,
    make_tasks,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _answer(task, worker, label, status=AssignmentStatus.SUBMITTED):
    return AssignmentFactory(
        task=task, worker=worker, status=status, answer=label, submitted_at=timezone.now()
    )


@pytest.fixture
def answered(project):
    """Two tasks, three workers: unanimous "cat" on the first; "cat", "dog", "dog" on the second;
    a rejected answer that must not count; one unanswered task; fitted once."""
    batch = BatchFactory(project=project)
    first, second, third = make_tasks(batch, 3)
    Task.objects.filter(pk=first.pk).update(external_id="a-1")
    a, b, c = WorkerFactory(), WorkerFactory(), WorkerFactory()
    rows = {
        "first": [_answer(first, a, "cat"), _answer(first, b, "cat"), _answer(first, c, "cat")],
        "second": [_answer(second, a, "cat"), _answer(second, b, "dog"), _answer(second, c, "dog")],
    }
    _answer(third, a, "other", status=AssignmentStatus.REJECTED)
    batch_refit(batch_id=batch.pk)
    return batch, (first, second, third), (a, b, c), rows


@pytest.fixture
def snapshot_of(django_capture_on_commit_callbacks):
    """POST a snapshot request, then run what its commit enqueues (the writing task, eager here)."""

    def post(client, batch):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/v1/batches/{batch.pk}/snapshots")
        return response

    return post


def _lines(response) -> list[dict]:
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def test_results_stream_as_json_lines_with_answers(answered, requester_client, project):
    # given
    batch, (first, second, third), _, rows = answered
    consensus = {t.pk: t.consensus for t in (first, second)}

    # when
    response = requester_client.get(f"/api/v1/batches/{batch.pk}/results?format=jsonl")

    # then
    assert response.status_code == 200
    assert response.streaming is True
    assert response["Content-Type"] == "application/x-ndjson"

    def given(assignments):
        return [
            {
                "worker": worker_pseudonym(requester_id=project.requester_id, worker_id=x.worker_id),
                "answer": x.answer,
                "submitted_at": iso(x.submitted_at),
                "status": "submitted",
            }
            for x in assignments
        ]

    assert _lines(response) == [
        {
            "task": first.pk,
            "external_id": "a-1",
            "input": first.input,
            "answer": "cat",
            "confidence": consensus[first.pk].confidence,
            "answers_count": 3,
            "method": "dawid_skene",
            "model_version": 1,
            "answers": given(rows["first"]),
        },
        {
            "task": second.pk,
            "external_id": None,
            "input": second.input,
            "answer": "dog",
            "confidence": consensus[second.pk].confidence,
            "answers_count": 3,
            "method": "dawid_skene",
            "model_version": 1,
            "answers": given(rows["second"]),
        },
        {
            "task": third.pk,
            "external_id": None,
            "input": third.input,
            "answer": None,
            "confidence": None,
            "answers_count": 0,
            "method": None,
            "model_version": None,
            "answers": [],
        },
    ]
    assert 0.5 < consensus[second.pk].confidence <= 1.0


def test_results_stream_as_csv(answered, requester_client):
    # given
    batch, (first, second, third), _, _ = answered
    c1, c2 = first.consensus.confidence, second.consensus.confidence

    # when
    response = requester_client.get(f"/api/v1/batches/{batch.pk}/results?format=csv")

    # then
    assert response.status_code == 200
    assert response.streaming is True
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert b"".join(response.streaming_content).decode() == (
        "task,external_id,input,answer,confidence,answers_count,method,model_version\n"
        f'{first.pk},a-1,"{{""text"":""item 0""}}","""cat""",{c1},3,dawid_skene,1\n'
        f'{second.pk},,"{{""text"":""item 1""}}","""dog""",{c2},3,dawid_skene,1\n'
        f'{third.pk},,"{{""text"":""item 2""}}",,,0,,\n'
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_results_formats_work_with_the_browsable_api_on(answered, requester_client, settings, fmt):
    # given the development settings' renderers (JSON and the browsable API), with which DRF would
    # read ?format= as a renderer choice and answer 404 for one it does not have
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_RENDERER_CLASSES": [
            "rest_framework.renderers.JSONRenderer",
            "rest_framework.renderers.BrowsableAPIRenderer",
        ],
    }
    batch = answered[0]

    # when
    response = requester_client.get(f"/api/v1/batches/{batch.pk}/results?format={fmt}")

    # then
    assert response.status_code == 200
    assert len(b"".join(response.streaming_content).splitlines()) == 3 + (fmt == "csv")


def test_results_of_a_few_thousand_tasks_stream_in_chunks(project, requester_client):
    # given
    batch = BatchFactory(project=project)
    make_tasks(batch, 3000)

    # when
    response = requester_client.get(f"/api/v1/batches/{batch.pk}/results")

    # then: several chunks, not one body built in memory
    chunks = list(response.streaming_content)
    assert len(chunks) > 1
    assert b"".join(chunks).count(b"\n") == 3000


def test_unknown_format_is_400(answered, requester_client):
    batch = answered[0]
    response = requester_client.get(f"/api/v1/batches/{batch.pk}/results?format=xml")
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Unknown format.",
        "detail": {"format": ["Choose one of: jsonl, csv."]},
    }


# --- snapshots -----------------------------------------------------------------------------------


def test_snapshot_freezes_the_results_with_their_checksum(answered, requester_client, media, snapshot_of):
    # given
    batch, tasks, workers, _ = answered
    live = b"".join(requester_client.get(f"/api/v1/batches/{batch.pk}/results").streaming_content)

    # when
    response = snapshot_of(requester_client, batch)

    # then it is accepted as pending, and the task it enqueued has written it
    assert response.status_code == 202
    snapshot = BatchSnapshot.objects.get()
    assert response.json() == {
        "id": snapshot.pk,
        "batch": batch.pk,
        "status": "pending",
        "error": "",
        "sha256": "",
        "size_bytes": None,
        "tasks_count": None,
        "answers_count": None,
        "method": "",
        "model_version": None,
        "parameters": {},
        "created_at": iso(snapshot.created_at),
        "completed_at": None,
    }
    listed = requester_client.get(f"/api/v1/batches/{batch.pk}/snapshots")
    assert listed.json() == [
        {
            "id": snapshot.pk,
            "batch": batch.pk,
            "status": "ready",
            "error": "",
            "sha256": hashlib.sha256(live).hexdigest(),
            "size_bytes": len(live),
            "tasks_count": 3,
            "answers_count": 6,
            "method": "dawid_skene",
            "model_version": 1,
            "parameters": {
                "format": "jsonl",
                "aggregation_method": "dawid_skene",
                "overlap": 3,
                "min_overlap": None,
                "max_overlap": None,
                "target_confidence": None,
                "consensus_version": 1,
            },
            "created_at": iso(snapshot.created_at),
            "completed_at": iso(snapshot.completed_at),
        }
    ]
    path = media / snapshot.path
    assert path.read_bytes() == live
    assert not os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)

    # when the results move on
    _answer(tasks[2], workers[1], "dog")
    batch_refit(batch_id=batch.pk)
    download = requester_client.get(f"/api/v1/batches/{batch.pk}/snapshots/{snapshot.pk}/download")

    # then the snapshot has not, and writing it again changes nothing
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert body == live
    assert hashlib.sha256(body).hexdigest() == snapshot.sha256 == download["X-Checksum-SHA256"]
    assert snapshot_write(snapshot_id=snapshot.pk).sha256 == snapshot.sha256
    assert os.listdir(media / "snapshots") == [path.name]
    with pytest.raises(ValueError):
        snapshot.save()


def test_a_pending_snapshot_cannot_be_downloaded_yet(answered, requester_client, media):
    # given a request whose task has not run (no worker yet)
    batch = answered[0]
    sid = requester_client.post(f"/api/v1/batches/{batch.pk}/snapshots").json()["id"]
    url = f"/api/v1/batches/{batch.pk}/snapshots/{sid}/download"

    # when / then
    response = requester_client.get(url)
    assert response.status_code == 409
    assert response.json()["code"] == "snapshot_pending"

    # when the worker gets to it
    assert batch_snapshot_task.delay(sid).get() == "ready"

    # then
    assert requester_client.get(url).status_code == 200


def test_a_snapshot_whose_task_gives_up_is_marked_failed(answered, requester_client, media):
    # given a media directory that cannot be written
    batch = answered[0]
    sid = requester_client.post(f"/api/v1/batches/{batch.pk}/snapshots").json()["id"]
    media.mkdir(parents=True, exist_ok=True)
    (media / "snapshots").write_text("a file where the directory should be")

    # when the task fails, it asks to be retried and the snapshot stays pending
    with pytest.raises(Retry):
        batch_snapshot_task.apply(args=[sid], retries=0).get()
    assert BatchSnapshot.objects.get(pk=sid).status == "pending"

    # when its last retry fails too
    with pytest.raises(OSError):
        batch_snapshot_task.apply(args=[sid], retries=batch_snapshot_task.max_retries).get()

    # then
    snapshot = BatchSnapshot.objects.get(pk=sid)
    assert snapshot.status == "failed" and snapshot.error.startswith("FileExistsError")
    response = requester_client.get(f"/api/v1/batches/{batch.pk}/snapshots/{sid}/download")
    assert response.status_code == 409
    assert response.json()["code"] == "snapshot_failed"


def test_a_tampered_snapshot_is_not_served(answered, requester_client, media, snapshot_of):
    # given
    batch = answered[0]
    sid = snapshot_of(requester_client, batch).json()["id"]
    path = media / BatchSnapshot.objects.get(pk=sid).path
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes().replace(b"cat", b"dog"))

    # when
    response = requester_client.get(f"/api/v1/batches/{batch.pk}/snapshots/{sid}/download")

    # then
    assert response.status_code == 500
    assert response.json()["code"] == "snapshot_corrupt"


# --- agreement -----------------------------------------------------------------------------------


def test_agreement_hand_computed(answered, requester_client, project):
    # given (see the fixture) task 1: cat, cat, cat; task 2: cat, dog, dog.
    # Fleiss: P = (1 + 1/3) / 2 = 2/3, Pe = (4/6)^2 + (2/6)^2 = 5/9 -> (2/3 - 5/9) / (4/9) = 0.25.
    # Krippendorff (nominal): Do = 2 (task 2), De = 6^2 - (4^2 + 2^2) = 16 -> 1 - 5 * 2 / 16 = 0.375.
    # Cohen on 2 shared tasks: a-b and a-c agree 1/2 with chance 1/2 -> 0; b-c agree fully -> 1.
    batch, _, (a, b, c), _ = answered

    # when
    response = requester_client.get(f"/api/v1/batches/{batch.pk}/agreement?min_shared=2")

    # then
    assert response.status_code == 200

    def name(w):
        return worker_pseudonym(requester_id=project.requester_id, worker_id=w.pk)

    assert response.json() == {
        "answers": 6,
        "tasks": 2,
        "workers": 3,
        "krippendorff_alpha": 0.375,
        "krippendorff_alpha_interval": None,
        "fleiss_kappa": 0.25,
        "min_shared_tasks": 2,
        "per_worker": sorted(
            [
                {"worker": name(a), "answers": 2, "pairs": 2, "mean_kappa": 0.0},
                {"worker": name(b), "answers": 2, "pairs": 2, "mean_kappa": 0.5},
                {"worker": name(c), "answers": 2, "pairs": 2, "mean_kappa": 0.5},
            ],
            key=lambda r: r["worker"],
        ),
    }


def test_agreement_when_no_two_workers_share_enough_tasks(answered, requester_client):
    # given (see the fixture) three workers sharing 2 tasks, fewer than the default 10

    # when
    response = requester_client.get(f"/api/v1/batches/{answered[0].pk}/agreement")

    # then the batch-wide figures are there, and no worker has a pair kappa
    assert response.status_code == 200
    body = response.json()
    assert (body["krippendorff_alpha"], body["fleiss_kappa"], body["min_shared_tasks"]) == (0.375, 0.25, 10)
    assert [(w["answers"], w["pairs"], w["mean_kappa"]) for w in body["per_worker"]] == [(2, 0, None)] * 3


def test_agreement_of_a_batch_without_answers(batch, requester_client):
    response = requester_client.get(f"/api/v1/batches/{batch.pk}/agreement")
    assert response.status_code == 200
    assert response.json() == {
        "answers": 0,
        "tasks": 0,
        "workers": 0,
        "krippendorff_alpha": None,
        "krippendorff_alpha_interval": None,
        "fleiss_kappa": None,
        "min_shared_tasks": 10,
        "per_worker": [],
    }


# --- other tenants -------------------------------------------------------------------------------


def test_another_requesters_batch_is_404_everywhere(answered, media, snapshot_of):
    # given
    batch = answered[0]
    snapshot_id = snapshot_of(client_for(batch.project.requester.user), batch).json()["id"]
    stranger = client_for(ProjectFactory().requester.user)
    files = sorted(os.listdir(media / "snapshots"))

    # when / then
    for method, url in [
        ("get", f"/api/v1/batches/{batch.pk}/results?format=jsonl"),
        ("get", f"/api/v1/batches/{batch.pk}/results?format=csv"),
        ("get", f"/api/v1/batches/{batch.pk}/snapshots"),
        ("post", f"/api/v1/batches/{batch.pk}/snapshots"),
        ("get", f"/api/v1/batches/{batch.pk}/snapshots/{snapshot_id}/download"),
        ("get", f"/api/v1/batches/{batch.pk}/agreement"),
    ]:
        response = getattr(stranger, method)(url)
        assert response.status_code == 404, url
        assert response.json() == {"code": "not_found", "message": "Batch not found.", "detail": {}}
    assert BatchSnapshot.objects.count() == 1
    assert sorted(os.listdir(media / "snapshots")) == files


def test_a_snapshot_of_another_batch_is_404(answered, requester_client, project):
    # given
    batch = answered[0]
    sid = requester_client.post(f"/api/v1/batches/{batch.pk}/snapshots").json()["id"]
    other = BatchFactory(project=project)

    # when
    response = requester_client.get(f"/api/v1/batches/{other.pk}/snapshots/{sid}/download")

    # then
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
