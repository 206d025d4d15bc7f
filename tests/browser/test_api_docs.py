"""The API documentation page renders from the site's own assets, with no internet."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_swagger_ui_renders_offline(offline_page, live_server):
    # when /api/docs/ is opened with everything but this site unreachable
    offline_page.page.goto(live_server.url + "/api/docs/")
    title = offline_page.page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    offline_page.page.wait_for_selector(".opblock-tag-section", timeout=15_000)

    # then the schema's title and its endpoints are rendered, and nothing outside the site was asked for
    assert "Crowdmarket API" in title.inner_text()
    assert (
        offline_page.page.locator(
            ".opblock-summary-path", has_text="/api/v1/work/batches/{batch_id}/claim"
        ).count()
        == 1
    )
    assert offline_page.outside == []
    offline_page.screenshot("api-docs")
