"""The player's WebSocket: JSON frames {"event", "id"?, "data"}; a reply echoes event and id.

Thin on purpose: parse the frame, call the streaming service, send the reply. Pushes
(streamEnded, balanceLow) arrive through Redis pub/sub from whichever process ended the
session, and reach the socket through this process's hub.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import math
import threading
import time

from flask import Blueprint, Flask, current_app, g, request
from flask_sock import Sock
from marshmallow import EXCLUDE, Schema, ValidationError, fields
from simple_websocket import ConnectionClosed
from sqlalchemy.pool import QueuePool
from wsproto.utilities import LocalProtocolError

from streampay import metrics
from streampay.auth.tokens import check_standing, user_from_token
from streampay.errors import DomainError, Invalid, Unauthorized, error_body
from streampay.extensions import db, redis_client, without_transaction
from streampay.inputs import NotJSON
from streampay.inputs import loads as load_json
from streampay.jobs import backoff
from streampay.money import Amount
from streampay.outages import DEPENDENCY_DOWN, dependency_of, unavailable_body
from streampay.streaming import meter, reader, revocation, service, siblings
from streampay.streaming.admission import REFUSAL, REFUSALS, Gate
from streampay.streaming.demand import Demand
from streampay.streaming.pipeline import Tally

log = logging.getLogger(__name__)
ws_bp = Blueprint("streaming_ws", __name__)
sock = Sock()
MAX_FRAME = 4096
EARLY_PUSH_SECONDS = 10
LAG_PROBE_SECONDS, LAG_PROBES = 0.05, 10  # the loop's lag: how late a 50 ms sleep wakes, at least, over ~0.5 s
# While its metered calls are strained, a process still takes a new socket this often (a trickle: 10 a second, about
# 5 % of a core in handshakes and starts), so the players it refused get in as fast as it can take them, not in
# bursts when the strain lifts that strain it again.
STRAINED_ADMIT_GAP = 0.1
STALL_WARN_SECONDS = 0.5
SHED_CLOSE = 1013  # RFC 6455's "try again later"
# A shed closes SHED_BATCH sockets, then lets the loop run for SHED_PAUSE_SECONDS: each closed socket's greenlet
# then ends its request (the hub forgets it, Flask tears the request down, gunicorn closes the connection). In a
# 20,000-player run, a shed of 777 sockets at once was followed by a 1.2 s stall of the worker, and its queued
# heartbeats timed out.
SHED_BATCH, SHED_PAUSE_SECONDS = 50, 0.2
SHED_WINDOW_SECONDS = 2.0  # shedding judges the loop's lateness over this long (a meter call gives up after 2 s)


class StartSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    content_id = fields.UUID(required=True)
    max_spend = Amount(minimum=1, allow_none=True)


class SessionRefSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    session_id = fields.String(required=True)
    # What the player says about its position never changes the bill; it is accepted and ignored.
    position = fields.Raw(allow_none=True)


class AuthSchema(Schema):
    token = fields.String(required=True)


# Built once: a schema per frame would deep-copy its fields on every heartbeat.
START_SCHEMA, SESSION_REF_SCHEMA, AUTH_SCHEMA = StartSchema(), SessionRefSchema(), AuthSchema()


class Player:
    def __init__(self, ws):
        self.ws = ws
        self.lock = threading.Lock()
        self.user = None
        self.token_exp = None
        self.payload = None  # the access token's claims: `fam` names the sign-in the socket follows
        self.closing = False  # closed by the server (shed or revoked): its greenlet has yet to see it
        self.watched: set[str] = set()  # the session ids the hub sends this socket's pushes for (Hub.players)

    def send(self, event: str, data: dict, frame_id=None) -> None:
        frame = {"event": event, "data": data}
        if frame_id is not None:
            frame["id"] = frame_id
        with self.lock:
            try:
                self.ws.send(json.dumps(frame))
            except LocalProtocolError as exc:  # closing already: shed, or revoked, while this reply was made
                raise ConnectionClosed(SHED_CLOSE, "closing") from exc

    def authenticate(self, token: str) -> None:
        turn = hub().access_turns
        user, payload = user_from_token(token)
        db.session.expunge(user)
        self.signed_in(user, payload, turn)

    def signed_in(self, user, payload: dict, turn: int) -> None:
        """Authenticated by a token checked when the hub's `access_turns` was `turn`."""
        self.user, self.payload, self.token_exp = user, payload, payload.get("exp")
        hub().enlist(self, turn)

    def follows(self, revocation: dict) -> bool:
        """Whether a revocation (a sign-in, or every sign-in of a user) covers this socket."""
        user, payload = self.user, self.payload or {}
        if user is None or str(user.id) != revocation["user_id"]:
            return False
        return revocation.get("sign_in") is None or payload.get("fam") == revocation["sign_in"]

    def revoke(self, session_ids: list[str], why: str) -> None:
        """Access is gone: end this socket's sessions at their last proof of play, say so, and close."""
        self.user = None
        for session_id in session_ids:
            try:
                service.end_revoked(session_id)
            except Exception:
                log.exception("ending a revoked session failed; the reaper will end it")
                db.session.rollback()
            finally:
                db.session.remove()
            self._quietly("streamEnded", {"session_id": session_id, "reason": "revoked"})
        self._quietly("error", {"code": "unauthorized", "message": REVOKED_MESSAGES.get(why, REVOKED_MESSAGES[""])})
        self.close(1008, "access revoked")

    def shed(self) -> None:
        """The process cannot serve this socket: close it with 1013 (try again later). Its sessions go on when the
        player comes back (to any process) and heartbeats before the timeout."""
        self.close(SHED_CLOSE, "server overloaded; reconnect and resume your session")

    def close(self, code: int, message: str) -> None:
        """Close from another greenlet than the socket's own, and wake that one, waiting in receive()."""
        with self.lock:
            self.closing = True
            # Closed already (by the player, or by the server a moment ago): nothing more to send.
            try:
                self.ws.close(reason=code, message=message)
            except (ConnectionClosed, OSError, LocalProtocolError):
                reader.hang_up(self.ws)
            else:
                reader.close_gently(self.ws)  # the player's close frame is read before the connection closes

    def _quietly(self, event: str, data: dict) -> None:
        try:
            self.send(event, data)
        except ConnectionClosed:
            pass


