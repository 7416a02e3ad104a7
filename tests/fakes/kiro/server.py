"""The fake Kiro server: HTTP/1.1 on a gevent StreamServer, chat and refresh endpoints, the control API.

Importing this module does not patch anything; `python -m tests.fakes.kiro` patches first, then runs it.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import time
import uuid
from typing import Any, NoReturn
from urllib.parse import parse_qsl

import gevent
import gevent.event
from gevent.server import StreamServer

from tests.fakes.kiro.http import Closed, Connection, HttpError, Reader, Request, read_request
from tests.fakes.kiro.reasoning import SIGNATURE_INVALID, fields_problem, shape_problem, signature_problem
from tests.fakes.kiro.models import INVALID_MODEL, page
from tests.fakes.kiro.script import Plan, SpecError, check_spec, plan_response
from tests.fakes.kiro.state import State
from tests.fakes.kiro import cache, websearch
from tests.helpers.kiro_request import assert_well_formed

log = logging.getLogger(__name__)
MAX_HOLD = 300.0  # a held stream goes on after this long, so a forgotten release cannot hang the server
ACCESS_DENIED = {"__type": "com.amazon.coral.service#AccessDeniedException",
                 "message": "The bearer token included in the request is invalid."}
MALFORMED = {"__type": "com.amazon.kiro.runtimeservice#ValidationException",
             "message": "Improperly formed request.", "reason": None}
_IDE_AGENT = re.compile(r"KiroIDE-[0-9.]+-([0-9a-f]{64})$")
PROFILE_ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
# getUsageLimits as caidaoli/kiro2api's types/usage_limits.go describes it (see the protocol notes, section 7).
DEFAULT_USAGE = {"daysUntilReset": 12, "nextDateReset": 1893456000.0,
                 "subscriptionInfo": {"subscriptionTitle": "KIRO FREE", "type": "Q_DEVELOPER_STANDALONE_FREE"},
                 "usageBreakdownList": [{"resourceType": "CREDIT", "usageLimitWithPrecision": 50.0,
                                         "currentUsageWithPrecision": 8.68, "nextDateReset": 1893456000.0}]}


class Stream:
    """Sends one planned event stream as chunked transfer encoding, honouring pace, chunking, holds and faults."""

    def __init__(self, conn: Connection, state: State, plan: Plan, gate: gevent.event.Event) -> None:
        self.conn, self.state, self.plan, self.gate = conn, state, plan, gate
        self.pending = bytearray()  # grown in place: a chunk_size of many frames is not copied once per frame
        self.writes = 0
        last = len(plan.frames)  # a hold or fault asked for past the end happens before the final chunk
        self.hold_at = None if plan.hold_after is None else min(plan.hold_after, last)
        self.fault_at = min(plan.fault_after, last) if plan.fault in ("reset_after", "stall", "truncate") else None

    def run(self) -> None:
        """Send every frame, then the terminating chunk; raise Closed after a connection-ending fault."""
        plan, state = self.plan, self.state
        if plan.first_delay:
            gevent.sleep(plan.first_delay)
        for index, frame in enumerate(plan.frames):
            self._before_frame(index)
            self.write(frame)
            state.frames_sent += 1
            state.last_frame_sent_at = time.time()
        self._before_frame(len(plan.frames))
        self.flush()
        if plan.chunk_size and plan.frames:
            state.last_frame_sent_at = time.time()  # the last frame's tail left only now
        self.conn.sendall(b"0\r\n\r\n")

    def _before_frame(self, index: int) -> None:
        if self.hold_at == index:
            self._hold()
        if self.fault_at == index:
            self._fault(index)

    def _hold(self) -> None:
        """Wait for /_control/release; a client that hangs up meanwhile ends the stream (as a real server's would)."""
        self.flush()
        self.state.held += 1
        leaving = gevent.spawn(self._until_client_leaves)
        try:
            gevent.wait([self.gate, leaving], timeout=MAX_HOLD, count=1)
        finally:
            self.state.held -= 1
            left = leaving.dead
            leaving.kill()
        if left:
            raise Closed("client left during a hold")

    def _until_client_leaves(self) -> None:
        try:
            self.conn.wait_for_client_to_leave()
        except Closed:
            pass

    def _fault(self, index: int) -> NoReturn:
        """Inject a reset_after, stall or truncate fault; the connection ends either way."""
        self.flush()
        if self.plan.fault == "reset_after":
            self.conn.reset()
        if self.plan.fault == "stall":
            self.conn.wait_for_client_to_leave()
        if index < len(self.plan.frames):
            frame = self.plan.frames[index]
            self._send_chunk(frame[:len(frame) // 2])
        self.conn.sendall(b"0\r\n\r\n")  # a clean end of the chunked body, mid-frame
        raise Closed("truncated")

    def write(self, data: bytes) -> None:
        """Queue bytes; send them as one chunk, or as chunk_size pieces when the plan asks for that."""
        size = self.plan.chunk_size
        if not size:
            self._send_chunk(data)
            return
        self.pending += data
        while len(self.pending) >= size:
            piece = bytes(self.pending[:size])
            del self.pending[:size]
            self._send_chunk(piece)

    def flush(self) -> None:
        """Send whatever a chunk_size plan still holds back."""
        if self.pending:
            piece, self.pending = bytes(self.pending), bytearray()
            self._send_chunk(piece)

    def _send_chunk(self, data: bytes) -> None:
        if self.writes and self.plan.pace:
            gevent.sleep(self.plan.pace)
        self.writes += 1
        self.conn.sendall(b"%X\r\n%b\r\n" % (len(data), data))
        self.state.bytes_sent += len(data)


class FakeKiroServer:
    """Routes requests to the chat, refresh and control handlers over one shared State."""

    def __init__(self, state: State) -> None:
        self.state = state

    def handle(self, sock: socket.socket, address: tuple[str, int]) -> None:
        """Serve one connection, request after request, until close, fault or error."""
        conn = Connection(sock, lambda: self.state.clock_skew)
        reader = Reader(sock)
        self.state.connections += 1
        try:
            while True:
                request = read_request(reader)
                if request is None:
                    return
                self.dispatch(conn, request)
                if not request.keep_alive:
                    return
        except HttpError as exc:
            try:
                conn.send_json(exc.status, {"message": str(exc)}, keep_alive=False)
            except Closed:
                pass
        except (Closed, OSError) as exc:
            log.debug("connection from %s closed: %s", address, exc)
        finally:
            self.state.connections -= 1
            sock.close()

    def dispatch(self, conn: Connection, request: Request) -> None:
        """Answer one request."""
        routes = {("POST", "/generateAssistantResponse"): self.chat, ("POST", "/refreshToken"): self.social_refresh,
                  ("POST", "/token"): self.oidc_refresh, ("GET", "/getUsageLimits"): self.usage_limits,
                  ("GET", "/ListAvailableModels"): self.list_models, ("POST", "/mcp"): self.web_search}
        handler = routes.get((request.method, request.path))
        if handler is not None:
            handler(conn, request)
        elif request.path.startswith("/_control/"):
            self.control(conn, request)
        else:
            conn.send_json(404, {"message": f"no route {request.method} {request.path}"}, request.keep_alive)

    def chat(self, conn: Connection, request: Request) -> None:
        """The chat endpoint: auth, validation, then the next scripted (or default) answer.

        A body that breaks one of Kiro's rules (`malformed`) gets Kiro's own 400 and uses no scripted answer;
        the reason is kept in the record and in stats()["malformed"]. So does `additionalModelRequestFields` the
        model's schema does not allow, and a malformed history `reasoningContent`; a reasoning signature the fake
        did not issue gets 400 THINKING_SIGNATURE_INVALID (record["refused"]) (reasoning.py).
        """
        state = self.state
        state.chat_requests += 1
        token = request.headers.get("authorization", "")
        body = _json_or_none(request.body)
        record = {"time": time.time(), "method": request.method, "path": request.path,
                  "headers": request.headers, "body": body, "machine_id": machine_id(request.headers),
                  "conversation_id": _conversation_id(body)}
        state.records.append(record)
        account = state.account_of(token[7:]) if token.startswith("Bearer ") else None
        if account is None:
            record["status"] = 403
            conn.send_json(403, ACCESS_DENIED, request.keep_alive)
            return
        record["account"] = account
        if account in state.accounts:
            state.accounts[account].chat_requests += 1
        model_id, problem = _model_id(body), malformed(body)
        if model_id is not None and problem is None:
            problem = fields_problem(body, model_id) or shape_problem(body)
        if model_id is None or problem is not None:
            record["status"], record["malformed"] = 400, problem or "currentMessage has no content or modelId"
            state.refused(record["malformed"])
            log.warning("refused a malformed generateAssistantResponse body: %s", record["malformed"])
            conn.send_json(400, MALFORMED, request.keep_alive)
            return
        refusal = self._cache_refusal(body)
        if refusal is not None:  # a scripted refusal is the service's doing; too many points are ki2api's
            record["status"], record["refused"] = 400, refusal[1]
            if refusal[0] is cache.TOO_MANY:
                record["malformed"] = refusal[1]
                state.refused(refusal[1])
            conn.send_json(400, refusal[0], request.keep_alive)
            return
        forged = signature_problem(body)
        if forged is not None:
            record["status"], record["refused"] = 400, forged
            conn.send_json(400, SIGNATURE_INVALID, request.keep_alive)
            return
        listed = state.accounts[account].models if account in state.accounts else state.models
        if not any(entry["modelId"] == model_id for entry in listed):  # not on this account's list
            record["status"] = 400
            conn.send_json(400, INVALID_MODEL, request.keep_alive)
            return
        spec = state.next_spec(account)
        if spec.get("context_usage") == "auto":
            spec = {**spec, "context_usage": auto_usage(body, model_id, listed)}
        if "token_usage" not in spec and spec.get("status", 200) == 200:
            total = prompt_tokens(body, spec.get("context_usage"), _window(model_id, listed))
            usage = state.prompt_cache.usage(body, account, total, CHARS_PER_TOKEN, time.time())
            if usage is not None:
                spec = {**spec, "token_usage": usage}
                record["cache_usage"] = usage
        plan = plan_response(spec, model_id)
        record["status"] = plan.status
        record["fault"] = plan.fault
        self.answer(conn, request, plan)

    def _cache_refusal(self, body: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
        """The 400 body and reason for a request whose cache points the service would refuse (cache.py), or None."""
        points = cache.count(body)
        if points and self.state.cache_points == "refuse":
            return MALFORMED, "cache points refused (the fake's cache_points: refuse)"
        if points > cache.MAX_POINTS:
            return cache.TOO_MANY, f"{points} cache points, more than {cache.MAX_POINTS}"
        return None

    def answer(self, conn: Connection, request: Request, plan: Plan) -> None:
        """Send a planned answer: a plain body, or a stream with its faults."""
        if plan.fault == "reset_before":
            conn.reset()
        if plan.body is not None:
            content_type = "application/json" if plan.body.startswith(b"{") else "text/html"
            conn.send_plain(plan.status, plan.body, request.keep_alive, plan.headers, content_type)
            return
        gate = self.state.gate  # taken now, so a release that comes before the hold still lets this one through
        headers = {"Content-Type": "application/vnd.amazon.eventstream", "Transfer-Encoding": "chunked",
                   "x-amzn-RequestId": str(uuid.uuid4()),
                   "x-amzn-codewhisperer-conversation-id": str(uuid.uuid4()), **plan.headers}
        conn.send_head(200, headers, request.keep_alive)
        self.state.stream_opened()
        try:
            Stream(conn, self.state, plan, gate).run()
        finally:
            self.state.open_streams -= 1

    def web_search(self, conn: Connection, request: Request) -> None:
        """POST /mcp: Kiro's web search (websearch.py), recorded in state.searches."""
        state = self.state
        token = request.headers.get("authorization", "")
        body = _json_or_none(request.body)
        record = {"time": time.time(), "headers": request.headers, "body": body}
        state.searches.append(record)
        if (state.account_of(token[7:]) if token.startswith("Bearer ") else None) is None:
            record["status"] = 403
            conn.send_json(403, ACCESS_DENIED, request.keep_alive)
            return
        problem = websearch.malformed(body)
        if problem is not None:
            record["status"], record["malformed"] = 400, problem
            conn.send_json(400, websearch.MALFORMED, request.keep_alive)
            return
        if not request.headers.get(websearch.ARN_HEADER, "").startswith("arn:aws:codewhisperer:"):
            record["status"] = 403
            conn.send_json(403, websearch.NO_PROFILE, request.keep_alive)
            return
        spec = state.search_queue.popleft() if state.search_queue else {}
        if spec.get("delay"):
            gevent.sleep(spec["delay"])
        record["status"], answer = websearch.answer(spec, body)
        conn.send_json(record["status"], answer, request.keep_alive)

    def usage_limits(self, conn: Connection, request: Request) -> None:
        """GET /getUsageLimits: the account's configured usage answer (or a default one), for its tokens only."""
        state = self.state
        state.note_call(request, machine_id(request.headers))
        token = request.headers.get("authorization", "")
        account = state.account_of(token[7:]) if token.startswith("Bearer ") else None
        if account is None or _untyped_api_key(request):
            conn.send_json(403, ACCESS_DENIED, request.keep_alive)
            return
        state.usage_calls += 1
        named = state.accounts.get(account)
        if named is not None:
            named.usage_calls += 1
        conn.send_json(200, named.usage if named and named.usage is not None else DEFAULT_USAGE, request.keep_alive)

    def list_models(self, conn: Connection, request: Request) -> None:
        """GET /ListAvailableModels (the IDE's form): the account's model list, a page at a time."""
        state = self.state
        token = request.headers.get("authorization", "")
        account = state.account_of(token[7:]) if token.startswith("Bearer ") else None
        if account is None or _untyped_api_key(request):
            conn.send_json(403, ACCESS_DENIED, request.keep_alive)
            return
        state.models_calls += 1
        named = state.accounts.get(account)
        if named is not None:
            named.models_calls += 1
        if state.models_delay:
            gevent.sleep(state.models_delay)
        if state.models_status is not None:
            conn.send_json(state.models_status, {"message": "scripted"}, request.keep_alive)
            return
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        status, body = page(named.models if named else state.models, query, state.models_page)
        conn.send_json(status, body, request.keep_alive)

    def social_refresh(self, conn: Connection, request: Request) -> None:
        """POST /refreshToken: rotate the social refresh token."""
        self.state.refresh_calls += 1
        self._refresh(conn, request, oidc=False)

    def oidc_refresh(self, conn: Connection, request: Request) -> None:
        """POST /token: rotate the IdC refresh token."""
        self.state.oidc_calls += 1
        self._refresh(conn, request, oidc=True)

    def _refresh(self, conn: Connection, request: Request, oidc: bool) -> None:
        state = self.state
        state.note_call(request, machine_id(request.headers))
        if state.refresh_delay:
            gevent.sleep(state.refresh_delay)
        if state.refresh_status is not None:
            body = (state.refresh_body if state.refresh_body is not None else '{"message":"scripted"}').encode()
            conn.send_plain(state.refresh_status, body, request.keep_alive)
            return
        body = _json_or_none(request.body)
        if not isinstance(body, dict) or (oidc and not _oidc_fields_ok(body)):
            conn.send_json(400, {"error": "invalid_request", "error_description": "Malformed request"},
                           request.keep_alive)
            return
        issued = state.rotate_refresh(body.get("refreshToken"))
        if issued is None:
            status, text = (400, "Invalid refresh token") if oidc else (401, "Invalid refresh token provided")
            conn.send_json(status, {"error": "invalid_grant", "error_description": text}, request.keep_alive)
            return
        access, refresh = issued
        if state.refresh_hold:  # the new tokens exist upstream now; the client has not got them yet
            gate = state.gate
            state.refresh_held += 1
            try:
                gate.wait(MAX_HOLD)
            finally:
                state.refresh_held -= 1
        if oidc:
            answer = {"accessToken": access, "expiresIn": 3600, "refreshToken": refresh, "tokenType": "Bearer"}
        else:
            answer = {"accessToken": access, "expiresIn": 3600, "profileArn": PROFILE_ARN, "refreshToken": refresh}
        conn.send_json(200, answer, request.keep_alive)

    def control(self, conn: Connection, request: Request) -> None:
        """The /_control/ API: reset, script, default, stats, requests, release."""
        state, name = self.state, request.path[len("/_control/"):]
        body = _json_or_none(request.body) if request.body else {}
        try:
            if (request.method, name) == ("GET", "stats"):
                result: Any = state.stats()
            elif (request.method, name) == ("GET", "requests"):
                result = list(state.records)
            elif (request.method, name) == ("GET", "calls"):
                result = list(state.calls)
            elif (request.method, name) == ("GET", "searches"):
                result = list(state.searches)
            elif request.method != "POST" or not isinstance(body, dict):
                raise SpecError(f"{request.method} /_control/{name} needs POST with a JSON object")
            elif name == "reset":
                result = state.reset(body)
            elif name == "script":
                responses = body.get("responses")
                if not isinstance(responses, list):
                    raise SpecError("script needs {\"responses\": [spec, ...]}")
                state.queue.extend([check_spec(s), s.get("repeat", 1)] for s in responses)
                result = {"queued": state.queued()}
            elif name == "websearch":
                responses = body.get("responses")
                if not isinstance(responses, list):
                    raise SpecError("websearch needs {\"responses\": [spec, ...]}")
                try:
                    state.search_queue.extend(websearch.check(s) for s in responses)
                except websearch.SearchSpecError as exc:
                    raise SpecError(str(exc)) from None
                result = {"queued": len(state.search_queue)}
            elif name == "default":
                result = state.set_default(check_spec(body))
            elif name == "release":
                result = {"released": state.release()}
            else:
                conn.send_json(404, {"message": f"no control endpoint {name!r}"}, request.keep_alive)
                return
        except SpecError as exc:
            conn.send_json(400, {"message": str(exc)}, request.keep_alive)
            return
        conn.send_json(200, result, request.keep_alive)


HIDDEN_PROMPT_TOKENS = 5000  # what the fake takes Kiro's own system prompt to weigh (docs/api.md's figure)
# Characters of conversationState JSON per token of Kiro's count, less the hidden prompt, on the three captured
# requests with answers (3.04, 3.06, 3.23): the fake's tokenizer.
CHARS_PER_TOKEN = 3.1


def _window(model_id: str, listed: list[dict[str, Any]]) -> int:
    return next((e.get("tokenLimits", {}).get("maxInputTokens") for e in listed if e["modelId"] == model_id),
                None) or 200_000


def auto_usage(body: dict[str, Any], model_id: str, listed: list[dict[str, Any]]) -> float:
    """The context percentage for `body`: its conversationState at CHARS_PER_TOKEN, plus the hidden prompt,
    over the model's window; rounded to four decimals, as Kiro sends it."""
    tokens = len(json.dumps(body.get("conversationState", {}), ensure_ascii=False)) / CHARS_PER_TOKEN \
        + HIDDEN_PROMPT_TOKENS
    return round(100 * tokens / _window(model_id, listed), 4)


def prompt_tokens(body: dict[str, Any], scripted: Any, window: int) -> int:
    """The input tokens the fake counts for a request: a scripted context percentage of the window (so both of
    the answer's figures agree), else its conversationState at CHARS_PER_TOKEN plus the hidden prompt (as
    auto_usage counts them)."""
    if isinstance(scripted, (int, float)) and not isinstance(scripted, bool):
        return round(scripted * window / 100)
    text = json.dumps(body.get("conversationState", {}), ensure_ascii=False)
    return round(len(text) / CHARS_PER_TOKEN) + HIDDEN_PROMPT_TOKENS


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def machine_id(headers: dict[str, str]) -> str | None:
    """The machine id a Kiro client names at the end of its user agent (`KiroIDE-<version>-<64 hex>`), if any."""
    found = _IDE_AGENT.search(headers.get("user-agent", ""))
    return found.group(1) if found else None


def _conversation_id(body: Any) -> str | None:
    try:
        return body["conversationState"]["conversationId"]
    except (KeyError, TypeError):
        return None


def _model_id(body: Any) -> str | None:
    """The request's modelId if the body has the fields Kiro insists on, else None."""
    try:
        message = body["conversationState"]["currentMessage"]["userInputMessage"]
        content, model_id = message["content"], message["modelId"]
    except (KeyError, TypeError):
        return None
    return model_id if isinstance(content, str) and isinstance(model_id, str) and model_id else None


def malformed(body: Any) -> str | None:
    """Why real Kiro would answer this chat body "Improperly formed request." (the rules of
    tests/helpers/kiro_request.py), or None if it is well formed."""
    try:
        assert_well_formed(body)
    except AssertionError as exc:
        return str(exc) or "a rule of assert_well_formed failed"
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        return f"missing or mistyped field: {type(exc).__name__} {exc}"
    except RecursionError:
        return "nested too deeply to check"
    return None


def _untyped_api_key(request: Request) -> bool:
    """A Kiro API key (ksk_...) on a usage call without `tokentype: API_KEY`: the service refuses it."""
    token = request.headers.get("authorization", "")
    return token.startswith("Bearer ksk_") and request.headers.get("tokentype") != "API_KEY"


def _oidc_fields_ok(body: dict[str, Any]) -> bool:
    return bool(body.get("clientId")) and bool(body.get("clientSecret")) and body.get("grantType") == "refresh_token"


def serve(host: str, port: int, state: State, backlog: int = 4096) -> StreamServer:
    """Bind and start the server (call after monkey-patching); the caller runs serve_forever."""
    server = StreamServer((host, port), FakeKiroServer(state).handle, backlog=backlog)
    server.start()
    return server

