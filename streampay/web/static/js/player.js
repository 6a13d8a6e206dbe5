// The paying player: a <video> and the WebSocket that runs its session, exactly as docs/websocket.md says.
//
// - startStream when playback starts; the media plays through a signed URL bound to that session;
// - heartbeats only while the video is actually playing (not paused, buffering, ended or hidden);
// - stopStream on pause and on leaving; the next play starts a new session where the video stood.
// A viewer who pauses for a minute pays for none of it.
import { accessToken, api, url } from "./api.js";
import { stroops } from "./money.js";

// ms before each new attempt to open the socket: about a minute in all, as a busy server's Retry-After asks
const OPEN_RETRIES = [500, 1000, 2000, 4000, 8000, 15000, 30000];
// A socket that went without the server ending its session: 1013, a busy server let it go (docs/websocket.md);
// 1001 and 1012, a server going away or restarting; 1011, a server error; 1006, a connection that dropped with no
// close frame (a network blip, a worker killed, a close frame lost to a reset connection).
const RESUMABLE = new Set([1001, 1006, 1011, 1012, 1013]);

function connect(address) {
  const ws = new WebSocket(address);
  return new Promise((resolve, reject) => {
    ws.addEventListener("open", () => resolve(ws), { once: true });
    ws.addEventListener("error", () => reject(new Error("The stream server cannot be reached.")), { once: true });
  });
}

export class StreamSocket extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.opening = null;
    this.shut = false; // close() was called: an attempt under way gives up
    this.pending = new Map();
    this.nextId = 1;
  }

  // A server with no room refuses the upgrade (503, whose Retry-After a page cannot read): try again for about a
  // minute, further apart each time, with jitter, as docs/websocket.md asks of a player, saying so ("retrying");
  // then give up with a message.
  open() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return Promise.resolve();
    this.shut = false;
    // One attempt at a time: a beat that comes while the last one is still trying waits for it, not a socket of its own.
    this.opening = this.opening || this.dial().finally(() => { this.opening = null; });
    return this.opening;
  }

  async dial() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let ws = null;
    for (let attempt = 0; !ws; attempt++) {
      try {
        ws = await connect(`${scheme}//${location.host}${url("/streaming/ws")}`);
      } catch (error) {
        if (attempt >= OPEN_RETRIES.length) throw error;
        const wait = OPEN_RETRIES[attempt] * (0.75 + Math.random() / 2);
        this.dispatchEvent(new CustomEvent("retrying", { detail: { seconds: Math.ceil(wait / 1000) } }));
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
      if (this.shut) { // closed (the viewer left) while it was trying: no socket outlives the page
        if (ws) ws.close(1000);
        throw { code: "closed", message: "The connection closed." };
      }
    }
    ws.addEventListener("message", (e) => this.receive(JSON.parse(e.data)));
    ws.addEventListener("close", (e) => {
      for (const { reject } of this.pending.values()) reject({ code: "closed", message: "The connection closed." });
      this.pending.clear();
      if (this.ws === ws) this.ws = null;
      this.dispatchEvent(new CustomEvent("close", { detail: { code: e.code } }));
    });
    this.ws = ws;
    await this.call("auth", { token: await accessToken() });
  }

  receive(frame) {
    const waiting = frame.id != null && this.pending.get(frame.id);
    if (waiting) {
      this.pending.delete(frame.id);
      if (frame.event === "error") waiting.reject(frame.data);
      else waiting.resolve(frame.data);
      return;
    }
    // Pushes (streamEnded, balanceLow) and errors that answer no request.
    this.dispatchEvent(new CustomEvent(frame.event, { detail: frame.data }));
  }

  // Send one event and wait for its reply; an `error` reply rejects with {code, message}.
  async call(event, data) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      if (event === "auth") throw { code: "closed", message: "The connection closed." };
      await this.open();
    }
    const id = this.nextId++;
    const reply = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.ws.send(JSON.stringify({ event, id, data }));
    try {
      return await reply;
    } catch (error) {
      if (error.code !== "unauthorized" || event === "auth") throw error;
      await this.call("auth", { token: await accessToken() }); // a lapsed token: renew it once and retry
      return this.call(event, data);
    }
  }

  close() {
    this.shut = true;
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }
}

