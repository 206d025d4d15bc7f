"""Bulk task upload: JSON arrays and JSON Lines, per-row errors, atomic mode, de-duplication."""

from __future__ import annotations

import json

import pytest

from marketplace.enums import BatchStatus
from marketplace.models import Task
from tests.factories import BatchFactory, db_snapshot, iso, make_tasks, open_batch

pytestmark = pytest.mark.django_db

NDJSON = "application/x-ndjson"


def _upload(client, batch, body, *, content_type="application/json", query=""):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(f"/api/v1/batches/{batch.pk}/tasks{query}", data=data, content_type=content_type)


def _tasks(batch) -> list[tuple]:
    return list(
        Task.objects.filter(batch=batch)
        .order_by("id")
        .values_list("input", "is_gold", "gold_answer", "external_id", "overlap", "status", "slots_taken")
    )


def _result(**values) -> dict:
    return {
        "received": 0,
        "created": 0,
        "gold_created": 0,
        "duplicates": 0,
        "invalid": 0,
        "errors": [],
        "errors_truncated": False,
        **values,
    }


# --- valid and invalid rows -----------------------------------------------------------------


def test_upload_json_array_creates_regular_and_gold_tasks(batch, requester_client):
    # given
    rows = [
        {"input": {"text": "a cat"}},
        {"input": {"text": "a dog"}, "external_id": "row-2"},
        {"input": {"text": "a known cat"}, "gold_answer": "cat", "external_id": "gold-1"},
        {"input": {"text": "null gold is regular"}, "gold_answer": None},
    ]

    # when
    response = _upload(requester_client, batch, rows)

    # then
    assert response.status_code == 201
    assert response.json() == _result(received=4, created=4, gold_created=1)
    assert _tasks(batch) == [
        ({"text": "a cat"}, False, None, None, 3, "open", 0),
        ({"text": "a dog"}, False, None, "row-2", 3, "open", 0),
        ({"text": "a known cat"}, True, "cat", "gold-1", 3, "open", 0),
        ({"text": "null gold is regular"}, False, None, None, 3, "open", 0),
    ]


def test_upload_reports_invalid_rows_by_index_and_creates_the_valid_ones(batch, requester_client):
    # given
    rows = [
        {"input": {"text": "fine"}},
        {"input": {"text": ""}},
        {"input": {"txt": "typo"}},
        "not an object",
        {"input": {"text": "fine too"}, "gold_answer": "bird"},
        {"gold_answer": "cat", "extra": 1},
        {"input": ["a list"], "external_id": ""},
        {"input": {"text": "last"}, "external_id": 7},
        {"input": {"text": "ok"}, "external_id": "x" * 201},
        {"input": {"text": "valid at the end"}, "gold_answer": "dog"},
    ]

    # when
    response = _upload(requester_client, batch, rows)

    # then
    assert response.status_code == 201
    assert response.json() == _result(
        received=10,
        created=2,
        gold_created=1,
        invalid=8,
        errors=[
            {"index": 1, "detail": {"input": ["$.text: '' should be non-empty"]}},
            {
                "index": 2,
                "detail": {
                    "input": [
                        "$: Additional properties are not allowed ('txt' was unexpected)",
                        "$: 'text' is a required property",
                    ]
                },
            },
            {"index": 3, "detail": {"row": ["Each row must be a JSON object."]}},
            {"index": 4, "detail": {"gold_answer": ["$: 'bird' is not one of ['cat', 'dog', 'other']"]}},
            {
                "index": 5,
                "detail": {"row": ["Unknown field(s): extra."], "input": ["This field is required."]},
            },
            {
                "index": 6,
                "detail": {
                    "input": ["Must be a JSON object."],
                    "external_id": ["Must be a string of 1 to 200 characters."],
                },
            },
            {"index": 7, "detail": {"external_id": ["Must be a string of 1 to 200 characters."]}},
            {"index": 8, "detail": {"external_id": ["Must be a string of 1 to 200 characters."]}},
        ],
    )
    assert _tasks(batch) == [
        ({"text": "fine"}, False, None, None, 3, "open", 0),
        ({"text": "valid at the end"}, True, "dog", None, 3, "open", 0),
    ]


UNSTORABLE = "Must not contain the NUL character (\\u0000) or an unpaired surrogate."


