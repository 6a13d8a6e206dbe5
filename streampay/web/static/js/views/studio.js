// The creator studio: upload with progress and processing status, price and details, earnings and retention
// charts from the analytics endpoints, and payouts with their transaction hashes.
import { api, session, upload } from "../api.js";
import { barChart, lineChart } from "../charts.js";
import { field, h, showErrors } from "../dom.js";
import { format, stroops } from "../money.js";

const POLL_MS = 1000;

function uploadForm(onUploaded) {
  const progress = h("progress", { id: "upload-progress", max: 100, value: 0, hidden: true, "aria-label": "Upload progress" });
  const state = h("p", { id: "upload-status", class: "status", role: "status" });
  const form = h("form", { class: "card", novalidate: true, "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload"),
    field("Media file", { name: "file", type: "file", required: true, accept: "video/*,audio/*" }),
    field("Title", { name: "title", required: true, maxlength: 200 }),
    field("Description", { name: "description", tag: "textarea", rows: 3, maxlength: 5000 }),
    field("Category", { name: "category", value: "general", pattern: "[a-z0-9][a-z0-9\\-]*" }, "Lowercase letters, digits and '-'."),
    field("Tags", { name: "tags" }, "Comma-separated, up to 10."),
    field("Price per second", { name: "price_per_second", required: true, inputmode: "decimal", value: "0.0100000" },
      "In the platform's asset, up to 7 decimal places."),
    h("p", { class: "field check" }, h("input", { type: "checkbox", id: "f-published", name: "is_published", value: "true", checked: true }),
      h("label", { for: "f-published" }, "Publish when ready")),
    h("p", { class: "form-status", role: "alert" }),
    h("button", { type: "submit" }, "Upload"), progress, state);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showErrors(form, null);
    const data = new FormData(form);
    if (!data.has("is_published")) data.set("is_published", "false");
    progress.hidden = false;
    progress.value = 0;
    state.textContent = "Uploading…";
    try {
      const item = await upload("/content", data, (sent, total) => {
        progress.value = Math.round((sent / total) * 100);
        state.textContent = `Uploading… ${progress.value}%`;
      });
      progress.value = 100;
      await watchProcessing(item, state);
      form.reset();
      onUploaded();
    } catch (error) {
      state.textContent = "";
      progress.hidden = true;
      showErrors(form, error);
    }
  });
  return form;
}

async function watchProcessing(item, state) {
  while (item.status === "processing") {
    state.textContent = `“${item.title}” is processing…`;
    await new Promise((r) => setTimeout(r, POLL_MS));
    item = await api(`/content/${item.id}`);
  }
  state.dataset.state = item.status;
  state.textContent = item.status === "ready"
    ? `“${item.title}” is ready.`
    : `“${item.title}” failed: ${item.failure_reason || "unknown reason"}.`;
}

function editForm(item, onSaved) {
  const form = h("form", { class: "card edit", novalidate: true, "aria-label": `Edit ${item.title}` },
    field("Title", { name: "title", id: `t-${item.id}`, value: item.title, required: true }),
    field("Description", { name: "description", id: `d-${item.id}`, tag: "textarea", rows: 2 }),
    field("Category", { name: "category", id: `c-${item.id}`, value: item.category }),
    field("Price per second", { name: "price_per_second", id: `p-${item.id}`, value: item.price_per_second, inputmode: "decimal" }),
    h("p", { class: "field check" }, h("input", { type: "checkbox", id: `pub-${item.id}`, name: "is_published", checked: item.is_published }),
      h("label", { for: `pub-${item.id}` }, "Published")),
    h("p", { class: "form-status", role: "alert" }),
    h("button", { type: "submit" }, "Save"));
  form.querySelector("textarea").value = item.description;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    data.is_published = form.querySelector(`#pub-${item.id}`).checked;
    try {
      await api(`/content/${item.id}`, { method: "PATCH", body: data });
      onSaved();
    } catch (error) {
      showErrors(form, error);
    }
  });
  return form;
}