// Drives one item's playback and its paid sessions; `onChange` is called with the figures on every change.
export class PaidPlayer {
  constructor(video, contentId, { heartbeatSeconds, onChange }) {
    this.video = video;
    this.contentId = contentId;
    this.interval = heartbeatSeconds * 1000;
    this.onChange = onChange;
    this.socket = new StreamSocket();
    this.sessionId = null;
    this.starting = null;
    this.beat = null;
    this.ending = null;
    // What this page's ended sessions cost, as the server settled them, and the live one's latest figures.
    this.settled = { charged: 0n, billed: 0 };
    this.live = { charged: 0n, billed: 0 };
    this.counted = new Set(); // sessions already added to `settled`
    this.state = { price: null, balance: null, status: "idle", reason: null, low: null };
    this.socket.addEventListener("streamEnded", (e) => this.ended(e.detail));
    this.socket.addEventListener("balanceLow", (e) => this.update({ low: e.detail, balance: e.detail.balance }));
    this.socket.addEventListener("error", (e) => this.update({ message: e.detail.message }));
    this.socket.addEventListener("close", (e) => this.closed(e.detail.code));
    this.socket.addEventListener("retrying", (e) => this.update({
      message: `The stream server is busy; trying again in ${e.detail.seconds} s…`,
    }));
    this.listeners = [
      ["playing", () => this.playing()],
      ["pause", () => this.paused()],
      ["waiting", () => this.stopBeats()],
      ["stalled", () => this.stopBeats()],
      ["ended", () => this.reachedEnd()],
      ["error", () => this.mediaError()],
    ];
    for (const [name, fn] of this.listeners) video.addEventListener(name, fn);
    this.onHidden = () => { if (document.hidden && !video.paused) video.pause(); };
    document.addEventListener("visibilitychange", this.onHidden);
  }

  update(changes) {
    Object.assign(this.state, changes);
    this.onChange(this.figures());
  }

  figures() {
    return {
      ...this.state,
      sessionId: this.sessionId,
      charged: this.settled.charged + this.live.charged,
      billed: this.settled.billed + this.live.billed,
    };
  }

  // Play: a session first (when none is running), then the video.
  async play() {
    try {
      if (!this.sessionId) await this.start();
      await this.video.play();
    } catch (error) {
      this.update({ status: "idle", message: error.message || String(error) });
    }
  }

  toggle() {
    return this.video.paused ? this.play() : this.video.pause();
  }

  start() {
    this.starting = this.starting || this.open().finally(() => { this.starting = null; });
    return this.starting;
  }

  async open() {
    await this.ending;
    this.update({ status: "starting", reason: null, low: null, message: null });
    const reply = await this.socket.call("startStream", { content_id: this.contentId });
    this.sessionId = reply.session_id;
    this.live = { charged: 0n, billed: 0 };
    this.update({ price: reply.price_per_second, balance: reply.balance, status: "ready", message: null });
    const media = await api(`/streaming/sessions/${reply.session_id}/media-url`);
    const at = this.video.currentTime;
    const src = new URL(media.url, location.href).href;
    if (this.video.src !== src) {
      this.video.preload = "auto";
      this.video.src = src;
      await new Promise((resolve, reject) => {
        this.video.addEventListener("loadedmetadata", resolve, { once: true });
        this.video.addEventListener("error", () => reject(new Error("The media could not be loaded.")), { once: true });
      });
      if (at > 0 && at < this.video.duration) this.video.currentTime = at;
    }
  }

  playing() {
    if (!this.sessionId) {
      // Something started the video without a session (a media key, a lost session): pay first.
      this.video.pause();
      this.play();
      return;
    }
    this.update({ status: "playing" });
    this.heartbeat();
    this.stopBeats();
    this.beat = setInterval(() => this.heartbeat(), this.interval);
  }

  // A socket gone without its session (RESUMABLE): the next beat opens a new socket (the server may be another),
  // signs in and beats the same session on, within the heartbeat timeout. Any other close (1008: access revoked,
  // or no answer to pings) stops the session and the video with it, rather than play on unpaid.
  closed(code) {
    if (!this.sessionId) return;
    if (RESUMABLE.has(code)) {
      this.update({ message: "Reconnecting…" });
      return;
    }
    this.stopBeats();
    this.update({ message: "The connection to the stream server closed." });
    if (this.video.paused) this.stop();
    else this.video.pause(); // paused() stops the session, on a new socket
  }

