// The wallet: balance, held, the ledger, and how to deposit (text and a SEP-7 QR code made by the server).
import { api } from "../api.js";
import { definitionList, h } from "../dom.js";

const PAGE_SIZE = 20;

async function qrCode() {
  const reply = await api("/wallet/deposit/qr", { raw: true });
  const svg = new DOMParser().parseFromString(await reply.text(), "image/svg+xml").documentElement;
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "QR code of the deposit request");
  svg.setAttribute("width", "264");
  svg.setAttribute("height", "264");
  return document.importNode(svg, true);
}

function ledgerTable(entries) {
  return h("table", { class: "ledger" },
    h("caption", {}, "Ledger entries, newest first"),
    h("thead", {}, h("tr", {}, ["Date", "Account", "Kind", "Amount", "Reason"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, entries.map((e) => h("tr", {},
      h("td", {}, new Date(e.created_at).toLocaleString()),
      h("td", {}, e.account),
      h("td", {}, e.kind),
      h("td", { class: e.amount.startsWith("-") ? "num out" : "num in" }, e.amount),
      h("td", {}, e.reason || (e.details && e.details.content_id ? "stream" : ""))))));
}

export async function render(main) {
  main.append(h("h1", {}, "Wallet"));
  const wallet = await api("/wallet");
  main.append(definitionList([
    ["Balance", wallet.balance, "wallet-balance"],
    ["Held for running streams", wallet.held, "wallet-held"],
    ["Available", wallet.available, "wallet-available"],
    ["Earnings not yet paid out", wallet.earnings, "wallet-earnings"],
  ]));

  const deposit = h("section", { class: "card", "aria-labelledby": "deposit-title" }, h("h2", { id: "deposit-title" }, "Add funds"));
  if (wallet.deposit.address) {
    deposit.append(
      h("p", {}, "Pay the platform's account with your memo, or pay your own muxed address (no memo needed)."),
      definitionList([
        ["Address", wallet.deposit.address, "deposit-address"],
        ["Memo (ID)", wallet.deposit.memo, "deposit-memo"],
        ["Muxed address", wallet.deposit.muxed_address, "deposit-muxed"],
      ]),
      h("figure", { id: "deposit-qr" }, await qrCode(),
        h("figcaption", {}, "Scan with a Stellar wallet: ", h("code", { class: "uri" }, wallet.deposit.payment_uri))));
  } else {
    deposit.append(h("p", {}, "Deposits are not configured on this server."));
  }
  main.append(deposit);

  const section = h("section", { "aria-labelledby": "ledger-title" }, h("h2", { id: "ledger-title" }, "Ledger"));
  const holder = h("div", { class: "table-wrap" });
  const pager = h("nav", { class: "pager", "aria-label": "Ledger pages" });
  section.append(holder, pager);
  main.append(section);
  const show = async (page) => {
    const { items, pagination } = await api("/wallet/ledger", { query: { page, page_size: PAGE_SIZE } });
    holder.replaceChildren(items.length ? ledgerTable(items) : h("p", {}, "No entries yet."));
    pager.replaceChildren();
    if (pagination.previous_page) pager.append(h("button", { type: "button", onclick: () => show(page - 1) }, "← Newer"));
    if (pagination.next_page) pager.append(h("button", { type: "button", onclick: () => show(page + 1) }, "Older →"));
  };
  await show(1);
  return null;
}