function itemsTable(items, onChange, showRetention) {
  return h("table", { class: "items" },
    h("caption", { class: "visually-hidden" }, "Your items"),
    h("thead", {}, h("tr", {}, ["Title", "Status", "Price per second", "Duration", ""].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, items.map((item) => {
      const row = h("tr", { dataset: { id: item.id } },
        h("td", {}, item.status === "ready" ? h("a", { href: `#/watch/${item.id}` }, item.title) : item.title),
        h("td", { class: `state ${item.status}` }, item.status === "failed" ? `failed: ${item.failure_reason}` : item.status),
        h("td", { class: "num" }, item.price_per_second),
        h("td", { class: "num" }, item.duration_seconds == null ? "—" : `${item.duration_seconds} s`),
        h("td", {},
          h("button", { type: "button", "aria-expanded": "false", onclick: (e) => {
            const open = e.target.getAttribute("aria-expanded") === "true";
            e.target.setAttribute("aria-expanded", String(!open));
            const next = row.nextElementSibling;
            if (open && next && next.classList.contains("editor")) next.remove();
            else row.after(h("tr", { class: "editor" }, h("td", { colspan: 5 }, editForm(item, onChange))));
          } }, "Edit"),
          " ",
          h("button", { type: "button", onclick: () => showRetention(item) }, "Retention")));
      return row;
    })));
}

function dayLabel(point) {
  const when = point.period || point.start || point.bucket || point.date || point.day;
  return String(when).slice(5, 10);
}

// Earnings by day: GET /analytics/creator; where that is not served, the creator's charges from GET /payments.
async function earningsChart() {
  const to = new Date();
  const from = new Date(to.getTime() - 13 * 86400_000);
  const day = (d) => d.toLocaleDateString("en-CA"); // YYYY-MM-DD, local
  try {
    const report = await api("/analytics/creator", { query: { from: day(from), to: day(to), granularity: "day", tz: timeZone() } });
    const points = (report.series || []).map((p) => ({ label: dayLabel(p), value: Number(stroops(p.net ?? p.gross ?? "0")) }));
    return { chart: barChart("Earnings by day (net of fees)", points, (v) => format(BigInt(Math.round(v)))), source: "analytics" };
  } catch (error) {
    if (error.status !== 404) throw error;
  }
  const byDay = new Map();
  for (let i = 0; i < 14; i++) byDay.set(day(new Date(from.getTime() + i * 86400_000)), 0n);
  const { items } = await api("/payments", { query: { page_size: 100 } });
  for (const p of items) {
    const key = p.created_at.slice(0, 10);
    if (p.role === "creator" && byDay.has(key)) byDay.set(key, byDay.get(key) + stroops(p.amount));
  }
  const points = [...byDay].map(([d, v]) => ({ label: d.slice(5), value: Number(v) }));
  return {
    chart: barChart("Earnings by day (net of fees)", points, (v) => format(BigInt(Math.round(v)))),
    source: "payments",
  };
}

async function retentionChart(item) {
  try {
    const report = await api(`/analytics/content/${item.id}`, { query: { tz: timeZone() } });
    const { curve = [], sessions = 0 } = report.retention || {};
    const points = curve.map((p) => ({ x: p.percent / 100, y: p.share }));
    return h("div", {}, lineChart(`Retention: ${item.title}`, points),
      h("p", {}, `${sessions} session${sessions === 1 ? "" : "s"} in the last 30 days; the share still watching at each 5 % of the item.`));
  } catch (error) {
    if (error.status !== 404) throw error;
    return h("p", {}, "Retention is not available from this server yet.");
  }
}

function timeZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

function payoutsTable(payouts) {
  if (!payouts.length) return h("p", {}, "No payouts yet. They are sent when your earnings reach the threshold and your address is verified.");
  return h("table", { class: "payouts" },
    h("caption", { class: "visually-hidden" }, "Payouts"),
    h("thead", {}, h("tr", {}, ["Date", "Amount", "Status", "Transaction"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, payouts.map((p) => h("tr", {},
      h("td", {}, new Date(p.created_at).toLocaleString()),
      h("td", { class: "num" }, p.amount),
      h("td", {}, p.status),
      h("td", {}, p.tx_hash ? h("code", { class: "hash" }, p.tx_hash) : "—")))));
}

export async function render(main) {
  const me = session.user;
  const list = h("div", { id: "my-items" });
  const charts = h("section", { class: "card", "aria-labelledby": "earnings-title" }, h("h2", { id: "earnings-title" }, "Earnings"));
  const retention = h("section", { class: "card", id: "retention", "aria-labelledby": "retention-title" },
    h("h2", { id: "retention-title" }, "Retention"), h("p", {}, "Choose “Retention” on an item."));
  const payouts = h("section", { class: "card", "aria-labelledby": "payouts-title" }, h("h2", { id: "payouts-title" }, "Payouts"));
  const showRetention = async (item) => {
    retention.replaceChildren(h("h2", { id: "retention-title" }, "Retention"), await retentionChart(item));
    retention.querySelector("h2").focus();
  };
  const refresh = async () => {
    const { items } = await api("/content", { query: { creator_id: me.id, page_size: 50 } });
    list.replaceChildren(items.length ? itemsTable(items, refresh, showRetention) : h("p", {}, "Nothing uploaded yet."));
  };
  main.append(h("h1", {}, "Creator studio"), uploadForm(refresh),
    h("section", { "aria-labelledby": "items-title" }, h("h2", { id: "items-title" }, "Your items"), list),
    charts, retention, payouts);
  await refresh();
  try {
    const wallet = await api("/wallet");
    const earnings = await earningsChart();
    charts.append(h("p", {}, `Not yet paid out: ${wallet.earnings}`), earnings.chart);
    if (earnings.source === "payments") charts.append(h("p", { class: "note" }, "Drawn from your charges (analytics are not served here)."));
  } catch (error) {
    charts.append(h("p", {}, error.message));
  }
  try {
    payouts.append(payoutsTable((await api("/payouts", { query: { page_size: 20 } })).items));
  } catch (error) {
    payouts.append(h("p", {}, error.message));
  }
  return null;
}