def test_upload_reports_rows_postgresql_cannot_store_instead_of_failing(batch, requester_client):
    # given rows whose JSON escapes decode to U+0000 or to an unpaired surrogate
    rows = [
        {"input": {"text": "nul \x00 inside"}},
        {"input": {"text": "fine"}, "gold_answer": "cat\x00"},
        {"input": {"text": "fine"}, "external_id": "id\x00"},
        {"input": {"text": "half an emoji \ud83d"}},
        {"input": {"text": "ok", "meta\x00": 1}},
        {"input": {"text": "a real emoji \U0001f600 is fine"}},
    ]
    project = batch.project
    project.answer_schema = {"type": "string"}
    project.input_schema = {"type": "object"}
    project.save()

    # when
    response = _upload(requester_client, batch, rows)

    # then
    assert response.status_code == 201
    assert response.json() == _result(
        received=6,
        created=1,
        invalid=5,
        errors=[
            {"index": 0, "detail": {"input": [UNSTORABLE]}},
            {"index": 1, "detail": {"gold_answer": [UNSTORABLE]}},
            {"index": 2, "detail": {"external_id": [UNSTORABLE]}},
            {"index": 3, "detail": {"input": [UNSTORABLE]}},
            {"index": 4, "detail": {"input": [UNSTORABLE]}},
        ],
    )
    assert _tasks(batch) == [({"text": "a real emoji \U0001f600 is fine"}, False, None, None, 3, "open", 0)]


def test_upload_with_only_invalid_rows_is_200_and_creates_nothing(batch, requester_client):
    # given
    before = db_snapshot()

    # when
    response = _upload(requester_client, batch, [{"input": {}}])

    # then
    assert response.status_code == 200
    assert response.json() == _result(
        received=1,
        invalid=1,
        errors=[{"index": 0, "detail": {"input": ["$: 'text' is a required property"]}}],
    )
    assert db_snapshot() == before


def test_upload_reports_at_most_1000_errors(batch, requester_client):
    # given
    rows = [{"input": {}}] * 1001 + [{"input": {"text": "ok"}}]

    # when
    response = _upload(requester_client, batch, rows)

    # then
    assert response.status_code == 201
    body = response.json()
    assert {k: v for k, v in body.items() if k != "errors"} == {
        "received": 1002,
        "created": 1,
        "gold_created": 0,
        "duplicates": 0,
        "invalid": 1001,
        "errors_truncated": True,
    }
    assert [e["index"] for e in body["errors"]] == list(range(1000))


# --- JSON Lines -----------------------------------------------------------------------------


def test_upload_json_lines(batch, requester_client):
    # given
    body = "\n".join(
        [
            '{"input": {"text": "one"}, "external_id": "1"}',
            "",
            '{"input": {"text": "two"}, "gold_answer": "dog"}',
            '{"input": {"text": ',
            '{"input": {"text": "four"}}',
        ]
    )

    # when
    response = _upload(requester_client, batch, body, content_type=f"{NDJSON}; charset=utf-8")

    # then the blank line is skipped and the broken line is reported at its row index
    assert response.status_code == 201
    assert response.json() == _result(
        received=4,
        created=3,
        gold_created=1,
        invalid=1,
        errors=[{"index": 2, "detail": {"row": ["Malformed JSON: Expecting value at column 20."]}}],
    )
    assert _tasks(batch) == [
        ({"text": "one"}, False, None, "1", 3, "open", 0),
        ({"text": "two"}, True, "dog", None, 3, "open", 0),
        ({"text": "four"}, False, None, None, 3, "open", 0),
    ]


# --- atomic ---------------------------------------------------------------------------------


def test_atomic_upload_with_an_invalid_row_is_400_and_creates_nothing(batch, requester_client):
    # given
    make_tasks(batch, 1)
    rows = [{"input": {"text": "ok"}}, {"input": {"text": 5}}, {"input": {"text": "ok too"}}]
    before = db_snapshot()

    # when
    response = _upload(requester_client, batch, rows, query="?atomic=true")

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_rows",
        "message": "1 of 3 rows are invalid; nothing was created.",
        "detail": {
            "rows": [{"index": 1, "detail": {"input": ["$.text: 5 is not of type 'string'"]}}],
            "invalid": 1,
        },
    }
    assert db_snapshot() == before