REVOKED_MESSAGES = {
    "logout": "Signed out: this sign-in was revoked; sign in again.",
    "refresh_reuse": "This sign-in was revoked (its refresh token was used twice); sign in again.",
    "deactivated": "The account was deactivated.",
    "role_changed": "The account's role changed; sign in again.",
    "": "Access was revoked; sign in again.",
}


class Hub:
    """This process's sockets by session id, fed by one Redis subscriber thread."""

    def __init__(self, app: Flask):
        self.app = app
        self.players: dict[str, Player] = {}
        self.held: dict[Player, None] = {}  # every open socket, oldest first: the newest are shed first
        self.signed_in: set[Player] = set()  # every authenticated socket, for revocations
        # Revocations and access checks begun (each counted, under the lock, as it reads `signed_in`): a socket whose
        # token was checked before one began and that enlists after it is checked again (`enlist`).
        self.access_turns = 0
        self.lock = threading.Lock()
        self.thread = None
        self.early: dict[str, tuple[float, dict]] = {}  # session id -> (when, push) for sessions not yet watched
        self.subscribed = threading.Event()
        # Pushes reach this process: subscribed, and its sockets checked since. Until then a heartbeat checks its own.
        self.live = False
        self.sockets = 0  # admitted and not yet closed, in this process
        self.lag = 0.0  # seconds a ready greenlet waits for its turn in this process's loop (_measure_lag) ...
        self.late = 0.0  # ... at the least, and on average over SHED_WINDOW_SECONDS (a loop that stalls now and then)
        self.demand = 0.0  # the share of the last SHED_WINDOW_SECONDS it ran or waited for a CPU (streaming.demand)
        self.lag_probe = None
        self.stopped = threading.Event()  # stop(): the probe and the subscriber end at their next turn
        self.strained_admit_at = -STRAINED_ADMIT_GAP  # when the last socket was taken while strained (monotonic)
        self.handshakes = Tally()  # handshakes, and the ones refused, of the last second or two

    def admit(self) -> str | None:
        """Take a socket slot; or why this process cannot serve another socket now (then it takes none).

        It cannot when it holds WS_MAX_SOCKETS_PER_WORKER sockets (`full`), when its loop runs late by more than
        WS_ADMIT_MAX_LAG_MS (`slow`: the CPU it gets is spoken for), while it ran or waited for a CPU more than
        WS_ADMIT_MAX_CPU_PERCENT of the last two seconds (`saturated`: it soon will be), while more than
        WS_ADMIT_MAX_SLOW_METER_PERCENT of its sockets' metered calls of the last second or two waited longer than
        WS_ADMIT_MAX_METER_WAIT_MS (`strained`: its players already wait), or when all its database connections are
        in use (`busy`): so the sockets it holds keep their latency and no new one is accepted only to starve."""
        self._probe_lag()
        with self.lock:
            why = self._judge()
            self.handshakes.count(time.monotonic(), why is not None)
            return why

    def retry_after(self, why: str) -> int:
        """The `Retry-After` of a refusal: WS_RETRY_AFTER_FULL_SECONDS for a full dyno (it stays full until players
        leave), otherwise WS_RETRY_AFTER_SECONDS, longer while refusals are many (come_back_in)."""
        cfg = self.app.config
        least, most = cfg["WS_RETRY_AFTER_SECONDS"], cfg["WS_RETRY_AFTER_FULL_SECONDS"]
        # A full process whose siblings have room: a retry may land on one of them.
        if why == "full" and not siblings.have_room(cfg["WS_MAX_SOCKETS_PER_WORKER"]):
            return most
        return self.come_back_in(least, most)

    def come_back_in(self, least: int, most: int) -> int:
        """Seconds a refused player is told to wait: `least`, and in proportion past WS_REFUSALS_PER_SECOND refusals a
        second, up to `most`. Each refusal is CPU the held players wait for (about half a millisecond): at 20,000
        players told to come back every 5 s, a 2-core dyno spent as much on refusing as on the players it held."""
        rate = self.handshakes.against_per_second(time.monotonic())
        return int(min(most, max(least, least * rate / self.app.config["WS_REFUSALS_PER_SECOND"])))

    def _judge(self) -> str | None:
        """admit()'s rules (the hub's lock held)."""
        cfg = self.app.config
        if siblings.full(self.sockets, cfg["WS_MAX_SOCKETS_PER_WORKER"]):
            return "full"
        if self.lag * 1000 > cfg["WS_ADMIT_MAX_LAG_MS"] or self.late * 1000 > cfg["WS_SHED_LAG_MS"]:
            return "slow"
        if self.demand * 100 > cfg["WS_ADMIT_MAX_CPU_PERCENT"]:
            return "saturated"
        trickle = None
        if meter.shared().strained():
            if (trickle := time.monotonic()) - self.strained_admit_at < STRAINED_ADMIT_GAP:
                return "strained"
        if _pool_exhausted():
            return "busy"
        if trickle is not None:
            self.strained_admit_at = trickle
        self.sockets += 1
        siblings.publish(self.sockets, cfg["WS_MAX_SOCKETS_PER_WORKER"])
        return None

    def _probe_lag(self) -> None:
        """Start the probe (once): it sleeps LAG_PROBE_SECONDS again and again, and how late it wakes is how long a
        ready socket of this process waits for its turn. The lag is the least of the last LAG_PROBES wake-ups: only a
        loop late all the time (the process gets less CPU than its sockets need) refuses, not a spike (a collection,
        a burst of opens)."""
        with self.lock:
            if self.lag_probe is not None:
                return
            self.lag_probe = threading.Thread(target=self._measure_lag, name="ws-lag", daemon=True)
        self.lag_probe.start()

    def _measure_lag(self) -> None:
        lates = collections.deque(maxlen=LAG_PROBES)  # the last wake-ups' lateness, for admission
        recent = collections.deque()  # (woke, lateness) of the wake-ups of the last SHED_WINDOW_SECONDS, for shedding
        judged_from = time.monotonic()  # shedding judges the wake-ups after this: the start, or the last shed
        demand = Demand(SHED_WINDOW_SECONDS)
        while True:
            began = time.monotonic()
            time.sleep(LAG_PROBE_SECONDS)
            if EXITING or self.stopped.is_set():  # no probe, and no log line to a stream being closed
                return
            woke = time.monotonic()
            late = woke - began - LAG_PROBE_SECONDS
            if late >= STALL_WARN_SECONDS:  # every socket of the process waited this long at once
                log.warning("every socket of this process waited %.1f s at once (its loop or threads stalled)", late)
            lates.append(late)
            recent.append((woke, late))
            while recent[0][0] < woke - SHED_WINDOW_SECONDS:
                recent.popleft()
            self.lag = min(lates) if len(lates) == LAG_PROBES else 0.0
            self.demand = demand.share(woke)
            # Late on average over seconds, not only at the least: a loop that stalls for seconds between quick turns
            # (thousands of calls answered in one batch, then the backlog of the stall) is as short of CPU as one late
            # all the time, and one stall of two seconds is enough to judge by; fewer seconds than that are not.
            judged = woke - judged_from >= SHED_WINDOW_SECONDS
            self.late = sum(x for _, x in recent) / len(recent) if judged else 0.0
            if self.late * 1000 > self.app.config["WS_SHED_LAG_MS"]:
                try:
                    self._shed(woke - judged_from)
                except Exception:  # the probe must go on: admission and shedding read what it measures
                    log.exception("shedding sockets failed")
                recent.clear()
                lates.clear()
                self.late, judged_from = 0.0, time.monotonic()  # what shedding did is judged on what follows it

    def _shed(self, over: float) -> None:
        """The loop ran late through a lag window, admission closed: the sockets already held need more CPU than
        the process gets. Its newest close, as many as `shed_share` says it lacks CPU for, so the others get their
        latency back instead of every socket's heartbeats queueing past their timeouts."""
        with self.lock:
            held = [p for p in self.held if not p.closing]  # the last shed's sockets may not have gone yet
        share = shed_share(self.late, self.app.config["WS_SHED_PERCENT"] / 100)
        doomed = held[len(held) - math.ceil(len(held) * share) :]
        if not doomed:
            return
        log.warning(
            "the loop ran %.0f ms late on average through the last %.1f s: closing the newest %d of %d sockets (1013)",
            self.late * 1000,
            min(over, SHED_WINDOW_SECONDS),
            len(doomed),
            len(held),
        )
        metrics.WS_SHED.inc(len(doomed))
        for n, player in enumerate(doomed, 1):
            player.shed()
            if n % SHED_BATCH == 0 and n < len(doomed):
                time.sleep(SHED_PAUSE_SECONDS)  # the closed ones end, and the kept ones are served, between batches

    def stop(self) -> None:
        """End the subscriber and the lag probe (within a second), for an app dropped by a process that goes on."""
        self.stopped.set()

    def release(self) -> None:
        with self.lock:
            self.sockets -= 1
            siblings.publish(self.sockets, self.app.config["WS_MAX_SOCKETS_PER_WORKER"])

    def watch(self, session_id: str, player: Player) -> None:
        if self.players.get(session_id) is player:  # every heartbeat after the first: already watched
            return
        with self.lock:
            before = self.players.get(session_id)
            if before is not None:  # the player came back on this socket
                before.watched.discard(session_id)
            self.players[session_id] = player
            player.watched.add(session_id)
            early = self.early.pop(session_id, None)
        self.listen()
        if early is not None:
            self._send(player, early[1])

    def listen(self) -> None:
        """Start the subscriber thread (once): a socket calls it on opening, before it can start a session."""
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._listen, name="ws-hub", daemon=True)
                self.thread.start()
        self.subscribed.wait(EARLY_PUSH_SECONDS)  # at once, once the first subscription is made

    def hold(self, player: Player) -> None:
        with self.lock:
            self.held[player] = None

    def enlist(self, player: Player, turn: int) -> None:
        """Count a signed-in socket, for revocations (the subscriber runs since the socket opened). `turn` is
        `access_turns` as it was before its token was checked: a revocation or an access check begun since then read
        `signed_in` without it and may have missed it, so its access is checked again in PostgreSQL."""
        with self.lock:
            self.signed_in.add(player)
            missed = turn != self.access_turns
        if missed:
            try:
                self._close(revocation.lost_access([player]))
            finally:
                db.session.remove()  # a socket holds no pooled connection between its frames

    def forget(self, player: Player) -> None:
        with self.lock:
            self.held.pop(player, None)
            self.signed_in.discard(player)
            self._unwatch(player)

    def _unwatch(self, player: Player) -> list[str]:
        """Stop sending the player's sessions' pushes to it (the hub's lock held); the sessions it watched."""
        sessions = [s for s in player.watched if self.players.get(s) is player]
        for session_id in sessions:
            del self.players[session_id]
        player.watched.clear()
        return sessions

    def _listen(self) -> None:
        """Subscribe and deliver, forever: a lost Redis is subscribed to again with backoff, however long it is away."""
        # At most a second between attempts: sockets of a sign-in revoked meanwhile close within it of Redis's return.
        failures, max_wait = 0, min(1, self.app.config["RECONNECT_MAX_SECONDS"])
        with self.app.app_context():
            while not self.stopped.is_set():
                pubsub = redis_client().pubsub()
                unchecked = False
                try:
                    pubsub.subscribe(meter.push_channel())
                    self.subscribed.set()
                    if failures:
                        log.warning("push listener: subscribed again after %d failed attempts", failures)
                    failures = 0
                    while not self.stopped.is_set():
                        message = pubsub.get_message(timeout=1.0)
                        if message and message.get("type") == "message":
                            self._deliver_raw(message["data"])
                        elif message and message.get("type") == "subscribe":  # (again): pushes may have been missed
                            self.live, unchecked = False, True
                        if unchecked:
                            unchecked = not self._check_all()
                except Exception as exc:  # noqa: BLE001 (whatever broke the subscription, subscribe again)
                    self.live = False
                    if self.stopped.is_set():
                        return
                    failures += 1
                    wait = backoff(failures, max_wait)
                    log.warning("push listener lost Redis (%s); subscribing again in %.1f s", exc, wait)
                    time.sleep(wait)
                finally:
                    with contextlib.suppress(Exception):
                        pubsub.close()

    def _deliver_raw(self, data: bytes) -> None:
        try:
            self._deliver(json.loads(data))
        except Exception:  # one bad push must not cost the subscription
            log.exception("push listener: a push could not be delivered")

    def _deliver(self, push: dict) -> None:
        if push["event"] == "revoke":
            self._revoke(push["data"])
            return
        with self.lock:
            player = self.players.get(push["session_id"])
            if push["event"] == "streamEnded":
                self.players.pop(push["session_id"], None)
                if player is not None:
                    player.watched.discard(push["session_id"])
            elif player is None and push["event"] == "balanceLow":
                # startStream publishes it before its reply, so before the socket watches the session:
                # kept a little while for the watch that follows.
                now = time.monotonic()
                self.early = {k: v for k, v in self.early.items() if now - v[0] < EARLY_PUSH_SECONDS}
                self.early[push["session_id"]] = (now, push)
        if player is not None:
            self._send(player, push)

    @staticmethod
    def _send(player: Player, push: dict) -> None:
        try:
            player.send(push["event"], push["data"])
        except (ConnectionClosed, OSError):  # the socket closed as the push arrived
            pass

    def _revoke(self, revocation: dict) -> None:
        """Close this process's sockets of a revoked sign-in (or user), ending their sessions."""
        with self.lock:
            self.access_turns += 1
            matched = [p for p in self.signed_in if p.follows(revocation)]
        self._close([(p, revocation.get("why") or "") for p in matched])

    def _close(self, doomed: list[tuple[Player, str]]) -> None:
        with self.lock:
            doomed = [(p, why) for p, why in doomed if p in self.signed_in]  # each closed once, whoever saw it first
            sessions = {p: self._unwatch(p) for p, _ in doomed}
            for player in sessions:
                self.signed_in.discard(player)
        for player, why in doomed:
            player.revoke(sessions[player], why)

    def _check_all(self) -> bool:
        """Subscribed (again): close the sockets whose access went while no push could reach them; False if
        PostgreSQL could not say (then it is tried again in a second, and heartbeats check for themselves)."""
        with self.lock:
            self.access_turns += 1
            held = list(self.signed_in)
        try:
            self._close(revocation.lost_access(held))
        except DEPENDENCY_DOWN as exc:
            log.warning("push listener: could not check the sockets' access (%s); again in a second", exc)
            return False
        finally:
            db.session.remove()
        self.live = True
        return True

    def check(self, player: Player) -> None:
        """While pushes may not reach this process, a socket's access is checked in PostgreSQL before it bills."""
        doomed = revocation.lost_access([player])
        if doomed:
            # Its sessions end at their last proof of play, which the meter holds: while Redis is away the heartbeat
            # gets `unavailable`, and the socket closes once Redis returns.
            meter.shared().execute(("PING",))
            self._close(doomed)
            raise Unauthorized(REVOKED_MESSAGES.get(doomed[0][1], REVOKED_MESSAGES[""]))


