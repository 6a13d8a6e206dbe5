"""The catalogue page: a category, sorting and pages, and a way into each item."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.web.conftest import IN_A_BROWSER

pytestmark = IN_A_BROWSER


def test_a_category_sorted_by_title_over_pages(page, site, clips):
    creator = site.register("creator")
    category = f"cat-{time.time_ns() % 10**9}"
    for title in ("Cedar", "Alder", "Birch"):
        site.upload(creator, clips["short"], title, category=category)

    page.goto(f"/app/#/catalogue?page_size=2&category={category}")
    page.get_by_label("Sort").select_option("title")
    page.get_by_role("button", name="Apply").click()
    items = page.get_by_role("list", name="Items").get_by_role("heading")
    expect(items).to_have_text(["Alder", "Birch"])
    expect(page.get_by_role("status")).to_have_text("3 items")
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("Page 1 of 2")

    page.get_by_role("link", name="Next →").click()
    expect(items).to_have_text(["Cedar"])
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("Page 2 of 2")
    page.get_by_role("link", name="← Previous").click()
    expect(items).to_have_text(["Alder", "Birch"])

    # Anyone may browse; watching asks for an account.
    page.get_by_role("link", name="Birch").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
