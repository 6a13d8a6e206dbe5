"""A local Horizon stand-in: a real HTTP server on 127.0.0.1 that tests (and `flask stellar sandbox`) use.

It keeps a small ledger (accounts, native balances in stroops, trustlines, sequence numbers),
decodes submitted envelopes with stellar_sdk, checks them the way stellar-core does before a
transaction enters a ledger (time bounds, fee, source account, sequence number, signatures under
the configured network passphrase), applies Payment, CreateAccount and ChangeTrust atomically, and
serves the records back in Horizon's JSON shapes: accounts, transactions, operations and payments
(HAL pages with paging tokens and cursors), ledgers, the root document and friendbot.

Faults for the submit path are queued with ``fail_next(kind, **params)``; ``down = True`` drops every
connection. The model is deliberately small: no reserves or liabilities, one transaction per
ledger, only the master key of each account signs (weight 1).

    with HorizonStandin(network_passphrase=Network.TESTNET_NETWORK_PASSPHRASE) as horizon:
        horizon.create_account(kp.public_key, balance_stroops=100 * 10**7)
        with Server(horizon.url) as server:
            server.load_account(kp.public_key)
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from stellar_sdk import (
    Asset,
    ChangeTrust,
    CreateAccount,
    FeeBumpTransactionEnvelope,
    HashMemo,
    IdMemo,
    Keypair,
    Memo,
    MuxedAccount,
    Network,
    NoneMemo,
    Operation,
    Payment,
    ReturnHashMemo,
    StrKey,
    TextMemo,
    Transaction,
    TransactionEnvelope,
)
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.exceptions import BadSignatureError

__all__ = ["FAULT_KINDS", "Gate", "HorizonStandin", "decimal_to_stroops"]

STROOPS_PER_UNIT = 10_000_000
BASE_FEE = 100
BASE_RESERVE = 5_000_000
MAX_INT64 = 2**63 - 1
FRIENDBOT_AMOUNT = 10_000 * STROOPS_PER_UNIT
PROTOCOL_VERSION = 22
HORIZON_ERRORS = "https://stellar.org/horizon-errors/"

FAULT_KINDS = frozenset(
    {"504_after", "504_before", "drop", "drop_after", "bad_seq", "no_destination", "slow", "429", "result"}
)

# Horizon's names for TransactionResultCode values.
_TX_CODES = {
    "tx_fee_bump_inner_success": stellar_xdr.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS,
    "tx_success": stellar_xdr.TransactionResultCode.txSUCCESS,
    "tx_failed": stellar_xdr.TransactionResultCode.txFAILED,
    "tx_too_early": stellar_xdr.TransactionResultCode.txTOO_EARLY,
    "tx_too_late": stellar_xdr.TransactionResultCode.txTOO_LATE,
    "tx_missing_operation": stellar_xdr.TransactionResultCode.txMISSING_OPERATION,
    "tx_bad_seq": stellar_xdr.TransactionResultCode.txBAD_SEQ,
    "tx_bad_auth": stellar_xdr.TransactionResultCode.txBAD_AUTH,
    "tx_insufficient_balance": stellar_xdr.TransactionResultCode.txINSUFFICIENT_BALANCE,
    "tx_no_source_account": stellar_xdr.TransactionResultCode.txNO_ACCOUNT,
    "tx_insufficient_fee": stellar_xdr.TransactionResultCode.txINSUFFICIENT_FEE,
    "tx_bad_auth_extra": stellar_xdr.TransactionResultCode.txBAD_AUTH_EXTRA,
    "tx_internal_error": stellar_xdr.TransactionResultCode.txINTERNAL_ERROR,
    "tx_fee_bump_inner_failed": stellar_xdr.TransactionResultCode.txFEE_BUMP_INNER_FAILED,
    "tx_bad_minseq_age_or_gap": stellar_xdr.TransactionResultCode.txBAD_MIN_SEQ_AGE_OR_GAP,
    "tx_malformed": stellar_xdr.TransactionResultCode.txMALFORMED,
    "tx_not_supported": stellar_xdr.TransactionResultCode.txNOT_SUPPORTED,
    "tx_bad_sponsorship": stellar_xdr.TransactionResultCode.txBAD_SPONSORSHIP,
    "tx_soroban_invalid": stellar_xdr.TransactionResultCode.txSOROBAN_INVALID,
    "tx_frozen_key_accessed": stellar_xdr.TransactionResultCode.txFROZEN_KEY_ACCESSED,
}
# Operation-level codes that are not an inner result of the operation type.
_OP_OUTER_CODES = {
    "op_bad_auth": stellar_xdr.OperationResultCode.opBAD_AUTH,
    "op_no_source_account": stellar_xdr.OperationResultCode.opNO_ACCOUNT,
    "op_not_supported": stellar_xdr.OperationResultCode.opNOT_SUPPORTED,
}
_PAYMENT_CODES = {
    "op_success": stellar_xdr.PaymentResultCode.PAYMENT_SUCCESS,
    "op_malformed": stellar_xdr.PaymentResultCode.PAYMENT_MALFORMED,
    "op_underfunded": stellar_xdr.PaymentResultCode.PAYMENT_UNDERFUNDED,
    "op_src_no_trust": stellar_xdr.PaymentResultCode.PAYMENT_SRC_NO_TRUST,
    "op_no_destination": stellar_xdr.PaymentResultCode.PAYMENT_NO_DESTINATION,
    "op_no_trust": stellar_xdr.PaymentResultCode.PAYMENT_NO_TRUST,
    "op_line_full": stellar_xdr.PaymentResultCode.PAYMENT_LINE_FULL,
    "op_no_issuer": stellar_xdr.PaymentResultCode.PAYMENT_NO_ISSUER,
    "op_not_authorized": stellar_xdr.PaymentResultCode.PAYMENT_NOT_AUTHORIZED,
    "op_src_not_authorized": stellar_xdr.PaymentResultCode.PAYMENT_SRC_NOT_AUTHORIZED,
}
_CREATE_ACCOUNT_CODES = {
    "op_success": stellar_xdr.CreateAccountResultCode.CREATE_ACCOUNT_SUCCESS,
    "op_malformed": stellar_xdr.CreateAccountResultCode.CREATE_ACCOUNT_MALFORMED,
    "op_underfunded": stellar_xdr.CreateAccountResultCode.CREATE_ACCOUNT_UNDERFUNDED,
    "op_low_reserve": stellar_xdr.CreateAccountResultCode.CREATE_ACCOUNT_LOW_RESERVE,
    "op_already_exists": stellar_xdr.CreateAccountResultCode.CREATE_ACCOUNT_ALREADY_EXIST,
}
_CHANGE_TRUST_CODES = {
    "op_success": stellar_xdr.ChangeTrustResultCode.CHANGE_TRUST_SUCCESS,
    "op_malformed": stellar_xdr.ChangeTrustResultCode.CHANGE_TRUST_MALFORMED,
    "op_no_issuer": stellar_xdr.ChangeTrustResultCode.CHANGE_TRUST_NO_ISSUER,
    "op_invalid_limit": stellar_xdr.ChangeTrustResultCode.CHANGE_TRUST_INVALID_LIMIT,
    "op_low_reserve": stellar_xdr.ChangeTrustResultCode.CHANGE_TRUST_LOW_RESERVE,
}

_NOT_FOUND_DETAIL = (
    "The resource at the url requested was not found.  This usually occurs for one of two reasons:  "
    "The url requested is not valid, or no data in our database could be found with the parameters provided."
)
_TX_FAILED_DETAIL = (
    "The transaction failed when submitted to the stellar network. The `extras.result_codes` field on this "
    "response contains further details.  Descriptions of each code can be found at: "
    "https://developers.stellar.org/docs/data/apis/horizon/api-reference/errors/http-status-codes/"
    "horizon-specific/transaction-failed"
)
_TIMEOUT_DETAIL = (
    "Your request timed out before completing.  Please try your request again. If you are submitting a "
    "transaction make sure you are sending exactly the same transaction (with the same sequence number)."
)
_RATE_LIMIT_DETAIL = (
    "The rate limit for the requesting IP address is over its alloted limit.  The allowed limit and requests "
    "left per time period are communicated to clients via the http response headers 'X-RateLimit-*' headers."
)


class _DropConnection(Exception):
    """Raised inside request handling: close the connection without writing a response."""


# ---------------------------------------------------------------------------------------------
# Small helpers


def _amount(stroops: int) -> str:
    sign = "-" if stroops < 0 else ""
    stroops = abs(stroops)
    return f"{sign}{stroops // STROOPS_PER_UNIT}.{stroops % STROOPS_PER_UNIT:07d}"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_asset(asset: Asset | tuple[str, str] | str | None) -> Asset:
    """None → native; Asset; (code, issuer); "CODE:ISSUER" or "native"."""
    if asset is None:
        return Asset.native()
    if isinstance(asset, Asset):
        return asset
    if isinstance(asset, tuple):
        return Asset(asset[0], asset[1])
    if asset == "native":
        return Asset.native()
    code, _, issuer = asset.partition(":")
    return Asset(code, issuer)


def _asset_key(asset: Asset) -> tuple[str, str] | None:
    return None if asset.is_native() else (asset.code, asset.issuer)


def _asset_fields(asset: Asset) -> dict[str, str]:
    if asset.is_native():
        return {"asset_type": "native"}
    return {"asset_type": asset.type, "asset_code": asset.code, "asset_issuer": asset.issuer}


def _muxed_fields(prefix: str, muxed: MuxedAccount) -> dict[str, str]:
    """``{prefix: G…}`` plus ``{prefix}_muxed`` / ``{prefix}_muxed_id`` when the address is an M… one."""
    out = {prefix: muxed.account_id}
    if muxed.account_muxed_id is not None:
        out[f"{prefix}_muxed"] = muxed.account_muxed
        out[f"{prefix}_muxed_id"] = str(muxed.account_muxed_id)
    return out


def _memo_fields(memo: Memo) -> dict[str, str]:
    if isinstance(memo, TextMemo):
        return {
            "memo_type": "text",
            "memo": memo.memo_text.decode("utf-8", errors="replace"),
            "memo_bytes": base64.b64encode(memo.memo_text).decode(),
        }
    if isinstance(memo, IdMemo):
        return {"memo_type": "id", "memo": str(memo.memo_id)}
    if isinstance(memo, HashMemo):
        return {"memo_type": "hash", "memo": base64.b64encode(memo.memo_hash).decode()}
    if isinstance(memo, ReturnHashMemo):
        return {"memo_type": "return", "memo": base64.b64encode(memo.memo_return).decode()}
    return {"memo_type": "none"}


def _to_memo(memo: Memo | str | int | None) -> Memo:
    if memo is None:
        return NoneMemo()
    if isinstance(memo, Memo):
        return memo
    if isinstance(memo, bool):
        raise TypeError("memo must be a str (text memo), an int (id memo) or a stellar_sdk Memo")
    if isinstance(memo, int):
        return IdMemo(memo)
    return TextMemo(memo)


def _problem(status: int, kind: str, title: str, detail: str, extras: dict | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": HORIZON_ERRORS + kind, "title": title, "status": status, "detail": detail}
    if extras is not None:
        body["extras"] = extras
    return body


def _not_found() -> tuple[int, dict]:
    return 404, _problem(404, "not_found", "Resource Missing", _NOT_FOUND_DETAIL)


def _bad_request(field_name: str, reason: str) -> tuple[int, dict]:
    return 400, _problem(
        400,
        "bad_request",
        "Bad Request",
        "The request you sent was invalid in some way.",
        {"invalid_field": field_name, "reason": reason},
    )


def _is_tx_hash(value: str) -> bool:
    """Horizon accepts only 64 lowercase hex digits."""
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _op_type_name(op: Operation) -> tuple[str, int]:
    xdr_type = op._XDR_OPERATION_TYPE
    name = xdr_type.name.lower()
    return name, xdr_type.value


def _op_result_xdr(op: Operation, code: str) -> stellar_xdr.OperationResult:
    if code in _OP_OUTER_CODES:
        return stellar_xdr.OperationResult(code=_OP_OUTER_CODES[code])
    op_type = op._XDR_OPERATION_TYPE
    if isinstance(op, Payment):
        tr = stellar_xdr.OperationResultTr(op_type, payment_result=stellar_xdr.PaymentResult(_PAYMENT_CODES[code]))
    elif isinstance(op, CreateAccount):
        tr = stellar_xdr.OperationResultTr(
            op_type, create_account_result=stellar_xdr.CreateAccountResult(_CREATE_ACCOUNT_CODES[code])
        )
    elif isinstance(op, ChangeTrust):
        tr = stellar_xdr.OperationResultTr(
            op_type, change_trust_result=stellar_xdr.ChangeTrustResult(_CHANGE_TRUST_CODES[code])
        )
    else:  # only reachable with op_not_supported, handled above
        return stellar_xdr.OperationResult(code=stellar_xdr.OperationResultCode.opNOT_SUPPORTED)
    return stellar_xdr.OperationResult(code=stellar_xdr.OperationResultCode.opINNER, tr=tr)


def _result_xdr(
    fee_charged: int,
    tx_code: str,
    ops: list[Operation],
    op_codes: list[str] | None,
    inner: tuple[bytes, str, list[str] | None] | None = None,
) -> str:
    """A TransactionResult as stellar-core writes it. ``inner`` = (inner hash, inner code, inner op codes)."""

    def results(codes: list[str] | None) -> list[stellar_xdr.OperationResult] | None:
        if codes is None:
            return None
        return [_op_result_xdr(op, code) for op, code in zip(ops, codes, strict=True)]

    if inner is not None:
        inner_hash, inner_code, inner_op_codes = inner
        pair = stellar_xdr.InnerTransactionResultPair(
            stellar_xdr.Hash(inner_hash),
            stellar_xdr.InnerTransactionResult(
                stellar_xdr.Int64(0),
                stellar_xdr.InnerTransactionResultResult(_TX_CODES[inner_code], results(inner_op_codes)),
                stellar_xdr.InnerTransactionResultExt(0),
            ),
        )
        result = stellar_xdr.TransactionResultResult(_TX_CODES[tx_code], inner_result_pair=pair)
    else:
        result = stellar_xdr.TransactionResultResult(_TX_CODES[tx_code], results=results(op_codes))
    return stellar_xdr.TransactionResult(
        stellar_xdr.Int64(fee_charged), result, stellar_xdr.TransactionResultExt(0)
    ).to_xdr()


# ---------------------------------------------------------------------------------------------
# Ledger state


@dataclass
class _Trustline:
    balance: int
    limit: int
    last_modified_ledger: int


@dataclass
class _Account:
    account_id: str
    sequence: int
    native: int
    last_modified_ledger: int
    last_modified_time: int
    sequence_ledger: int = 0
    sequence_time: int = 0
    trustlines: dict[tuple[str, str], _Trustline] = field(default_factory=dict)


@dataclass
class _Ledger:
    sequence: int
    closed_at: int
    hash: str
    prev_hash: str
    successful_transaction_count: int = 0
    failed_transaction_count: int = 0
    operation_count: int = 0


@dataclass
class _OpRec:
    token: int
    record: dict[str, Any]
    participants: frozenset[str]
    is_payment: bool
    tx: _TxRec


@dataclass
class _TxRec:
    token: int
    hash: str
    successful: bool
    record: dict[str, Any]
    participants: frozenset[str]
    ops: list[_OpRec] = field(default_factory=list)
    # The answer POST /transactions gives when this envelope is submitted again.
    response: tuple[int, dict[str, Any]] | None = None


class _View:
    """Copy-on-read view of the accounts, committed all at once (atomic application)."""

    def __init__(self, accounts: dict[str, _Account]):
        self.base = accounts
        self.changed: dict[str, _Account] = {}

    def get(self, account_id: str) -> _Account | None:
        if account_id in self.changed:
            return self.changed[account_id]
        acct = self.base.get(account_id)
        if acct is None:
            return None
        acct = copy.deepcopy(acct)
        self.changed[account_id] = acct
        return acct

    def exists(self, account_id: str) -> bool:
        return account_id in self.changed or account_id in self.base

    def create(self, acct: _Account) -> None:
        self.changed[acct.account_id] = acct

    def snapshot(self) -> dict[str, _Account]:
        return copy.deepcopy(self.changed)

    def commit(self) -> None:
        self.base.update(self.changed)


@dataclass
class _Fault:
    kind: str
    params: dict[str, Any]
    remaining: int


@dataclass
class Gate:
    """Holds the next request that matches until released (see HorizonStandin.hold)."""

    method: str
    prefix: str
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class _Submission:
    """The outcome of checking and (maybe) applying one envelope."""

    status: int
    body: dict[str, Any]
    included: bool = False


# ---------------------------------------------------------------------------------------------
# HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    standin: HorizonStandin


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    server_version = "horizon-standin"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._dispatch(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._dispatch(body)

    def _dispatch(self, body: bytes | None) -> None:
        standin = self.server.standin
        standin._wait_at_gate("GET" if body is None else "POST", self.path)
        try:
            if standin.down:
                raise _DropConnection
            if body is None:
                status, payload, headers = standin._handle_get(self.path)
            else:
                status, payload, headers = standin._handle_post(self.path, body)
        except _DropConnection:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)  # the client reads EOF: no status line
            return
        except Exception as exc:  # reported to the client as Horizon's server_error, and kept for the test
            standin.errors.append(traceback.format_exc())
            status, headers = 500, {}
            payload = _problem(
                500,
                "server_error",
                "Internal Server Error",
                "An error occurred while processing this request.",
                {"standin_error": repr(exc)},
            )
        self._send(status, payload, headers)

    def _send(self, status: int, payload: dict, headers: dict[str, str]) -> None:
        data = json.dumps(payload, indent=2).encode()
        is_problem = status >= 400
        with contextlib.suppress(OSError):  # the client may have given up (its own timeout)
            self.send_response(status)
            ctype = "application/problem+json" if is_problem else "application/hal+json"
            self.send_header("Content-Type", f"{ctype}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)


# ---------------------------------------------------------------------------------------------
# The stand-in


class HorizonStandin:
    """A Horizon stand-in on 127.0.0.1 with a small in-memory ledger. See the module docstring.

    ``failed_ops_consume_sequence``: stellar-core only finds out at apply time that a payment's
    destination is missing or its source underfunded, so on the real network such a transaction
    IS included in a ledger as failed: the fee is charged, the sequence number consumed, and
    GET /transactions/{hash} returns it with ``"successful": false``. With the default False the
    stand-in rejects such transactions outright (nothing charged, sequence kept, hash unknown);
    True reproduces the real network. Malformed operations, missing or bad signatures, bad sequence
    numbers, time bounds and fees are rejected before inclusion in both modes, as on the network.
    """

    def __init__(
        self,
        network_passphrase: str = Network.TESTNET_NETWORK_PASSPHRASE,
        *,
        failed_ops_consume_sequence: bool = False,
        ledger_close_seconds: float = 5.0,
        start_ledger: int = 1000,
    ) -> None:
        self.network_passphrase = network_passphrase
        self.failed_ops_consume_sequence = failed_ops_consume_sequence
        self.ledger_close_seconds = ledger_close_seconds
        self.down = False
        self.submitted: list[str] = []
        self.applied: list[str] = []
        self.errors: list[str] = []
        self.friendbot_keypair = Keypair.random()

        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._time_offset = 0.0
        self._accounts: dict[str, _Account] = {}
        self._history_accounts: set[str] = set()
        self._external_sequences: dict[str, int] = {}
        self._ledgers: list[_Ledger] = []
        self._txs: list[_TxRec] = []
        self._tx_by_hash: dict[str, _TxRec] = {}
        self._ops: list[_OpRec] = []
        self._op_by_id: dict[str, _OpRec] = {}
        self._faults: list[_Fault] = []
        self._gates: list[Gate] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

        genesis_time = int(self.now())
        self._ledgers.append(
            _Ledger(start_ledger, genesis_time, hashlib.sha256(str(start_ledger).encode()).hexdigest(), "0" * 64)
        )
        self.create_account(self.friendbot_keypair.public_key, balance_stroops=10**18)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, port: int = 0) -> HorizonStandin:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _Server(("127.0.0.1", port), _Handler)
        httpd.standin = self
        self._httpd = httpd
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="horizon-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HorizonStandin:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- clock and ledgers ---------------------------------------------------------------------

    def now(self) -> float:
        """The stand-in's clock: wall time plus whatever advance_time() added."""
        return time.time() + self._time_offset

    def advance_time(self, seconds: float) -> None:
        """Move the stand-in's clock forward (time bounds, closed_at); closes a ledger at the new time."""
        with self._lock:
            self._time_offset += seconds
            self._close_ledger()

    @property
    def latest_ledger(self) -> int:
        with self._lock:
            return self._ledgers[-1].sequence

    def _close_ledger(self) -> _Ledger:
        prev = self._ledgers[-1]
        seq = prev.sequence + 1
        ledger = _Ledger(
            seq,
            max(int(self.now()), prev.closed_at),
            hashlib.sha256(f"{seq}:{prev.hash}".encode()).hexdigest(),
            prev.hash,
        )
        self._ledgers.append(ledger)
        return ledger

    def _tick(self) -> None:
        """Ledgers close every ledger_close_seconds even when idle, so the latest closed_at follows the clock."""
        if self.now() - self._ledgers[-1].closed_at >= self.ledger_close_seconds:
            self._close_ledger()

    # -- test-side helpers ---------------------------------------------------------------------

    def create_account(
        self, public_key: str, balance_stroops: int = FRIENDBOT_AMOUNT, sequence: int | None = None
    ) -> None:
        """Put an account straight into the ledger (no history record). Default sequence: ledger << 32."""
        account_id = MuxedAccount.from_account(public_key).account_id
        with self._lock:
            if account_id in self._accounts:
                raise ValueError(f"account {account_id} already exists")
            ledger = self._ledgers[-1]
            self._accounts[account_id] = _Account(
                account_id=account_id,
                sequence=ledger.sequence << 32 if sequence is None else sequence,
                native=balance_stroops,
                last_modified_ledger=ledger.sequence,
                last_modified_time=ledger.closed_at,
                sequence_ledger=ledger.sequence,
                sequence_time=ledger.closed_at,
            )
            self._history_accounts.add(account_id)

    def add_trustline(
        self,
        public_key: str,
        asset_code: str,
        asset_issuer: str,
        balance_stroops: int = 0,
        limit_stroops: int = MAX_INT64,
    ) -> None:
        account_id = MuxedAccount.from_account(public_key).account_id
        Asset(asset_code, asset_issuer)  # validates code and issuer
        with self._lock:
            acct = self._accounts[account_id]
            acct.trustlines[(asset_code, asset_issuer)] = _Trustline(
                balance_stroops, limit_stroops, self._ledgers[-1].sequence
            )

    def account_exists(self, public_key: str) -> bool:
        with self._lock:
            return MuxedAccount.from_account(public_key).account_id in self._accounts

    def balance(self, public_key: str, asset: Asset | tuple[str, str] | str | None = None) -> int:
        """Balance in stroops. KeyError for an unknown account or a missing trustline."""
        account_id = MuxedAccount.from_account(public_key).account_id
        key = _asset_key(_to_asset(asset))
        with self._lock:
            acct = self._accounts[account_id]
            return acct.native if key is None else acct.trustlines[key].balance

    def sequence(self, public_key: str) -> int:
        with self._lock:
            return self._accounts[MuxedAccount.from_account(public_key).account_id].sequence

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        """The stored transaction record (as GET /transactions/{hash} serves it), or None."""
        with self._lock:
            rec = self._tx_by_hash.get(tx_hash)
            return copy.deepcopy(rec.record) if rec else None

    def fail_next(self, kind: str, *, times: int = 1, **params: Any) -> None:
        """Queue a fault for the next ``times`` POST /transactions (faults queue up in order).

        Kinds: 504_after, 504_before, drop, drop_after, bad_seq, 429, no_destination
        (destination=G…, optional: default the first payment), slow (seconds=N), result
        (transaction=CODE [outer=True], or operation=CODE [index=N]: rejected with those codes).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_KINDS)}")
        if kind == "slow" and "seconds" not in params:
            raise ValueError("fail_next('slow', seconds=N)")
        with self._lock:
            self._faults.append(_Fault(kind, params, times))

    def hold(self, method: str, prefix: str) -> Gate:
        """Hold the next `method` request whose path starts with `prefix` until `gate.release()`.

        `gate.reached` is set once the request is being held; a held request answers with the
        state of the ledger at release, as a slow Horizon would.
        """
        gate = Gate(method.upper(), prefix)
        with self._lock:
            self._gates.append(gate)
        return gate

    def _wait_at_gate(self, method: str, path: str) -> None:
        with self._lock:
            gate = next((g for g in self._gates if g.method == method and path.startswith(g.prefix)), None)
            if gate is not None:
                self._gates.remove(gate)
        if gate is not None:
            gate.reached.set()
            gate.released.wait(timeout=60)

    def fund(self, public_key: str, amount_stroops: int) -> str:
        """Send XLM from friendbot's account, recorded in history: create_account if it is new, else a payment."""
        account_id = MuxedAccount.from_account(public_key).account_id
        with self._lock:
            self._tick()
            bot = self._accounts[self.friendbot_keypair.public_key]
            amount = Operation.from_xdr_amount(amount_stroops)
            if account_id in self._accounts:
                op = Payment(destination=account_id, asset=Asset.native(), amount=amount)
            else:
                op = CreateAccount(account_id, amount)
            envelope = TransactionEnvelope(
                Transaction(self.friendbot_keypair.public_key, bot.sequence + 1, BASE_FEE, [op]),
                self.network_passphrase,
            )
            envelope.sign(self.friendbot_keypair)
            result = self._submit(envelope)
            if result.status != 200:
                raise ValueError(f"funding {account_id} failed: {result.body.get('extras')}")
            return envelope.hash_hex()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> list[str]:
        with self._lock:
            return [f.kind for f in self._faults for _ in range(f.remaining)]

    def pay_in(
        self,
        from_public_key: str,
        to_address: str,
        amount_stroops: int,
        memo: Memo | str | int | None = None,
        asset: Asset | tuple[str, str] | str | None = None,
        *,
        successful: bool = True,
    ) -> str:
        """Record a payment some wallet made to ``to_address`` (G… or M…); returns the operation id.

        A transaction with one Payment is recorded in a new ledger (envelope built, not signed).
        The destination must exist (and hold a trustline for a credit asset). If the sender exists
        in the stand-in it is debited (amount + fee) and its sequence consumed; otherwise it is an
        outside wallet. ``successful=False`` records a failed transaction (op_underfunded): no money
        moves, and like Horizon the payments feed only lists it with include_failed=true.
        """
        if amount_stroops <= 0:
            raise ValueError("amount_stroops must be positive")
        source = MuxedAccount.from_account(from_public_key)
        destination = MuxedAccount.from_account(to_address)
        asset_obj = _to_asset(asset)
        key = _asset_key(asset_obj)
        with self._lock:
            self._tick()
            view = _View(self._accounts)
            src = view.get(source.account_id)
            if src is not None:
                src.sequence += 1
                sequence = src.sequence
                src.native -= BASE_FEE
            else:
                sequence = self._external_sequences.get(source.account_id, self._ledgers[-1].sequence << 32) + 1
                self._external_sequences[source.account_id] = sequence
            if successful:
                dest = view.get(destination.account_id)
                if dest is None:
                    raise ValueError(f"destination {destination.account_id} does not exist in the stand-in")
                if src is not None:
                    code = self._move(src, dest, asset_obj, amount_stroops)
                    if code != "op_success":
                        raise ValueError(f"pay_in from a stand-in account failed: {code}")
                elif key is None:
                    dest.native += amount_stroops
                elif destination.account_id != asset_obj.issuer:
                    line = dest.trustlines.get(key)
                    if line is None:
                        raise ValueError(f"{destination.account_id} has no trustline for {key}; add_trustline first")
                    line.balance += amount_stroops
            op = Payment(destination=destination, asset=asset_obj, amount=Operation.from_xdr_amount(amount_stroops))
            tx = Transaction(source, sequence, BASE_FEE, [op], memo=_to_memo(memo))
            envelope = TransactionEnvelope(tx, self.network_passphrase)
            codes = ["op_success"] if successful else ["op_underfunded"]
            view.commit()
            rec = self._record(envelope, successful=successful, op_codes=codes)
            return rec.ops[0].record["id"]

    # -- accounts JSON -------------------------------------------------------------------------

    def _account_json(self, acct: _Account) -> dict[str, Any]:
        base = f"{self.url}/accounts/{acct.account_id}"
        balances: list[dict[str, Any]] = []
        for (code, issuer), line in sorted(acct.trustlines.items()):
            balances.append(
                {
                    "balance": _amount(line.balance),
                    "limit": _amount(line.limit),
                    "buying_liabilities": "0.0000000",
                    "selling_liabilities": "0.0000000",
                    "last_modified_ledger": line.last_modified_ledger,
                    "is_authorized": True,
                    "is_authorized_to_maintain_liabilities": True,
                    "is_clawback_enabled": False,
                    **_asset_fields(Asset(code, issuer)),
                }
            )
        balances.append(
            {
                "balance": _amount(acct.native),
                "buying_liabilities": "0.0000000",
                "selling_liabilities": "0.0000000",
                "asset_type": "native",
            }
        )
        return {
            "_links": {
                "self": {"href": base},
                "transactions": {"href": base + "/transactions{?cursor,limit,order}", "templated": True},
                "operations": {"href": base + "/operations{?cursor,limit,order}", "templated": True},
                "payments": {"href": base + "/payments{?cursor,limit,order}", "templated": True},
                "effects": {"href": base + "/effects{?cursor,limit,order}", "templated": True},
                "offers": {"href": base + "/offers{?cursor,limit,order}", "templated": True},
                "trades": {"href": base + "/trades{?cursor,limit,order}", "templated": True},
                "data": {"href": base + "/data/{key}", "templated": True},
            },
            "id": acct.account_id,
            "account_id": acct.account_id,
            "sequence": str(acct.sequence),
            "sequence_ledger": acct.sequence_ledger,
            "sequence_time": str(acct.sequence_time),
            "subentry_count": len(acct.trustlines),
            "last_modified_ledger": acct.last_modified_ledger,
            "last_modified_time": _iso(acct.last_modified_time),
            "thresholds": {"low_threshold": 0, "med_threshold": 0, "high_threshold": 0},
            "flags": {
                "auth_required": False,
                "auth_revocable": False,
                "auth_immutable": False,
                "auth_clawback_enabled": False,
            },
            "balances": balances,
            "signers": [{"weight": 1, "key": acct.account_id, "type": "ed25519_public_key"}],
            "data": {},
            "num_sponsoring": 0,
            "num_sponsored": 0,
            "paging_token": acct.account_id,
        }

    # -- submission ----------------------------------------------------------------------------

    def _decode(self, tx_xdr: str) -> TransactionEnvelope | FeeBumpTransactionEnvelope:
        if FeeBumpTransactionEnvelope.is_fee_bump_transaction_envelope(tx_xdr):
            return FeeBumpTransactionEnvelope.from_xdr(tx_xdr, self.network_passphrase)
        return TransactionEnvelope.from_xdr(tx_xdr, self.network_passphrase)

    @staticmethod
    def _signed_by(signatures: list, used: set[int], account_id: str, payload: bytes, offset: int = 0) -> bool:
        keypair = Keypair.from_public_key(account_id)
        hint = keypair.signature_hint()
        for index, sig in enumerate(signatures):
            if sig.signature_hint != hint:
                continue
            try:
                keypair.verify(payload, sig.signature)
            except BadSignatureError:
                continue
            used.add(offset + index)
            return True
        return False

    def _failure(
        self,
        envelope: TransactionEnvelope | FeeBumpTransactionEnvelope,
        code: str,
        op_codes: list[str] | None = None,
        inner_code: str | None = None,
    ) -> _Submission:
        """400 transaction_failed, as Horizon answers a transaction core did not accept (or that failed)."""
        fee_bump = isinstance(envelope, FeeBumpTransactionEnvelope)
        inner_env = envelope.transaction.inner_transaction_envelope if fee_bump else envelope
        ops = inner_env.transaction.operations
        fee = BASE_FEE * (len(ops) + (1 if fee_bump else 0))
        result_codes: dict[str, Any] = {"transaction": code}
        if inner_code is not None:
            result_codes["inner_transaction"] = inner_code
            result_xdr = _result_xdr(fee, code, ops, None, (inner_env.hash(), inner_code, op_codes))
        else:
            result_xdr = _result_xdr(fee, code, ops, op_codes)
        if op_codes is not None:
            result_codes["operations"] = op_codes
        body = _problem(
            400,
            "transaction_failed",
            "Transaction Failed",
            _TX_FAILED_DETAIL,
            {"envelope_xdr": envelope.to_xdr(), "result_codes": result_codes, "result_xdr": result_xdr},
        )
        return _Submission(400, body)

    def _reject(
        self, envelope: TransactionEnvelope | FeeBumpTransactionEnvelope, code: str, op_codes: list[str] | None = None
    ) -> _Submission:
        """A failure of the (inner) transaction; fee bumps report it as tx_fee_bump_inner_failed."""
        if isinstance(envelope, FeeBumpTransactionEnvelope):
            return self._failure(envelope, "tx_fee_bump_inner_failed", op_codes, inner_code=code)
        return self._failure(envelope, code, op_codes)

    def _refusal(self, envelope: TransactionEnvelope | FeeBumpTransactionEnvelope, params: dict) -> _Submission:
        """A rejection with the given codes: `transaction=` alone, or `operation=` at `index=` (tx_failed).

        `outer=True` reports the code on a fee bump's wrapper instead of its inner transaction.
        """
        if "operation" not in params:
            if params.get("outer"):
                return self._failure(envelope, params["transaction"])
            return self._reject(envelope, params["transaction"])
        fee_bump = isinstance(envelope, FeeBumpTransactionEnvelope)
        inner = envelope.transaction.inner_transaction_envelope if fee_bump else envelope
        codes = ["op_success"] * len(inner.transaction.operations)
        codes[params.get("index", 0)] = params["operation"]
        return self._reject(envelope, "tx_failed", codes)

    def _submit(
        self, envelope: TransactionEnvelope | FeeBumpTransactionEnvelope, no_destination: str | None = None
    ) -> _Submission:
        """Check, then apply all operations or none. Caller holds the lock."""
        tx_hash = envelope.hash_hex()
        existing = self._tx_by_hash.get(tx_hash)
        if existing is not None and existing.response is not None:
            # Horizon looks the hash up first: a resubmitted, already-included envelope gets its old answer.
            return _Submission(*copy.deepcopy(existing.response))

        fee_bump = isinstance(envelope, FeeBumpTransactionEnvelope)
        inner_env = envelope.transaction.inner_transaction_envelope if fee_bump else envelope
        tx = inner_env.transaction
        ops = tx.operations
        now = self.now()
        next_ledger = self._ledgers[-1].sequence + 1
        source_id = tx.source.account_id
        used_outer: set[int] = set()

        # The fee-bump wrapper: fee, fee source, its signature.
        if fee_bump:
            fb = envelope.transaction
            fee_source_id = fb.fee_source.account_id
            fee_charged = BASE_FEE * (len(ops) + 1)
            if fb.fee < fee_charged:
                return self._failure(envelope, "tx_insufficient_fee")
            if fee_source_id not in self._accounts:
                return self._failure(envelope, "tx_no_source_account")
            if not self._signed_by(envelope.signatures, used_outer, fee_source_id, envelope.hash()):
                return self._failure(envelope, "tx_bad_auth")
            if self._accounts[fee_source_id].native < fee_charged:
                return self._failure(envelope, "tx_insufficient_balance")
        else:
            fee_source_id = source_id
            fee_charged = BASE_FEE * len(ops)

        # The transaction itself, in stellar-core's order.
        if not ops:
            return self._reject(envelope, "tx_missing_operation")
        pre = tx.preconditions
        if pre is not None and pre.time_bounds is not None:
            if pre.time_bounds.min_time and now < pre.time_bounds.min_time:
                return self._reject(envelope, "tx_too_early")
            if pre.time_bounds.max_time and now > pre.time_bounds.max_time:
                return self._reject(envelope, "tx_too_late")
        if pre is not None and pre.ledger_bounds is not None:
            if pre.ledger_bounds.min_ledger and next_ledger < pre.ledger_bounds.min_ledger:
                return self._reject(envelope, "tx_too_early")
            if pre.ledger_bounds.max_ledger and next_ledger >= pre.ledger_bounds.max_ledger:
                return self._reject(envelope, "tx_too_late")
        if not fee_bump and tx.fee < fee_charged:
            return self._reject(envelope, "tx_insufficient_fee")
        source = self._accounts.get(source_id)
        if source is None:
            return self._reject(envelope, "tx_no_source_account")
        min_seq = pre.min_sequence_number if pre is not None else None
        if min_seq is not None:
            if not (min_seq <= source.sequence < tx.sequence):
                return self._reject(envelope, "tx_bad_seq")
        elif tx.sequence != source.sequence + 1:
            return self._reject(envelope, "tx_bad_seq")
        used: set[int] = set()
        inner_hash = inner_env.hash()
        if not self._signed_by(inner_env.signatures, used, source_id, inner_hash):
            return self._reject(envelope, "tx_bad_auth")
        if not fee_bump and source.native < fee_charged:
            return self._reject(envelope, "tx_insufficient_balance")

        # Operation validity: source accounts, their signatures, well-formedness.
        op_codes = []
        for op in ops:
            op_source = op.source.account_id if op.source is not None else source_id
            if op_source not in self._accounts:
                op_codes.append("op_no_source_account")
            elif op_source != source_id and not self._signed_by(inner_env.signatures, used, op_source, inner_hash):
                op_codes.append("op_bad_auth")
            else:
                op_codes.append(self._check_op(op, op_source))
        if any(code != "op_success" for code in op_codes):
            return self._reject(envelope, "tx_failed", op_codes)
        if fee_bump and len(used_outer) < len(envelope.signatures):
            return self._failure(envelope, "tx_bad_auth_extra")
        if len(used) < len(inner_env.signatures):
            return self._reject(envelope, "tx_bad_auth_extra")

        # Apply: fee and sequence first, then every operation against the running state.
        view = _View(self._accounts)
        ledger_seq = next_ledger
        fee_payer = view.get(fee_source_id)
        fee_payer.native -= fee_charged
        src = view.get(source_id)
        src.sequence = tx.sequence
        src.sequence_ledger = ledger_seq
        src.sequence_time = int(now)
        after_fee = view.snapshot()
        op_codes = []
        for op in ops:
            op_source = op.source.account_id if op.source is not None else source_id
            op_codes.append(self._apply_op(view, op, op_source, ledger_seq, int(now), no_destination))
        successful = all(code == "op_success" for code in op_codes)
        if not successful:
            if not self.failed_ops_consume_sequence:
                return self._reject(envelope, "tx_failed", op_codes)
            view.changed = after_fee
        for acct in view.changed.values():
            acct.last_modified_ledger = ledger_seq
            acct.last_modified_time = int(now)
        view.commit()
        rec = self._record(envelope, successful=successful, op_codes=op_codes, fee_charged=fee_charged)
        if successful:
            rec.response = (200, rec.record)
        else:
            failure = self._reject(envelope, "tx_failed", op_codes)
            failure.body["extras"]["result_xdr"] = rec.record["result_xdr"]
            rec.response = (failure.status, failure.body)
        return _Submission(*copy.deepcopy(rec.response), included=True)

    def _check_op(self, op: Operation, op_source: str) -> str:
        """Well-formedness (stellar-core's checkValid for the operation)."""
        if isinstance(op, Payment):
            return "op_success" if Operation.to_xdr_amount(op.amount) > 0 else "op_malformed"
        if isinstance(op, CreateAccount):
            if Operation.to_xdr_amount(op.starting_balance) < 0 or op.destination == op_source:
                return "op_malformed"
            return "op_success"
        if isinstance(op, ChangeTrust):
            asset = op.asset
            if not isinstance(asset, Asset) or asset.is_native() or asset.issuer == op_source:
                return "op_malformed"
            return "op_success" if Operation.to_xdr_amount(op.limit) >= 0 else "op_malformed"
        return "op_not_supported"

    @staticmethod
    def _move(src: _Account, dest: _Account, asset: Asset, amount: int) -> str:
        """Move ``amount`` of ``asset``; an issuer mints and burns its own asset without a trustline."""
        key = _asset_key(asset)
        if key is None:
            if src.native < amount:
                return "op_underfunded"
            src.native -= amount
            dest.native += amount
            return "op_success"
        issuer = asset.issuer
        dest_line = None
        if dest.account_id != issuer:
            dest_line = dest.trustlines.get(key)
            if dest_line is None:
                return "op_no_trust"
            if dest_line.balance + amount > dest_line.limit:
                return "op_line_full"
        src_line = None
        if src.account_id != issuer:
            src_line = src.trustlines.get(key)
            if src_line is None:
                return "op_src_no_trust"
            if src_line.balance < amount:
                return "op_underfunded"
        if src_line is not None:
            src_line.balance -= amount
        if dest_line is not None:
            dest_line.balance += amount
        return "op_success"

    def _apply_op(
        self, view: _View, op: Operation, op_source: str, ledger_seq: int, now: int, no_destination: str | None
    ) -> str:
        src = view.get(op_source)
        assert src is not None
        if isinstance(op, Payment):
            dest_id = op.destination.account_id
            if no_destination is not None and dest_id == no_destination:
                return "op_no_destination"
            dest = view.get(dest_id)
            if dest is None:
                return "op_no_destination"
            return self._move(src, dest, op.asset, Operation.to_xdr_amount(op.amount))
        if isinstance(op, CreateAccount):
            amount = Operation.to_xdr_amount(op.starting_balance)
            if view.exists(op.destination):
                return "op_already_exists"
            if src.native < amount:
                return "op_underfunded"
            src.native -= amount
            view.create(
                _Account(
                    account_id=op.destination,
                    sequence=ledger_seq << 32,
                    native=amount,
                    last_modified_ledger=ledger_seq,
                    last_modified_time=now,
                    sequence_ledger=ledger_seq,
                    sequence_time=now,
                )
            )
            return "op_success"
        if isinstance(op, ChangeTrust):
            asset = op.asset
            key = (asset.code, asset.issuer)
            limit = Operation.to_xdr_amount(op.limit)
            if not view.exists(asset.issuer):
                return "op_no_issuer"
            line = src.trustlines.get(key)
            if line is None:
                if limit == 0:
                    return "op_invalid_limit"
                src.trustlines[key] = _Trustline(0, limit, ledger_seq)
            elif limit == 0:
                if line.balance > 0:
                    return "op_invalid_limit"
                del src.trustlines[key]
            elif limit < line.balance:
                return "op_invalid_limit"
            else:
                line.limit = limit
                line.last_modified_ledger = ledger_seq
            return "op_success"
        return "op_not_supported"

    # -- records -------------------------------------------------------------------------------

    def _op_fields(self, op: Operation, op_source: MuxedAccount) -> tuple[dict[str, Any], set[str], bool]:
        """(type-specific JSON fields, participant accounts, is it a payments-endpoint operation)."""
        name, type_i = _op_type_name(op)
        fields: dict[str, Any] = {"type": name, "type_i": type_i}
        participants = {op_source.account_id}
        if isinstance(op, Payment):
            fields.update(_asset_fields(op.asset))
            fields.update(_muxed_fields("from", op_source))
            fields.update(_muxed_fields("to", op.destination))
            fields["amount"] = _amount(Operation.to_xdr_amount(op.amount))
            participants.add(op.destination.account_id)
            return fields, participants, True
        if isinstance(op, CreateAccount):
            fields["starting_balance"] = _amount(Operation.to_xdr_amount(op.starting_balance))
            fields.update(_muxed_fields("funder", op_source))
            fields["account"] = op.destination
            participants.add(op.destination)
            return fields, participants, True
        if isinstance(op, ChangeTrust) and isinstance(op.asset, Asset):
            fields.update(_asset_fields(op.asset))
            fields["limit"] = _amount(Operation.to_xdr_amount(op.limit))
            fields["trustee"] = op.asset.issuer
            fields.update(_muxed_fields("trustor", op_source))
            return fields, participants, False
        return fields, participants, False

    def _record(
        self,
        envelope: TransactionEnvelope | FeeBumpTransactionEnvelope,
        *,
        successful: bool,
        op_codes: list[str],
        fee_charged: int | None = None,
    ) -> _TxRec:
        """Close a ledger holding this transaction and store its transaction and operation records."""
        fee_bump = isinstance(envelope, FeeBumpTransactionEnvelope)
        inner_env = envelope.transaction.inner_transaction_envelope if fee_bump else envelope
        tx = inner_env.transaction
        if fee_charged is None:
            fee_charged = BASE_FEE * (len(tx.operations) + (1 if fee_bump else 0))
        ledger = self._close_ledger()
        tx_token = (ledger.sequence << 32) | (1 << 12)
        tx_hash = envelope.hash_hex()
        created_at = _iso(ledger.closed_at)
        if fee_bump:
            inner = (inner_env.hash(), "tx_success" if successful else "tx_failed", op_codes)
            result_xdr = _result_xdr(
                fee_charged,
                "tx_fee_bump_inner_success" if successful else "tx_fee_bump_inner_failed",
                tx.operations,
                None,
                inner,
            )
        else:
            result_xdr = _result_xdr(fee_charged, "tx_success" if successful else "tx_failed", tx.operations, op_codes)

        link = self.url
        record: dict[str, Any] = {
            "_links": {
                "self": {"href": f"{link}/transactions/{tx_hash}"},
                "account": {"href": f"{link}/accounts/{tx.source.account_id}"},
                "ledger": {"href": f"{link}/ledgers/{ledger.sequence}"},
                "operations": {
                    "href": f"{link}/transactions/{tx_hash}/operations{{?cursor,limit,order}}",
                    "templated": True,
                },
                "effects": {"href": f"{link}/transactions/{tx_hash}/effects{{?cursor,limit,order}}", "templated": True},
                "precedes": {"href": f"{link}/transactions?order=asc&cursor={tx_token}"},
                "succeeds": {"href": f"{link}/transactions?order=desc&cursor={tx_token}"},
                "transaction": {"href": f"{link}/transactions/{tx_hash}"},
            },
            "id": tx_hash,
            "paging_token": str(tx_token),
            "successful": successful,
            "hash": tx_hash,
            "ledger": ledger.sequence,
            "created_at": created_at,
            **_muxed_fields("source_account", tx.source),
            "source_account_sequence": str(tx.sequence),
            "fee_account": envelope.transaction.fee_source.account_id if fee_bump else tx.source.account_id,
            "fee_charged": str(fee_charged),
            "max_fee": str(envelope.transaction.fee if fee_bump else tx.fee),
            "operation_count": len(tx.operations),
            "envelope_xdr": envelope.to_xdr(),
            "result_xdr": result_xdr,
            "fee_meta_xdr": "",
            **_memo_fields(tx.memo),
            "signatures": [base64.b64encode(s.signature).decode() for s in envelope.signatures],
        }
        # Horizon names a muxed source "account_muxed", not "source_account_muxed".
        if "source_account_muxed" in record:
            record["account_muxed"] = record.pop("source_account_muxed")
            record["account_muxed_id"] = record.pop("source_account_muxed_id")
        if fee_bump:
            fee_source = envelope.transaction.fee_source
            if fee_source.account_muxed_id is not None:
                record["fee_account_muxed"] = fee_source.account_muxed
                record["fee_account_muxed_id"] = str(fee_source.account_muxed_id)
            record["fee_bump_transaction"] = {"hash": tx_hash, "signatures": record["signatures"]}
            record["inner_transaction"] = {
                "hash": inner_env.hash_hex(),
                "signatures": [base64.b64encode(s.signature).decode() for s in inner_env.signatures],
                "max_fee": str(tx.fee),
            }
        pre = tx.preconditions
        if pre is not None and pre.time_bounds is not None:
            tb = pre.time_bounds
            record["valid_after"] = _iso(tb.min_time)
            if tb.max_time:
                record["valid_before"] = _iso(tb.max_time)
            record["preconditions"] = {"timebounds": {"min_time": str(tb.min_time), "max_time": str(tb.max_time)}}

        participants = {tx.source.account_id}
        if fee_bump:
            participants.add(envelope.transaction.fee_source.account_id)
        rec = _TxRec(tx_token, tx_hash, successful, record, frozenset())
        for index, op in enumerate(tx.operations, start=1):
            op_source = op.source if op.source is not None else tx.source
            fields, op_participants, is_payment = self._op_fields(op, op_source)
            participants |= op_participants
            op_id = str(tx_token + index)
            op_record = {
                "_links": {
                    "self": {"href": f"{link}/operations/{op_id}"},
                    "transaction": {"href": f"{link}/transactions/{tx_hash}"},
                    "effects": {"href": f"{link}/operations/{op_id}/effects"},
                    "succeeds": {"href": f"{link}/effects?order=desc&cursor={op_id}"},
                    "precedes": {"href": f"{link}/effects?order=asc&cursor={op_id}"},
                },
                "id": op_id,
                "paging_token": op_id,
                "transaction_successful": successful,
                **_muxed_fields("source_account", op_source),
                "type": fields.pop("type"),
                "type_i": fields.pop("type_i"),
                "created_at": created_at,
                "transaction_hash": tx_hash,
                **fields,
            }
            op_rec = _OpRec(tx_token + index, op_record, frozenset(op_participants), is_payment, rec)
            rec.ops.append(op_rec)
            self._ops.append(op_rec)
            self._op_by_id[op_id] = op_rec
        rec.participants = frozenset(participants)
        self._history_accounts |= participants
        self._txs.append(rec)
        self._tx_by_hash[tx_hash] = rec
        if fee_bump:
            self._tx_by_hash.setdefault(inner_env.hash_hex(), rec)
        if successful:
            ledger.successful_transaction_count += 1
        else:
            ledger.failed_transaction_count += 1
        ledger.operation_count += len(tx.operations)
        return rec

    # -- HTTP: POST ----------------------------------------------------------------------------

    def _pop_fault(self) -> _Fault | None:
        if not self._faults:
            return None
        fault = self._faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._faults.pop(0)
        return fault

    def _handle_post(self, path: str, body: bytes) -> tuple[int, dict, dict[str, str]]:
        route = urlsplit(path).path.rstrip("/")
        if route != "/transactions":
            return (*_not_found(), {})
        form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        tx_xdr = (form.get("tx") or [""])[0]
        if not tx_xdr:
            return (*_bad_request("tx", "Transaction envelope is missing (form field `tx`)"), {})
        try:
            envelope = self._decode(tx_xdr)
        except Exception:
            problem = _problem(
                400,
                "transaction_malformed",
                "Transaction Malformed",
                "Horizon could not decode the transaction envelope in this request. A transaction should be an "
                "XDR-encoded `TransactionEnvelope` union type, base64 encoded.",
                {"envelope_xdr": tx_xdr},
            )
            return 400, problem, {}

        with self._lock:
            self._tick()
            self.submitted.append(envelope.hash_hex())
            fault = self._pop_fault()
        kind = fault.kind if fault else None
        params = fault.params if fault else {}

        if kind == "drop":
            raise _DropConnection
        if kind == "504_before":
            return 504, _problem(504, "timeout", "Timeout", _TIMEOUT_DETAIL), {}
        if kind == "429":
            headers = {"X-Ratelimit-Limit": "3600", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "60"}
            return 429, _problem(429, "rate_limit_exceeded", "Rate Limit Exceeded", _RATE_LIMIT_DETAIL), headers
        if kind == "slow" and self._stopping.wait(float(params["seconds"])):
            raise _DropConnection
        if kind == "bad_seq":
            with self._lock:
                result = self._reject(envelope, "tx_bad_seq")
            return result.status, result.body, {}
        if kind == "result":
            with self._lock:
                result = self._refusal(envelope, params)
            return result.status, result.body, {}

        no_destination = None
        if kind == "no_destination":
            if params.get("destination"):
                no_destination = MuxedAccount.from_account(params["destination"]).account_id
            else:
                fee_bump = isinstance(envelope, FeeBumpTransactionEnvelope)
                inner = envelope.transaction.inner_transaction_envelope if fee_bump else envelope
                payments = [op for op in inner.transaction.operations if isinstance(op, Payment)]
                no_destination = payments[0].destination.account_id if payments else None
        with self._lock:
            result = self._submit(envelope, no_destination)
            if result.included:
                self.applied.append(envelope.hash_hex())
        if kind == "504_after":
            return 504, _problem(504, "timeout", "Timeout", _TIMEOUT_DETAIL), {}
        if kind == "drop_after":
            raise _DropConnection
        return result.status, result.body, {}

    # -- HTTP: GET -----------------------------------------------------------------------------

    def _handle_get(self, path: str) -> tuple[int, dict, dict[str, str]]:
        split = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        parts = [p for p in split.path.split("/") if p]
        with self._lock:
            self._tick()
            status, body = self._route(parts, query)
        return status, body, {}

    def _route(self, parts: list[str], query: dict[str, str]) -> tuple[int, dict]:
        match parts:
            case []:
                return 200, self._root()
            case ["accounts", account_id]:
                if not StrKey.is_valid_ed25519_public_key(account_id):
                    return _bad_request("account_id", "invalid address")
                acct = self._accounts.get(account_id)
                return (200, self._account_json(acct)) if acct else _not_found()
            case ["accounts", account_id, ("payments" | "operations" | "transactions") as what]:
                if not StrKey.is_valid_ed25519_public_key(account_id):
                    return _bad_request("account_id", "invalid address")
                if account_id not in self._history_accounts:
                    return _not_found()
                return self._collection(f"/accounts/{account_id}/{what}", what, query, account_id=account_id)
            case ["transactions"]:
                return self._collection("/transactions", "transactions", query)
            case ["transactions", tx_hash, *_] if not _is_tx_hash(tx_hash):
                return _bad_request("tx_id", "invalid hash format")
            case ["transactions", tx_hash]:
                rec = self._tx_by_hash.get(tx_hash)
                return (200, rec.record) if rec else _not_found()
            case ["transactions", tx_hash, ("payments" | "operations") as what]:
                rec = self._tx_by_hash.get(tx_hash)
                if rec is None:
                    return _not_found()
                return self._collection(f"/transactions/{tx_hash}/{what}", what, query, tx=rec)
            case ["payments" | "operations" as what]:
                return self._collection(f"/{what}", what, query)
            case ["operations", op_id]:
                op = self._op_by_id.get(op_id)
                if op is None:
                    return _not_found()
                return 200, self._op_json(op, query.get("join") == "transactions")
            case ["ledgers"]:
                return self._collection("/ledgers", "ledgers", query)
            case ["ledgers", seq]:
                ledger = next((lg for lg in self._ledgers if str(lg.sequence) == seq), None)
                return (200, self._ledger_json(ledger)) if ledger else _not_found()
            case ["friendbot"]:
                return self._friendbot(query.get("addr", ""))
            case ["fee_stats"]:
                return 200, self._fee_stats()
        return _not_found()

    def _root(self) -> dict[str, Any]:
        latest = self._ledgers[-1]
        return {
            "_links": {
                "account": {"href": f"{self.url}/accounts/{{account_id}}", "templated": True},
                "ledgers": {"href": f"{self.url}/ledgers{{?cursor,limit,order}}", "templated": True},
                "transactions": {"href": f"{self.url}/transactions{{?cursor,limit,order}}", "templated": True},
                "friendbot": {"href": f"{self.url}/friendbot{{?addr}}", "templated": True},
                "self": {"href": f"{self.url}/"},
            },
            "horizon_version": "standin",
            "core_version": "standin",
            "ingest_latest_ledger": latest.sequence,
            "history_latest_ledger": latest.sequence,
            "history_latest_ledger_closed_at": _iso(latest.closed_at),
            "history_elder_ledger": self._ledgers[0].sequence,
            "core_latest_ledger": latest.sequence,
            "network_passphrase": self.network_passphrase,
            "current_protocol_version": PROTOCOL_VERSION,
            "supported_protocol_version": PROTOCOL_VERSION,
            "core_supported_protocol_version": PROTOCOL_VERSION,
        }

    def _ledger_json(self, ledger: _Ledger) -> dict[str, Any]:
        return {
            "_links": {
                "self": {"href": f"{self.url}/ledgers/{ledger.sequence}"},
                "transactions": {
                    "href": f"{self.url}/ledgers/{ledger.sequence}/transactions{{?cursor,limit,order}}",
                    "templated": True,
                },
            },
            "id": ledger.hash,
            "paging_token": str(ledger.sequence << 32),
            "hash": ledger.hash,
            "prev_hash": ledger.prev_hash,
            "sequence": ledger.sequence,
            "successful_transaction_count": ledger.successful_transaction_count,
            "failed_transaction_count": ledger.failed_transaction_count,
            "operation_count": ledger.operation_count,
            "tx_set_operation_count": ledger.operation_count,
            "closed_at": _iso(ledger.closed_at),
            "total_coins": "105443902087.3472865",
            "fee_pool": "0.0000000",
            "base_fee_in_stroops": BASE_FEE,
            "base_reserve_in_stroops": BASE_RESERVE,
            "max_tx_set_size": 1000,
            "protocol_version": PROTOCOL_VERSION,
        }

    def _fee_stats(self) -> dict[str, Any]:
        fees = {k: str(BASE_FEE) for k in ("max", "min", "mode", *(f"p{p}" for p in (10, 20, 30, 40, 50, 60, 70)))}
        fees |= {f"p{p}": str(BASE_FEE) for p in (80, 90, 95, 99)}
        return {
            "last_ledger": str(self._ledgers[-1].sequence),
            "last_ledger_base_fee": str(BASE_FEE),
            "ledger_capacity_usage": "0.01",
            "fee_charged": fees,
            "max_fee": fees,
        }

    def _op_json(self, op: _OpRec, join_transactions: bool) -> dict[str, Any]:
        if not join_transactions:
            return op.record
        return {**op.record, "transaction": op.tx.record}

    def _collection(
        self,
        path: str,
        what: str,
        query: dict[str, str],
        account_id: str | None = None,
        tx: _TxRec | None = None,
    ) -> tuple[int, dict]:
        order = query.get("order") or "asc"
        if order not in ("asc", "desc"):
            return _bad_request("order", "order: invalid value, must be asc or desc")
        try:
            limit = int(query.get("limit") or 10)
        except ValueError:
            return _bad_request("limit", "unparseable value")
        if not 1 <= limit <= 200:
            return _bad_request("limit", "limit must be between 1 and 200")
        cursor = query.get("cursor", "")
        if cursor not in ("", "now"):
            try:
                int(cursor)
            except ValueError:
                return _bad_request("cursor", "cursor: unparseable value")
        join = query.get("join", "")
        if join not in ("", "transactions") or (join and what not in ("payments", "operations")):
            return _bad_request("join", "accepted values: transactions")
        include_failed = query.get("include_failed", "false").lower() == "true"

        items: list[tuple[int, dict]]
        if what == "ledgers":
            items = [(lg.sequence << 32, self._ledger_json(lg)) for lg in self._ledgers]
        elif what == "transactions":
            items = [
                (t.token, t.record)
                for t in self._txs
                if (include_failed or t.successful) and (account_id is None or account_id in t.participants)
            ]
        else:
            source = tx.ops if tx is not None else self._ops
            items = [
                (o.token, self._op_json(o, join == "transactions"))
                for o in source
                if (what == "operations" or o.is_payment)
                and (tx is not None or include_failed or o.tx.successful)
                and (account_id is None or account_id in o.participants)
            ]

        if order == "desc":
            items.reverse()
        if cursor == "now":
            items = []
        elif cursor:
            position = int(cursor)
            items = [it for it in items if (it[0] > position if order == "asc" else it[0] < position)]
        records = [body for _, body in items[:limit]]

        extra = {k: v for k, v in (("join", join), ("include_failed", query.get("include_failed", ""))) if v}

        def href(cur: str, page_order: str) -> str:
            return f"{self.url}{path}?{urlencode({'cursor': cur, 'limit': limit, 'order': page_order, **extra})}"

        last = records[-1]["paging_token"] if records else cursor
        first = records[0]["paging_token"] if records else cursor
        body = {
            "_links": {
                "self": {"href": href(cursor, order)},
                "next": {"href": href(last, order)},
                "prev": {"href": href(first, "desc" if order == "asc" else "asc")},
            },
            "_embedded": {"records": records},
        }
        return 200, body

    def _friendbot(self, addr: str) -> tuple[int, dict]:
        if not StrKey.is_valid_ed25519_public_key(addr):
            return _bad_request("addr", "base32 decode failed: illegal base32 data")
        bot = self._accounts[self.friendbot_keypair.public_key]
        tx = Transaction(
            self.friendbot_keypair.public_key,
            bot.sequence + 1,
            BASE_FEE,
            [CreateAccount(addr, Operation.from_xdr_amount(FRIENDBOT_AMOUNT))],
        )
        envelope = TransactionEnvelope(tx, self.network_passphrase)
        envelope.sign(self.friendbot_keypair)
        result = self._submit(envelope)
        if result.status != 200:
            extras = result.body.get("extras", {})
            detail = "createAccountAlreadyExist" if "op_already_exists" in json.dumps(extras) else "friendbot failed"
            return 400, _problem(
                400, "bad_request", "Bad Request", f"{detail} ({extras.get('result_xdr', '')})", extras
            )
        return result.status, result.body


def decimal_to_stroops(amount: str | Decimal) -> int:
    """Horizon's 7-decimal amount string ("12.5000000") in stroops (125000000)."""
    return Operation.to_xdr_amount(amount)
