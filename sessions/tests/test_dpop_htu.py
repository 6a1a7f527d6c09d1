"""RFC 9449 §4.3 check 9: ``htu`` compared after RFC 3986 §6.2.2-6.2.3 normalisation."""

from __future__ import annotations

import pytest

from sessions.dpop.htu import htu_matches, normalize_http_uri, remove_dot_segments


@pytest.mark.parametrize(
    "uri, normal",
    [
        ("https://vigil.example/token", "https://vigil.example/token"),
        ("HTTPS://Vigil.EXAMPLE/token", "https://vigil.example/token"),
        ("https://vigil.example:443/token", "https://vigil.example/token"),
        ("http://vigil.example:80/token", "http://vigil.example/token"),
        ("http://vigil.example:443/token", "http://vigil.example:443/token"),
        ("https://vigil.example:/token", "https://vigil.example/token"),
        ("https://vigil.example", "https://vigil.example/"),
        ("https://vigil.example/token?a=1#b", "https://vigil.example/token"),
        ("https://vigil.example/a/./b/../token", "https://vigil.example/a/token"),
        ("https://vigil.example/%7Euser/%2fx", "https://vigil.example/~user/%2Fx"),
        ("http://[::1]:8000/token", "http://[::1]:8000/token"),
        ("http://[::1]:80/token", "http://[::1]/token"),
    ],
)
def test_normal_form(uri: str, normal: str) -> None:
    assert normalize_http_uri(uri) == normal


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://vigil.example/token",
        "/token",
        "https:///token",
        "https://user:pass@vigil.example/token",
        "https://vigil.example:99999/token",
        "https://vigil.example:port/token",
        "https://vigil.example/to\tken",
        "https://vigil.example/to ken",
        "https://[::1/token",
        "",
    ],
)
def test_not_an_http_uri(uri: str) -> None:
    assert normalize_http_uri(uri) is None
    assert not htu_matches(uri, uri)


@pytest.mark.parametrize(
    "path, result",
    [("/a/b/c/./../../g", "/a/g"), ("/a/..", "/"), ("/..", "/"), ("/a/b/.", "/a/b/"), ("/a//b", "/a//b"), ("/", "/")],
)
def test_remove_dot_segments(path: str, result: str) -> None:
    """RFC 3986 §5.2.4 examples."""
    assert remove_dot_segments(path) == result


def test_encoded_slash_is_not_a_slash() -> None:
    assert not htu_matches("https://vigil.example/a%2Fb", "https://vigil.example/a/b")
