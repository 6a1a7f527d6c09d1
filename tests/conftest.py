"""Fixtures for end-to-end tests against a live server on 127.0.0.1/localhost."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin

import pytest
import requests


@pytest.fixture
def issuer(live_server: Any, settings: Any) -> str:
    settings.IDP_ISSUER = live_server.url
    return live_server.url


class BrowserAgent:
    """A user agent that logs in through the real HTML form and stops at the client's redirect."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()

    def follow_to_client(self, url: str, redirect_prefix: str, username: str, password: str) -> str:
        for _ in range(10):
            response = self.http.get(url, allow_redirects=False, timeout=10)
            if response.status_code == 200 and 'name="password"' in response.text:
                response = self._submit_login(response, username, password)
            if response.status_code != 302:
                raise AssertionError(f"unexpected {response.status_code} at {url}: {response.text[:500]}")
            location = response.headers["Location"]
            if location.startswith(redirect_prefix):
                return location
            url = urljoin(response.url, location)
        raise AssertionError("too many redirects")

    def _submit_login(self, page: requests.Response, username: str, password: str) -> requests.Response:
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert found is not None
        token = found.group(1)
        next_match = re.search(r'name="next" value="([^"]*)"', page.text)
        action = re.search(r'<form[^>]*method="post"[^>]*action="([^"]+)"', page.text)
        data = {"csrfmiddlewaretoken": token, "username": username, "password": password}
        if next_match:
            data["next"] = next_match.group(1).replace("&amp;", "&")
        target = urljoin(page.url, action.group(1).replace("&amp;", "&") if action else page.url)
        return self.http.post(target, data=data, allow_redirects=False, timeout=10, headers={"Referer": page.url})
