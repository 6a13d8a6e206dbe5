// The watch page: a <video> that plays through a signed media URL while a paid session runs over the WebSocket.
import { api } from "../api.js";
import { definitionList, h } from "../dom.js";
import { duration, format, runway } from "../money.js";
import { PaidPlayer } from "../player.js";

const REASONS = {
  stopped: "Stopped. Nothing is charged while the video is paused.",
  timeout: "The session timed out: the player went quiet.",
  insufficient_funds: "Your balance ran out. Add funds in your wallet to keep watching.",
  spend_cap_reached: "You reached the spending limit you set for this session.",
  completed: "Finished: you watched to the end.",
  content_unavailable: "This item is no longer available.",
  revoked: "You were signed out.",
};

export async function render(main, contentId) {
  let item;
  try {
    item = await api(`/content/${contentId}`);
  } catch (error) {
    main.append(h("h1", {}, "Not available"), h("p", {}, error.message));
    return null;
  }
  const video = h("video", { id: "video", preload: "none", playsinline: true, "aria-label": `Video: ${item.title}` });
  const toggle = h("button", { type: "button", id: "play", "aria-pressed": "false" }, "Play");
  const seek = h("input", { type: "range", id: "seek", min: 0, max: item.duration_seconds || 0, step: 1, value: 0,
    disabled: true, "aria-label": "Position" });
  const clock = h("span", { id: "clock", "aria-live": "off" }, `0:00 / ${duration(item.duration_seconds)}`);
  const banner = h("p", { id: "balance-low", class: "banner", role: "alert", hidden: true });
  const status = h("p", { id: "stream-status", class: "status", role: "status" }, "Press Play to start. You pay only while it plays.");
  const stats = definitionList([
    ["Price per second", item.price_per_second, "price"],
    ["Seconds billed", "0", "billed"],
    ["Charged", "0.0000000", "charged"],
    ["Balance", "—", "balance"],
    ["Runway", "—", "runway"],
  ]);
  main.append(
    h("h1", {}, item.title),
    h("p", { class: "meta" }, `${item.creator} · ${item.category} · ${duration(item.duration_seconds)}`),
    banner,
    h("div", { class: "player" }, video, h("div", { class: "controls" }, toggle, seek, clock)),
    status,
    h("section", { "aria-labelledby": "bill-title" }, h("h2", { id: "bill-title" }, "This viewing"), stats),
    item.description ? h("p", { class: "description" }, item.description) : null);

  const show = (id, text) => { main.querySelector(`#${id}`).textContent = text; };
  const player = new PaidPlayer(video, contentId, {
    heartbeatSeconds: Number(document.body.dataset.heartbeatSeconds || 5),
    onChange(f) {
      if (f.price) show("price", f.price);
      show("billed", String(f.billed));
      show("charged", format(f.charged));
      if (f.balance) {
        show("balance", f.balance);
        const seconds = runway(f.balance, f.price || item.price_per_second);
        show("runway", Number.isFinite(seconds) ? duration(seconds) : "—");
      }
      if (f.low) {
        banner.hidden = false;
        banner.textContent = `Low balance: about ${duration(f.low.runway_seconds)} of watching left. Add funds in your wallet.`;
      }
      const text = f.status === "ended" ? REASONS[f.reason] || `Ended: ${f.reason}` :
        f.status === "playing" ? "Playing: charging per second." :
        f.status === "paused" ? REASONS.stopped :
        f.status === "starting" ? "Starting a session…" : null;
      if (text) status.textContent = text;
      if (f.reason) status.dataset.reason = f.reason;
      else delete status.dataset.reason;
      if (f.message) status.textContent = f.message;
    },
  });
  toggle.addEventListener("click", () => player.toggle());
  video.addEventListener("play", () => { toggle.textContent = "Pause"; toggle.setAttribute("aria-pressed", "true"); });
  video.addEventListener("pause", () => { toggle.textContent = "Play"; toggle.setAttribute("aria-pressed", "false"); });
  video.addEventListener("click", () => player.toggle());
  video.addEventListener("loadedmetadata", () => { seek.max = Math.floor(video.duration); seek.disabled = false; });
  video.addEventListener("timeupdate", () => {
    seek.value = Math.floor(video.currentTime);
    clock.textContent = `${duration(video.currentTime)} / ${duration(video.duration || item.duration_seconds)}`;
  });
  seek.addEventListener("input", () => { video.currentTime = Number(seek.value); });
  try {
    const wallet = await api("/wallet");
    show("balance", wallet.balance);
    show("runway", duration(runway(wallet.balance, item.price_per_second)));
  } catch { /* shown on the first reply */ }
  return () => player.leave();
}