def test_atomic_json_lines_upload_with_a_malformed_line_is_400(batch, requester_client):
    # given
    before = db_snapshot()

    # when
    response = _upload(
        requester_client,
        batch,
        '{"input": {"text": "ok"}}\nnot json\n',
        content_type=NDJSON,
        query="?atomic=1",
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_rows",
        "message": "1 of 2 rows are invalid; nothing was created.",
        "detail": {
            "rows": [{"index": 1, "detail": {"row": ["Malformed JSON: Expecting value at column 1."]}}],
            "invalid": 1,
        },
    }
    assert db_snapshot() == before


def test_atomic_upload_of_valid_rows_creates_them_all(batch, requester_client):
    # when
    response = _upload(
        requester_client, batch, [{"input": {"text": "a"}}, {"input": {"text": "b"}}], query="?atomic=true"
    )

    # then
    assert response.status_code == 201
    assert response.json() == _result(received=2, created=2)
    assert Task.objects.filter(batch=batch).count() == 2


# --- de-duplication -------------------------------------------------------------------------


def test_resending_the_same_external_ids_creates_no_duplicates(batch, requester_client):
    # given
    rows = [{"input": {"text": f"t{i}"}, "external_id": f"ext-{i}"} for i in range(3)]
    assert _upload(requester_client, batch, rows).status_code == 201
    before = db_snapshot()

    # when
    response = _upload(requester_client, batch, rows)

    # then
    assert response.status_code == 200
    assert response.json() == _result(received=3, duplicates=3)
    assert db_snapshot() == before


def test_resending_with_new_rows_creates_only_the_new_ones(batch, requester_client):
    # given
    _upload(requester_client, batch, [{"input": {"text": "old"}, "external_id": "a"}])
    rows = [
        {"input": {"text": "changed text, same id"}, "external_id": "a"},
        {"input": {"text": "new"}, "external_id": "b"},
        {"input": {"text": "repeated within the upload"}, "external_id": "b"},
        {"input": {"text": "no id"}},
    ]

    # when
    response = _upload(requester_client, batch, rows)

    # then
    assert response.status_code == 201
    assert response.json() == _result(received=4, created=2, duplicates=2)
    assert _tasks(batch) == [
        ({"text": "old"}, False, None, "a", 3, "open", 0),
        ({"text": "new"}, False, None, "b", 3, "open", 0),
        ({"text": "no id"}, False, None, None, 3, "open", 0),
    ]


def test_the_same_external_id_in_another_batch_is_not_a_duplicate(project, batch, requester_client):
    # given
    other = BatchFactory(project=project)
    _upload(requester_client, other, [{"input": {"text": "x"}, "external_id": "shared"}])

    # when
    response = _upload(requester_client, batch, [{"input": {"text": "x"}, "external_id": "shared"}])

    # then
    assert response.status_code == 201
    assert response.json() == _result(received=1, created=1)


# --- refused uploads ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[{"input": ', "Malformed JSON: Expecting value (line 1, column 12)."),
        ("", "Malformed JSON: Expecting value (line 1, column 1)."),
        ("[1,]", "Malformed JSON: Expecting value (line 1, column 4)."),
        (
            '{"input": {"text": "a"}}',
            "Expected a JSON array of task rows (or JSON Lines with Content-Type application/x-ndjson).",
        ),
    ],
)
def test_malformed_json_is_400_and_creates_nothing(batch, requester_client, body, message):
    # given
    before = db_snapshot()

    # when
    response = _upload(requester_client, batch, body)

    # then
    assert response.status_code == 400
    assert response.json() == {"code": "malformed_request", "message": message, "detail": {}}
    assert db_snapshot() == before


@pytest.mark.parametrize(("body", "content_type"), [("[]", "application/json"), ("\n\n", NDJSON)])
def test_empty_upload_is_400(batch, requester_client, body, content_type):
    # given
    before = db_snapshot()

    # when
    response = _upload(requester_client, batch, body, content_type=content_type)

    # then
    assert response.status_code == 400
    assert response.json() == {"code": "empty_upload", "message": "The upload holds no rows.", "detail": {}}
    assert db_snapshot() == before


def test_upload_over_the_row_limit_is_400(batch, requester_client, settings):
    # given
    settings.TASK_UPLOAD_MAX_ROWS = 2
    before = db_snapshot()

    # when
    response = _upload(requester_client, batch, [{"input": {"text": str(i)}} for i in range(3)])

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "upload_too_large",
        "message": "At most 2 rows per upload; split it.",
        "detail": {},
    }
    assert db_snapshot() == before


