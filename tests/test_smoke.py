"""The site answers and the OpenAPI schema renders without warnings."""

import pytest


@pytest.mark.django_db
def test_health_and_schema(anon):
    assert anon.get("/healthz").json() == {"status": "ok"}
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/work/batches/{batch_id}/claim" in paths
    assert "/api/v1/batches/{batch_id}/tasks" in paths
