"""The interactive API documentation (`/docs`) of both services works on a machine without
internet (issue 9, item 11): its page names only the service's own URLs, those answer with
the Swagger UI assets shipped in the package, and a real headless Chromium whose network
beyond loopback is closed (tests/web/conftest.py) renders every operation."""

from __future__ import annotations

import json
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from webkit import Shop, shot

pytestmark = pytest.mark.timeout(180)

ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def test_the_docs_assets_are_package_data() -> None:
    """A wheel (not only this checkout) carries the assets: pyproject's package-data."""
    from web import apidocs

    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["*"]
    for name in apidocs.ASSETS:
        assert (apidocs.STATIC / name).is_file(), name
        inside = (apidocs.STATIC / name).relative_to(root / "web").as_posix()
        assert any(fnmatch(inside, p) for p in patterns), (inside, patterns)


def services(shop: Shop) -> dict[str, str]:
    return {"hq": shop.hq_url, "agent": shop.a.url}


def referenced(html: str) -> list[str]:
    """Every URL the page loads or names: src/href attributes and quoted URLs in scripts."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    found += re.findall(r"""url\s*:\s*["']([^"']+)["']""", html)
    found += re.findall(r"""\b(?:https?:)?//[^\s"'<>)]+""", html)
    return found


@pytest.mark.parametrize("name", ["hq", "agent"])
def test_the_docs_page_names_only_local_urls_and_they_answer_with_the_assets(
        shop: Shop, name: str) -> None:
    base = services(shop)[name]
    page = requests.get(base + "/docs", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = referenced(page.text)
    assert urls, page.text
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), (url, page.text)
    assets = [u for u in urls if urlsplit(u).path.endswith(tuple(ASSET_TYPES))]
    assert {urlsplit(u).path.rsplit(".", 1)[-1] for u in assets} >= {"js", "css"}, assets
    for url in assets:
        answer = requests.get(urljoin(base, url), timeout=10)
        assert answer.status_code == 200, (url, answer.status_code)
        kind = ASSET_TYPES["." + urlsplit(url).path.rsplit(".", 1)[-1]]
        assert kind in answer.headers["content-type"], (url, answer.headers["content-type"])
        if url.endswith(".js"):
            assert len(answer.content) > 500_000 and b"SwaggerUIBundle" in answer.content
    for wrong in ("nothing.js", "..%2Fapidocs.py", "%2E%2E%2F%2E%2E%2Fpyproject.toml"):
        assert requests.get(f"{base}/docs/static/{wrong}", timeout=10).status_code == 404, wrong


def requested_urls(browser: Any) -> list[str]:
    """Every request the browser made since the last call (Chrome's performance log)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@pytest.mark.parametrize("name", ["hq", "agent"])
def test_the_docs_render_every_operation_in_a_browser_without_internet(
        shop: Shop, browser: Any, name: str) -> None:
    base = services(shop)[name]
    paths = requests.get(base + "/openapi.json", timeout=10).json()["paths"]
    operations = sum(len(methods) for methods in paths.values())
    requested_urls(browser)  # forget what earlier tests loaded
    browser.get(base + "/docs")
    WebDriverWait(browser, 20).until(
        EC.presence_of_all_elements_located((By.CSS_SELECTOR, ".opblock")))
    blocks = browser.find_elements(By.CSS_SELECTOR, ".opblock")
    assert len(blocks) == operations, (len(blocks), operations)
    shown = {b.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute(
        "data-path") for b in blocks}
    assert shown == set(paths)
    assert browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith("Loyalty")
    path = shot(browser, f"{name}-api-docs")
    assert path.stat().st_size > 10_000
    network = [u for u in requested_urls(browser) if u.startswith(("http:", "https:", "ws"))]
    assert any(u.endswith("/swagger-ui-bundle.js") for u in network), network
    for url in network:  # the page went nowhere but its own service
        assert url.startswith(base + "/"), url