def test_upload_over_the_byte_limit_is_400(batch, requester_client, settings):
    # given
    settings.TASK_UPLOAD_MAX_BYTES = 30
    before = db_snapshot()

    # when
    response = _upload(requester_client, batch, [{"input": {"text": "x" * 40}}])

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "upload_too_large",
        "message": "The body exceeds 30 bytes.",
        "detail": {},
    }
    assert db_snapshot() == before


def test_upload_to_a_closed_batch_is_409(project, requester_client):
    # given
    batch = BatchFactory(project=project, status=BatchStatus.CLOSED)
    before = db_snapshot()

    # when
    response = _upload(requester_client, batch, [{"input": {"text": "late"}}])

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "batch_closed",
        "message": "Tasks cannot be added to a closed batch.",
        "detail": {},
    }
    assert db_snapshot() == before


@pytest.mark.parametrize("status", [BatchStatus.OPEN, BatchStatus.PAUSED])
def test_upload_to_a_published_batch_adds_tasks(project, requester_client, status):
    # given
    batch = open_batch(project=project, regular=1)
    batch.status = status
    batch.save(update_fields=["status"])

    # when
    response = _upload(requester_client, batch, [{"input": {"text": "more"}}])

    # then
    assert response.status_code == 201
    assert response.json() == _result(received=1, created=1)
    assert Task.objects.filter(batch=batch).count() == 2


def test_upload_to_another_requesters_batch_is_404(requester_client):
    # given
    theirs = BatchFactory()
    before = db_snapshot()

    # when
    response = _upload(requester_client, theirs, [{"input": {"text": "spam"}}])

    # then
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Batch not found.", "detail": {}}
    assert db_snapshot() == before


# --- reading tasks back ---------------------------------------------------------------------


def test_requester_lists_tasks_with_gold_answers(batch, requester_client):
    # given
    regular, gold = make_tasks(batch, 1, gold=1, gold_answer="dog")

    # when
    everything = requester_client.get(f"/api/v1/batches/{batch.pk}/tasks")
    gold_only = requester_client.get(f"/api/v1/batches/{batch.pk}/tasks?is_gold=true")

    # then
    def row(task):
        task.refresh_from_db()
        return {
            "id": task.pk,
            "external_id": None,
            "input": task.input,
            "is_gold": task.is_gold,
            "gold_answer": task.gold_answer,
            "gold_explanation": "",  # issue 3
            "status": "open",
            "overlap": 3,
            "slots_taken": 0,
            "answers_count": 0,
            "created_at": iso(task.created_at),
        }

    assert everything.status_code == 200
    assert everything.json() == {"next": None, "previous": None, "results": [row(regular), row(gold)]}
    assert gold_only.json() == {"next": None, "previous": None, "results": [row(gold)]}


def test_tasks_of_another_requesters_batch_are_404(requester_client):
    # given
    theirs = BatchFactory()
    make_tasks(theirs, 1, gold=1)

    # when
    response = requester_client.get(f"/api/v1/batches/{theirs.pk}/tasks")

    # then
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Batch not found.", "detail": {}}


# --- the big one ----------------------------------------------------------------------------

BIG_UPLOAD_ROWS = 100_000


def test_big_upload_of_100k_rows_in_one_request(batch, requester_client):
    """The largest upload the spec promises, in one request. The slowest test of the suite."""
    # given one JSON Lines body of 100,000 rows, every tenth one with an external id
    body = "\n".join(
        f'{{"input":{{"text":"row {i}"}},"external_id":"e{i}"}}'
        if i % 10 == 0
        else f'{{"input":{{"text":"row {i}"}}}}'
        for i in range(BIG_UPLOAD_ROWS)
    )

    # when
    response = _upload(requester_client, batch, body, content_type=NDJSON)

    # then
    assert response.status_code == 201
    assert response.json() == _result(received=BIG_UPLOAD_ROWS, created=BIG_UPLOAD_ROWS)
    tasks = Task.objects.filter(batch=batch)
    assert tasks.count() == BIG_UPLOAD_ROWS
    assert tasks.filter(external_id__isnull=False).count() == BIG_UPLOAD_ROWS // 10
    assert tasks.order_by("-id").values_list("input", flat=True).first() == {
        "text": f"row {BIG_UPLOAD_ROWS - 1}"
    }
