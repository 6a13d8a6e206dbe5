// The catalogue: GET /content with search, category, sort and pagination (the X-Pagination header).
import { api, url } from "../api.js";
import { field, h } from "../dom.js";
import { duration } from "../money.js";

const PAGE_SIZE = 12;
const SORTS = [["newest", "Newest"], ["title", "Title"], ["price", "Cheapest"], ["-price", "Dearest"],
  ["duration", "Shortest"], ["-duration", "Longest"]];

function card(item) {
  const thumb = item.has_thumbnail
    ? h("img", { src: url(`/content/${item.id}/thumbnail`), alt: "", loading: "lazy", width: 320, height: 180 })
    : h("div", { class: "thumb-none", "aria-hidden": "true" }, item.media_type.startsWith("audio") ? "♪" : "▶");
  return h("li", { class: "card item" },
    thumb,
    h("h2", {}, h("a", { href: `#/watch/${item.id}` }, item.title)),
    h("p", { class: "meta" }, `${item.creator} · ${item.category} · ${duration(item.duration_seconds)}`),
    h("p", { class: "price" }, `${item.price_per_second} per second`),
    item.status !== "ready" ? h("p", { class: "badge" }, item.status) : null);
}

export async function render(main, queryString = "") {
  const params = new URLSearchParams(queryString);
  const page = Math.max(1, parseInt(params.get("page") || "1", 10));
  const pageSize = Math.min(100, Math.max(1, parseInt(params.get("page_size") || String(PAGE_SIZE), 10)));
  const form = h("form", { class: "filters", role: "search" },
    field("Search", { name: "search", type: "search", value: params.get("search") || "" }),
    field("Category", { name: "category", value: params.get("category") || "", pattern: "[a-z0-9][a-z0-9\\-]*" }),
    h("p", { class: "field" }, h("label", { for: "f-sort" }, "Sort"),
      h("select", { id: "f-sort", name: "sort" },
        SORTS.map(([value, label]) => h("option", { value, selected: params.get("sort") === value }, label)))),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams([...new FormData(form)].filter(([, v]) => v !== ""));
    if (params.get("page_size")) next.set("page_size", params.get("page_size"));
    location.hash = `#/catalogue?${next}`;
  });
  const status = h("p", { class: "status", role: "status" }, "Loading…");
  const list = h("ul", { class: "grid", "aria-label": "Items" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  main.append(h("h1", {}, "Catalogue"), form, status, list, pager);

  try {
    const query = { page, page_size: pageSize, sort: params.get("sort") || "newest",
      search: params.get("search") || "", category: params.get("category") || "" };
    const { items, pagination } = await api("/content", { query });
    status.textContent = pagination.total ? `${pagination.total} item${pagination.total === 1 ? "" : "s"}` : "Nothing matches.";
    list.append(...items.map(card));
    const go = (n) => { params.set("page", n); return `#/catalogue?${params}`; };
    if (pagination.previous_page) pager.append(h("a", { href: go(pagination.previous_page), rel: "prev" }, "← Previous"));
    pager.append(h("span", {}, ` Page ${pagination.page || page} of ${pagination.total_pages || 1} `));
    if (pagination.next_page) pager.append(h("a", { href: go(pagination.next_page), rel: "next" }, "Next →"));
  } catch (error) {
    status.textContent = error.message;
  }
}
