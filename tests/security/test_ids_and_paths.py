"""Integers that reach the database are bounded, and unknown API paths answer JSON (issue 13, part 2).

An ``amount_cents`` of 2**63 raised ``OverflowError`` (a 500); a path id past the bigint range
reached the database; an unknown ``/api/`` path answered Django's HTML 404 page.
"""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from crowd.models import Worker
from marketplace.api.converters import ID_MAX
from marketplace.enums import SkillOp
from marketplace.models import Batch, Skill
from payments.api.views import AMOUNT_CENTS_MAX
from tests.factories import ProjectFactory, db_snapshot
from tests.payments.factories import balances, fund_requester, fund_worker

pytestmark = pytest.mark.django_db

NOT_FOUND = {"code": "not_found", "message": "Not found.", "detail": {}}
TOO_BIG = 2**63


def _over(limit: int) -> list[str]:
    return [f"Ensure this value is less than or equal to {limit}."]


def _invalid(**detail) -> dict:
    return {"code": "invalid", "message": "Invalid input.", "detail": detail}


# --- integers in bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field", "limit"),
    [
        ("/api/v1/funding", {"amount_cents": TOO_BIG}, "amount_cents", AMOUNT_CENTS_MAX),
        ("/api/v1/refunds", {"amount_cents": TOO_BIG}, "amount_cents", AMOUNT_CENTS_MAX),
        ("/api/v1/refunds", {"amount_cents": 100, "funding_id": TOO_BIG}, "funding_id", ID_MAX),
        (
            "/api/v1/bonuses",
            {"worker_id": 1, "amount_cents": TOO_BIG, "reason": "r"},
            "amount_cents",
            AMOUNT_CENTS_MAX,
        ),
        ("/api/v1/bonuses", {"worker_id": TOO_BIG, "amount_cents": 100, "reason": "r"}, "worker_id", ID_MAX),
        (
            "/api/v1/restrictions",
            {"worker": "w", "batch": TOO_BIG, "scope": "batch", "reason": "r", "hours": 1},
            "batch",
            ID_MAX,
        ),
    ],
)
def test_a_requester_integer_past_its_bound_is_a_field_error(
    path, body, field, limit, requester, requester_client
):
    # given
    fund_requester(requester.pk, 10_000)
    before, money = db_snapshot(), balances()

    # when
    response = requester_client.post(path, body, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == _invalid(**{field: _over(limit)})
    assert (db_snapshot(), balances()) == (before, money)


def test_a_payout_of_two_to_the_63_cents_is_a_field_error(worker, worker_client):
    # given
    fund_worker(worker.pk, 10_000)
    before, money = db_snapshot(), balances()

    # when
    response = worker_client.post("/api/v1/work/payouts", {"amount_cents": TOO_BIG}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == _invalid(amount_cents=_over(AMOUNT_CENTS_MAX))
    assert (db_snapshot(), balances()) == (before, money)


def test_review_ids_past_the_id_range_are_a_field_error(requester_client):
    response = requester_client.post(
        "/api/v1/assignments/review", {"ids": [1, TOO_BIG], "verdict": "accept"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == _invalid(ids={"1": _over(ID_MAX)})


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        ({"priority": TOO_BIG}, {"priority": _over(2**31 - 1)}),
        (
            {"priority": -TOO_BIG},
            {"priority": [f"Ensure this value is greater than or equal to {-(2**31)}."]},
        ),
        (
            {"filters": [{"skill": TOO_BIG, "op": SkillOp.EXISTS}]},
            {"filters": {"0": {"skill": _over(ID_MAX)}}},
        ),
    ],
)
def test_batch_integers_past_their_bounds_are_field_errors(extra, detail, requester, requester_client):
    # given
    project = ProjectFactory(requester=requester)
    Skill.objects.create(requester=requester, name="s")
    before = db_snapshot()

    # when
    response = requester_client.post(
        "/api/v1/batches", {"project": project.pk, "name": "B", "price_cents": 5, **extra}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == _invalid(**detail)
    assert db_snapshot() == before
    assert Batch.objects.count() == 0


# --- ids in paths ---------------------------------------------------------------------------------


def _id_routes() -> list[str]:
    """Every API route that takes an id (``<id:...>``, or Django's unbounded ``<int:...>``)."""
    found: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and ("<id:" in route or "<int:" in route):
                found.append("/" + route)

    walk(get_resolver().url_patterns, "")
    return found


def _with_id(route: str, value: str) -> str:
    return "/".join(value if part.startswith(("<id:", "<int:")) else part for part in route.split("/"))


def test_every_api_route_with_an_id_uses_the_bounded_converter():
    routes = _id_routes()
    assert len(routes) == 28
    assert [r for r in routes if "<int:" in r] == []


@pytest.mark.parametrize("value", ["99999999999999999999999", str(TOO_BIG), "9" * 19])
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_an_id_past_the_bigint_range_is_404_on_every_route(value, method, requester, requester_client):
    # given a requester who is also a worker, so every route gets past its role check
    Worker.objects.create(user=requester.user)
    before = db_snapshot()

    # when
    responses = {
        route: getattr(requester_client, method)(_with_id(route, value), {}, format="json")
        for route in _id_routes()
    }

    # then
    assert {route: (r.status_code, r.json()) for route, r in responses.items()} == {
        route: (404, NOT_FOUND) for route in responses
    }
    assert db_snapshot() == before


def test_the_largest_id_reaches_the_view(requester_client):
    response = requester_client.get(f"/api/v1/batches/{ID_MAX}")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Batch not found.", "detail": {}}


# --- unknown paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v1/batches/1/nope", "/api/nope", "/api/v1/batches/abc", "/api/v1/me/"]
)
@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options", "head"])
def test_an_unknown_api_path_answers_the_json_error_body(path, method, anon):
    # when
    response = getattr(anon, method)(path)

    # then
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    if method != "head":
        assert response.json() == NOT_FOUND


def test_a_page_whose_slash_form_exists_is_still_redirected(anon):
    response = anon.get("/api/docs?x=1")

    assert response.status_code == 301
    assert response["Location"] == "/api/docs/?x=1"
