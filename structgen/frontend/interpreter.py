"""The interpreter: one ``Executor`` per program state runs that state's operations in order.

Execution model. ``s += expr`` does not wait: it queues the expression's operations on the
state's executor and returns, so the program's Python code runs ahead. The executor drains its
queue on a worker thread (started on demand, ended when the queue is empty): text and role
markers are appended at once; ``gen`` submits a request to the backend (``prompt`` = the
state's text so far) and waits for its result before the next operation of *that* state.
Different states (forks, or programs of ``run_batch``) drain concurrently, so their requests
reach the runtime together and are batched there. Reading ``s[name]``, ``s.text()`` or forking
waits for the operations queued before it.

A failing operation records the error (annotated with the ``file:line`` of the program line that
queued it); the state's later operations are skipped and the error is raised to the program on
its next read, and by ``run()``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
from collections import deque
from typing import Any

from ..constraints import Choice
from ..errors import GenerationError, ProgramError, StructgenError
from .primitives import (
    TOKEN_LENGTH_NORMALIZED,
    Expr,
    Gen,
    RoleBegin,
    RoleEnd,
    Select,
    Text,
    _flatten,
)

_FRONTEND_DIR = os.path.dirname(os.path.abspath(__file__))


def user_location() -> str:
    """``file:line`` of the innermost caller outside ``structgen/frontend`` (the program line)."""
    frame = sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _FRONTEND_DIR:
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class ProgramContext:
    """Shared by every state of one program run: backend, default sampling, stream flag, errors."""

    def __init__(self, name: str, backend: Any, defaults: dict, stream: bool = False):
        self.name = name
        self.backend = backend
        self.defaults = defaults
        self.stream = stream
        self.returned = False
        self.executors: list = []
        self.errors: list = []
        self.lock = threading.Lock()

    def add(self, executor: Executor) -> None:
        with self.lock:
            self.executors.append(executor)

    def record_error(self, e: BaseException) -> None:
        with self.lock:
            self.errors.append(e)

    def sync_all(self) -> None:
        """Wait for every state of the program, then raise the first error any of them hit."""
        for ex in list(self.executors):
            ex.wait_idle()
        if self.errors:
            raise self.errors[0]


class Executor:
    """Text, messages and variables of one state, and the queue of operations that builds them."""

    def __init__(self, ctx: ProgramContext, parent: Executor | None = None):
        self.ctx = ctx
        self.text = parent.text if parent else ""
        self.messages = list(parent.messages) if parent else []
        self.variables = dict(parent.variables) if parent else {}
        self.meta = dict(parent.meta) if parent else {}
        self.cur_role = parent.cur_role if parent else None
        self.role_start = parent.role_start if parent else 0
        self.role_first = parent.role_first if parent else False
        self.cached_upto = parent.cached_upto if parent else 0
        self.fork_start = len(self.text)
        self.error: BaseException | None = None
        self._events = {k: _set_event() for k in self.variables}
        self._ops: deque = deque()
        self._lock = threading.Lock()
        self._running = False
        self._idle = threading.Event()
        self._idle.set()
        self.changed = threading.Condition()
        ctx.add(self)

    # ---- user thread -------------------------------------------------------------------
    def submit(self, expr: Expr, where: str) -> None:
        """Queue ``expr``'s operations; names it will set become readable (pending) now."""
        ops = []
        for item in _flatten(expr):
            event = threading.Event()
            name = getattr(item, "name", None)  # gen, select and s[name] = value set a variable
            ops.append((item, where, event))
            if name is not None:
                with self._lock:
                    self._events[name] = event
        with self._lock:
            self._ops.extend(ops)
            if not self._running:
                self._running = True
                self._idle.clear()
                threading.Thread(target=self._drain, name="structgen-program", daemon=True).start()

    def wait_idle(self) -> None:
        self._idle.wait()

    def sync(self) -> None:
        """Wait for queued operations; raise the error this state hit, if any."""
        self._idle.wait()
        if self.error is not None:
            raise self.error

    def get(self, name: str, where: str) -> Any:
        with self._lock:
            event = self._events.get(name)
        if event is None:
            known = sorted(self._events)
            raise ProgramError(
                f"{where}: program {self.ctx.name!r} has no variable {name!r}; "
                f"variables are set by gen(name)/select(name), known: {known}"
            )
        event.wait()
        if self.error is not None:
            raise self.error
        return self.variables[name]

    def has(self, name: str) -> bool:
        with self._lock:
            return name in self._events

    def fork(self, n: int, where: str) -> list:
        if not isinstance(n, int) or n < 1:
            raise ProgramError(f"{where}: fork(n) needs an int n >= 1, got {n!r}")
        self.sync()
        if n > 1 and len(self.text) > self.cached_upto:
            self.ctx.backend.prefill(self.text)  # the children then find the prefix in the cache
            self.cached_upto = len(self.text)
        return [Executor(self.ctx, parent=self) for _ in range(n)]

    # ---- worker thread -----------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._ops:
                    self._running = False
                    self._idle.set()
                    break
                item, where, event = self._ops.popleft()
            if self.error is None:
                try:
                    self._execute(item)
                except BaseException as e:  # noqa: BLE001 - recorded, raised to the program on its next read
                    self._fail(e, where)
            event.set()
        self._notify()

    def _fail(self, e: BaseException, where: str) -> None:
        note = f" [in program {self.ctx.name!r} at {where}]"
        if isinstance(e, StructgenError) and e.args and isinstance(e.args[0], str):
            if not isinstance(e, ProgramError) or where not in e.args[0]:
                e.args = (e.args[0] + note,) + e.args[1:]
        elif not isinstance(e, StructgenError):
            wrapped = ProgramError(f"{type(e).__name__}: {e}{note}")
            wrapped.__cause__ = e
            e = wrapped
        self.error = e
        self.ctx.record_error(e)

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def _append(self, s: str) -> None:
        self.text += s
        if self.ctx.stream:
            self._notify()

    def _execute(self, item: Expr) -> None:
        if isinstance(item, Text):
            self._append(item.value)
        elif isinstance(item, Gen):
            self._gen(item)
        elif isinstance(item, Select):
            self._select(item)
        elif isinstance(item, RoleBegin):
            self._role_begin(item.role)
        elif isinstance(item, RoleEnd):
            self._role_end(item.role)
        elif callable(getattr(item, "run", None)):
            item.run(self)
        else:  # pragma: no cover - every Expr kind is handled above
            raise ProgramError(f"unknown program operation {item!r}")

    def _role_begin(self, role: str) -> None:
        if self.cur_role is not None:
            raise ProgramError(f"cannot open a {role} turn inside the open {self.cur_role} turn; close it first")
        self.role_first = not self.messages
        self._append(self.ctx.backend.chat_template.prefix(role, self.role_first))
        self.cur_role, self.role_start = role, len(self.text)

    def _role_end(self, role: str) -> None:
        if self.cur_role != role:
            raise ProgramError(f"{role}_end() without a matching {role}_begin() (open turn: {self.cur_role})")
        content = self.text[self.role_start:].lstrip()
        self._append(self.ctx.backend.chat_template.suffix(role, self.role_first))
        self.messages.append({"role": role, "content": content})
        self.cur_role = None

    def _gen(self, g: Gen) -> None:
        sampling = {**self.ctx.defaults, **g.sampling}
        if g.return_logprob:
            sampling["logprobs"] = True
        handle = self.ctx.backend.submit(self.text, g.constraint, sampling)
        if self.ctx.stream:
            start = len(self.text)
            for delta in handle.stream():
                self._append(delta)
                if g.name is not None:
                    self.variables[g.name] = self.text[start:]
            result = handle.result()
            self.text = self.text[:start] + result.text
        else:
            result = handle.result()
            self._append(result.text)
        _check_result(result, g)
        self.cached_upto = len(self.text)
        if g.name is not None:
            self.variables[g.name] = _parse(result, g)
            self.meta[g.name] = _meta(result, g.return_logprob)

    def _select(self, sel: Select) -> None:
        backend = self.ctx.backend
        if sel.method == TOKEN_LENGTH_NORMALIZED and backend.can_score:
            raw = backend.score(self.text, list(sel.choices))
            norm = [r / backend.num_tokens(c) for r, c in zip(raw, sel.choices)]
            idx = _pick(norm, sel.temperature)
            meta = {"method": sel.method, "normalized_logprobs": norm, "logprobs": raw}
        else:
            max_tokens = max(backend.num_tokens(c) for c in sel.choices) + 8
            sampling = {**self.ctx.defaults, "max_tokens": max_tokens, "temperature": sel.temperature, "stop": ()}
            result = backend.submit(self.text, Choice(list(sel.choices)), sampling).result()
            _check_result(result, sel)
            if result.text not in sel.choices:
                raise GenerationError(f"select {sel.name!r} produced {result.text!r}, not one of {list(sel.choices)}",
                                      text=result.text, finish_reason=result.finish_reason)
            idx = sel.choices.index(result.text)
            meta = {"method": "greedy_token_selection", **_meta(result, False)}
        self._append(sel.choices[idx])
        if sel.name is not None:
            self.variables[sel.name] = sel.choices[idx]
            self.meta[sel.name] = meta