  stopBeats() {
    if (this.beat) clearInterval(this.beat);
    this.beat = null;
  }

  async heartbeat() {
    const sessionId = this.sessionId;
    if (!sessionId) return;
    try {
      const reply = await this.socket.call("heartbeat", { session_id: sessionId, position: this.video.currentTime });
      if (sessionId !== this.sessionId) return;
      this.live = { charged: stroops(reply.charged), billed: reply.billed_seconds };
      this.update({ balance: reply.balance, message: null });
    } catch (error) {
      if (sessionId !== this.sessionId) return;
      if (error.code === "closed") return "closed"; // a shed socket: the next call opens another
      if (error.code === "session_not_active") {
        // A heartbeat that crossed the session's end: the streamEnded push says why. If it went to a socket that
        // has closed since (a session that timed out while the player reconnected), the session is over all the same.
        setTimeout(() => { if (this.sessionId === sessionId) this.ended({ session_id: sessionId, reason: "timeout" }); }, 2000);
        return;
      }
      this.update({ message: error.message });
    }
  }

  paused() {
    this.stopBeats();
    if (this.video.ended || !this.sessionId) return; // the end is handled by reachedEnd, a push by ended
    this.update({ status: "paused" });
    this.stop();
  }

  // At the end of the media, one last proof of play (again on a new socket if a busy server let this one go); the
  // server ends the session as completed. If it is still running a moment later (a resumed session the server bills
  // from its own start), stop it.
  async reachedEnd() {
    this.stopBeats();
    const sessionId = this.sessionId;
    if (await this.heartbeat() === "closed") await this.heartbeat();
    setTimeout(() => {
      if (this.sessionId !== sessionId) return;
      this.update({ status: "ended", reason: "stopped", message: null });
      this.stop();
    }, this.interval * 2 + 1000);
  }

  mediaError() {
    // A signed URL lives minutes: if it lapsed mid-play, a fresh one continues where the video stood.
    const sessionId = this.sessionId;
    if (!sessionId) return;
    api(`/streaming/sessions/${sessionId}/media-url`).then((media) => {
      const at = this.video.currentTime;
      this.video.src = new URL(media.url, location.href).href;
      this.video.addEventListener("loadedmetadata", () => { this.video.currentTime = at; this.video.play(); }, { once: true });
    }).catch(() => this.update({ message: "The media could not be loaded." }));
  }

  stop() {
    const sessionId = this.sessionId;
    if (!sessionId) return this.ending;
    this.sessionId = null;
    this.ending = this.socket.call("stopStream", { session_id: sessionId })
      .catch(() => null)
      .then(() => this.settle(sessionId));
    return this.ending;
  }

  ended({ session_id: sessionId, reason }) {
    if (sessionId === this.sessionId) {
      this.sessionId = null;
      this.stopBeats();
      if (!this.video.paused) this.video.pause();
    }
    this.update({ status: "ended", reason, message: null });
    this.settle(sessionId);
  }

  // Once a session has ended, show what the server settled for it and the wallet after it.
  async settle(sessionId) {
    try {
      const [done, wallet] = await Promise.all([api(`/streaming/sessions/${sessionId}`), api("/wallet")]);
      if (this.counted.has(sessionId)) return;
      this.counted.add(sessionId);
      this.settled = {
        charged: this.settled.charged + stroops(done.charged),
        billed: this.settled.billed + done.billed_seconds,
      };
      if (!this.sessionId) this.live = { charged: 0n, billed: 0 };
      this.update({ balance: wallet.balance, available: wallet.available });
    } catch (error) {
      this.update({ message: error.message });
    }
  }

  // Leaving the page: stop paying, close the socket, drop every listener.
  async leave() {
    this.stopBeats();
    for (const [name, fn] of this.listeners) this.video.removeEventListener(name, fn);
    document.removeEventListener("visibilitychange", this.onHidden);
    this.video.pause();
    await this.stop();
    this.socket.close();
  }
}