EXITING = False  # set as the interpreter exits: the lag probes stop


def shed_share(late: float, least: float) -> float:
    """The share of its sockets a process closes when its loop ran `late` seconds late on average through a window.

    A loop given k times the work it has CPU for falls k - 1 seconds further behind every second: through a window
    that began on time, (k - 1) times half the window late on average. Closing 1 - 1/k of the sockets leaves it what
    it can serve. At least `least` (WS_SHED_PERCENT), and at most half at once: a stall, not only a shortage, makes
    a loop late."""
    overload = 1 + late / (SHED_WINDOW_SECONDS / 2)
    return max(least, min(1 - 1 / overload, 0.5))


@atexit.register
def _exiting() -> None:
    global EXITING  # noqa: PLW0603 (one flag the probe threads read)
    EXITING = True


def hub() -> Hub:
    return current_app.extensions["streampay.hub"]


def _load(schema: Schema, data) -> dict:
    try:
        return schema.load(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise Invalid("Some fields are missing or invalid.", {"data": exc.messages}) from exc


def on_auth(player: Player, data: dict) -> dict:
    player.authenticate(_load(AUTH_SCHEMA, data)["token"])
    if player.user is None:  # revoked as it signed in (Hub.enlist): closed already
        raise Unauthorized(REVOKED_MESSAGES[""])
    return {"user_id": str(player.user.id)}


def on_start(player: Player, data: dict) -> dict:
    args = _load(START_SCHEMA, data)
    # Spending needs access as it stands now: the sign-in not revoked, the account active and unchanged.
    check_standing(player.payload, player.user.role)
    reply = service.start(player.user, args["content_id"], args.get("max_spend"))
    hub().watch(reply["session_id"], player)
    return reply


def _session_id(data) -> str:
    """SESSION_REF_SCHEMA's session_id: a well-formed frame skips the schema (its only check), others get its errors."""
    session_id = data.get("session_id") if isinstance(data, dict) else None
    return session_id if isinstance(session_id, str) else _load(SESSION_REF_SCHEMA, data)["session_id"]


def on_heartbeat(player: Player, data: dict) -> dict:
    session_id = _session_id(data)
    if not hub().live:
        hub().check(player)
    with metrics.HEARTBEATS.time():
        reply, ended = service.heartbeat(player.user, session_id)
    if ended is None:
        # After a reconnect, the session's pushes follow the player to this socket.
        hub().watch(session_id.lower(), player)
    return reply


def on_stop(player: Player, data: dict) -> dict:
    return service.stop(player.user, _session_id(data))


HANDLERS = {"auth": on_auth, "startStream": on_start, "heartbeat": on_heartbeat, "stopStream": on_stop}


def handle(player: Player, raw) -> None:
    frame_id = None
    try:
        if not isinstance(raw, str) or len(raw) > MAX_FRAME:
            raise DomainError("Frames are JSON text of at most 4 KiB.")
        try:
            frame = load_json(raw)  # too deep, lone surrogates, NaN: an `error` event, not a crash
        except NotJSON as exc:
            raise DomainError("The frame is not JSON.") from exc
        if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
            raise DomainError('A frame is an object: {"event": NAME, "id"?: any, "data": {...}}.')
        frame_id = frame.get("id")
        event = frame["event"]
        handler = HANDLERS.get(event)
        if handler is None:
            raise DomainError(f"Unknown event {event[:40]!r}; known: {', '.join(HANDLERS)}.")
        if event != "auth":
            if player.user is None:
                raise Unauthorized("Authenticate first: an Authorization header, or an auth event {token}.")
            if player.token_exp is not None and time.time() >= player.token_exp:
                player.user = None
                raise Unauthorized("The token has expired; send a fresh one in an auth event.")
        player.send(event, handler(player, frame.get("data") or {}), frame_id)
    except DomainError as exc:
        player.send(
            "error",
            {"code": exc.code, "message": exc.message, **({"errors": exc.errors} if exc.errors else {})},
            frame_id,
        )
    except ConnectionClosed:
        raise
    except DEPENDENCY_DOWN as exc:
        with contextlib.suppress(Exception):  # the connection may be the very thing that died
            db.session.rollback()
        metrics.dependency_down(dependency_of(exc))
        player.send("error", {"code": "unavailable", "message": unavailable_body(exc)["message"]}, frame_id)
    except Exception:
        log.exception("websocket frame failed")
        db.session.rollback()
        player.send("error", {"code": "internal", "message": "Something went wrong on our side."}, frame_id)
    finally:
        if db.session.registry.has():  # a heartbeat never opened one: nothing to give back
            with contextlib.suppress(*DEPENDENCY_DOWN):  # a dead connection is dropped by the pool, not raised here
                db.session.remove()


def _pool_exhausted() -> bool:
    """Every pooled database connection of this process is in use (and no overflow is left): a new socket's token
    check and startStream would queue for one, up to DB_POOL_TIMEOUT, behind the sockets already held."""
    pool = db.engine.pool
    if not isinstance(pool, QueuePool):
        return False
    return pool.checkedout() >= pool.size() + max(0, getattr(pool, "_max_overflow", 0))


def write_refusal():
    """A refusal the gate asks Flask to write (streampay.streaming.admission): the first of its kind, before the app's
    other hooks run (the rate limit's check, the body guard, the nonce); the after-request hooks add the security
    headers, which the gate keeps for the next ones."""
    refusal = request.environ.get(REFUSAL)
    if refusal is None:
        return None
    why, wait = refusal
    return error_body(503, "Service Unavailable", REFUSALS[why]), 503, {"Retry-After": str(wait)}


@ws_bp.before_request
def authenticate_handshake():
    """A bad Authorization header is refused before the upgrade, with a 401 in the error shape."""
    header = request.headers.get("Authorization")
    if request.endpoint != "streaming_ws.stream_socket" or not header:
        return None
    scheme, _, token = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Use Authorization: Bearer <access token>.")
        without_transaction()  # one read: no BEGIN and ROLLBACK round trips around it
        turn = hub().access_turns
        user, payload = user_from_token(token)
        db.session.expunge(user)
        g.ws_auth = (user, payload, turn)
    except DomainError as exc:
        return error_body(exc.status, "Unauthorized", exc.message), exc.status, {"WWW-Authenticate": "Bearer"}
    finally:
        db.session.remove()
    return None


@sock.route("/streaming/ws", bp=ws_bp)
def stream_socket(ws):
    player = Player(ws)
    hub().listen()
    hub().hold(player)
    if g.get("ws_auth"):
        try:
            player.signed_in(*g.ws_auth)
        except DEPENDENCY_DOWN:  # its access could not be checked again: it comes back, as a shed player does
            player.shed()
    metrics.WEBSOCKETS.inc()
    try:
        while True:
            handle(player, ws.receive())
    finally:
        metrics.WEBSOCKETS.dec()
        hub().forget(player)
        if player.closing:
            reader.linger(ws)
        # The request and its environ hold each other: freed by their counts, not a collection (gunicorn.conf.py
        # freezes what a worker holds while it opens sockets, and a cycle frozen is never freed).
        request.environ.pop("werkzeug.request", None)


def init_app(app: Flask, prefix: str) -> None:
    app.extensions["streampay.hub"] = found = Hub(app)
    # Admission, in front of Flask: a new socket is refused with a 503 before the upgrade (and before its token is
    # even read) when the hub says this process cannot serve another (Hub.admit); the slot is held while it lives.
    app.wsgi_app = Gate(app.wsgi_app, found, f"{prefix}/streaming/ws")
    # Each socket is read by its own greenlet, and pinged by the process's pinger (streampay.streaming.reader).
    options = app.config.setdefault("SOCK_SERVER_OPTIONS", {})
    options.update(thread_class=reader.InlineReader, event_class=reader.ReadInline)
    sock.init_app(app)
    app.register_blueprint(ws_bp, url_prefix=prefix)