def _set_event() -> threading.Event:
    e = threading.Event()
    e.set()
    return e


def _pick(scores: list, temperature: float) -> int:
    """argmax of ``scores``, or a draw with probability ~ exp(score / temperature) when > 0."""
    if temperature <= 0:
        return max(range(len(scores)), key=lambda i: scores[i])
    top = max(scores)
    weights = [pow(2.718281828459045, (s - top) / temperature) for s in scores]
    return random.choices(range(len(scores)), weights=weights)[0]


def _check_result(result: Any, op: Any) -> None:
    if getattr(result, "error", None) or result.finish_reason == "abort":
        raise GenerationError(f"generation of {op.name!r} failed: {getattr(result, 'error', None) or 'aborted'}",
                              text=result.text, finish_reason=result.finish_reason)


def _parse(result: Any, g: Gen) -> Any:
    """The variable's value: the text, or the text parsed as JSON / validated into the model."""
    if g.parse == "text":
        return result.text
    try:
        if g.parse == "json":
            return json.loads(result.text)
        from pydantic import TypeAdapter

        return TypeAdapter(g.constraint.model).validate_json(result.text)
    except ValueError as e:
        hint = " (it hit max_tokens: raise max_tokens)" if result.finish_reason == "length" else ""
        raise GenerationError(f"gen {g.name!r} output is not valid for its schema{hint}: {e}",
                              text=result.text, finish_reason=result.finish_reason) from None


def _meta(result: Any, logprobs: bool) -> dict:
    meta = {k: getattr(result, k, None) for k in ("finish_reason", "prompt_tokens", "cached_tokens", "completion_tokens")}
    if logprobs:
        meta["logprobs"] = getattr(result, "logprobs", None)
    return meta
