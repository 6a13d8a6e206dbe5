// The router: #/catalogue, #/watch/<id>, #/wallet, #/studio, #/sign-in, #/sign-up. Each view renders into <main>.
import { api, session } from "./api.js";
import * as auth from "./views/auth.js";
import * as catalogue from "./views/catalogue.js";
import * as studio from "./views/studio.js";
import * as wallet from "./views/wallet.js";
import * as watch from "./views/watch.js";

const ROUTES = [
  [/^#\/watch\/([0-9a-f-]{36})$/, watch.render, "user"],
  [/^#\/wallet$/, wallet.render, "user"],
  [/^#\/studio$/, studio.render, "creator"],
  [/^#\/sign-in$/, auth.renderSignIn, null],
  [/^#\/sign-up$/, auth.renderSignUp, null],
  [/^#\/catalogue(?:\?(.*))?$/, catalogue.render, null],
];

const main = document.getElementById("view");
let leave = null;
let turn = 0; // the route being rendered: a render that a newer route overtook is dropped, never shown

function showNav() {
  const user = session.user;
  for (const el of document.querySelectorAll("[data-needs]")) {
    const needs = el.dataset.needs;
    const shown = needs === "guest" ? !user : needs === "user" ? !!user : !!user && user.role === needs;
    el.closest("li").hidden = !shown;
  }
  document.getElementById("who").textContent = user ? `Signed in as ${user.username} (${user.role})` : "";
  for (const link of document.querySelectorAll("nav a")) {
    if (location.hash.startsWith(link.getAttribute("href"))) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  const mine = ++turn;
  if (leave) { const done = leave; leave = null; await done(); }
  const hash = location.hash || "#/catalogue";
  for (const [pattern, render, needs] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    const user = session.user;
    if (needs && (!user || (needs === "creator" && user.role !== "creator" && user.role !== "admin"))) {
      location.hash = user ? "#/catalogue" : `#/sign-in`;
      return;
    }
    // Each view renders into its own container, shown only if no newer route began meanwhile.
    const view = document.createElement("div");
    view.className = "view";
    const left = (await render(view, ...match.slice(1))) || null;
    if (mine !== turn) { if (left) await left(); return; }
    showNav();
    main.replaceChildren(view);
    leave = left;
    const heading = view.querySelector("h1");
    if (heading) { heading.tabIndex = -1; heading.focus(); }
    document.title = `${heading ? heading.textContent + " · " : ""}StreamPay`;
    return;
  }
  location.hash = "#/catalogue";
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try { await api("/auth/logout", { method: "POST" }); } catch { /* signed out either way */ }
  session.clear();
  location.hash = "#/sign-in";
  showNav();
});
// Admins: RQ's dashboard. A link cannot send the bearer token, so the token buys the dashboard's pass cookie first.
document.getElementById("rq-dashboard").addEventListener("click", async (event) => {
  event.preventDefault();
  try {
    location.assign((await api("/admin/dashboard-session", { method: "POST" })).url);
  } catch (error) {
    document.getElementById("who").textContent = error.message;
  }
});
window.addEventListener("hashchange", route);
window.addEventListener("pagehide", () => { if (leave) leave(); });
route();
