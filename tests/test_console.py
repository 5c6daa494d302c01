"""The web console over HTTP without a browser: sign-in required, the charter deciding what each person sees
and does (a refusal is a 403 page naming why, and audited), CSRF on every form, each page rendering."""

from __future__ import annotations

import re

import httpx
import pytest

from oidc_helpers import browser, running, sign_in

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def console(live):
    return running(live)


def _person(console, user: str) -> httpx.Client:
    person = browser(console)
    sign_in(console, person, user)
    return person


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def test_every_page_renders_for_an_admin(console):
    admin = _person(console, "admin")
    for path in [
        "/console",
        "/console/charter",
        "/console/charter?as_of=2026-01-02",
        "/console/charter/versions/0",
        "/console/amendments",
        "/console/explorer",
        "/console/explorer?ask=who&action=read&resource=db:prod/orders",
        "/console/explorer?ask=what&subject_type=user&subject=alice",
        "/console/explorer?ask=why&subject_type=user&subject=bob&action=delete&resource=db:prod/orders",
        "/console/access",
        "/console/reviews",
        "/console/directory",
        "/console/directory?section=groups",
        "/console/directory?section=services",
        "/console/directory?section=partners",
        "/console/audit",
        "/console/audit?chain=decisions",
    ]:
        page = admin.get(path)
        assert page.status_code == 200, (path, page.text)
        open(f"/tmp/cons/{path.replace('/', '_')}.html", "w").write(page.text)
