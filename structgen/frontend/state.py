"""``ProgramState`` (the ``s`` a program writes to) and ``ForkGroup`` (what ``s.fork(n)`` returns).

A state is a façade over an ``Executor`` (see ``interpreter.py`` for the execution model):
``s += expr`` queues, ``s[name]`` / ``s.text()`` / ``s.messages()`` wait for what was queued.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..errors import ProgramError
from .interpreter import Executor, user_location
from .primitives import Expr, RoleBegin, RoleEnd, Text, _as_expr


class ProgramState:
    """The state of one running program (or one fork of it)."""

    def __init__(self, executor: Executor):
        self._ex = executor
        self.ret_value: Any = None

    # ---- writing -----------------------------------------------------------------------
    def __iadd__(self, other: Any) -> ProgramState:
        where = user_location()
        if self._ex.ctx.returned:
            raise ProgramError(
                f"{where}: cannot add to the state of program {self._ex.ctx.name!r} after it returned; "
                "add everything inside the program function"
            )
        self._ex.submit(_to_expr(other, where), where)
        return self

    def __setitem__(self, name: str, value: Any) -> None:
        self._ex.submit(_SetVar(name, value), user_location())

    def set_var(self, name: str, value: Any) -> None:
        self[name] = value

    def _role_scope(self, role: str, expr: Any = None):
        if expr is not None:
            self += [RoleBegin(role), _to_expr(expr, user_location()), RoleEnd(role)]
            return None
        return self._role_cm(role)

    @contextlib.contextmanager
    def _role_cm(self, role: str):
        self._ex.submit(RoleBegin(role), user_location())
        yield self
        self._ex.submit(RoleEnd(role), user_location())

    def system(self, expr: Any = None):
        """``s.system("...")`` adds a system turn; ``with s.system(): ...`` wraps the block in one."""
        return self._role_scope("system", expr)

    def user(self, expr: Any = None):
        """Like ``system`` for a user turn."""
        return self._role_scope("user", expr)

    def assistant(self, expr: Any = None):
        """Like ``system`` for an assistant turn."""
        return self._role_scope("assistant", expr)

    def fork(self, size: int = 1, position_ids_offset: Any = None) -> ForkGroup:
        """``size`` child states that start from this state's text, messages and variables.

        Waits for this state's queued operations, puts the shared prefix in the runtime's cache
        (one prefill) when ``size`` > 1, and returns at once; the children's operations run
        concurrently, so their requests are batched together. The parent is unchanged: ``s += ...``
        after a fork continues the parent; read the children's results from the children, or
        ``join()`` them back.
        """
        where = user_location()
        if position_ids_offset is not None:
            raise ProgramError(f"{where}: fork(position_ids_offset=...) is not supported")
        return ForkGroup([ProgramState(ex) for ex in self._ex.fork(size, where)], self)

    # ---- reading -----------------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        """The value of variable ``name`` (waits for the operation that sets it)."""
        return self._ex.get(name, user_location())

    def get_var(self, name: str) -> Any:
        return self._ex.get(name, user_location())

    def __contains__(self, name: str) -> bool:
        return self._ex.has(name)

    def get_meta_info(self, name: str) -> dict:
        """Token counts, finish reason (and logprobs when asked) of the ``gen``/``select`` named ``name``."""
        self._ex.get(name, user_location())
        return self._ex.meta.get(name, {})

    def text(self) -> str:
        """The full text so far (roles rendered with the chat template), after queued operations."""
        self._ex.sync()
        return self._ex.text

    def messages(self) -> list:
        """The closed chat turns as ``[{"role", "content"}, ...]``."""
        self._ex.sync()
        return [dict(m) for m in self._ex.messages]

    def sync(self) -> None:
        """Wait for queued operations; raise the error this state hit, if any."""
        self._ex.sync()

    def error(self) -> BaseException | None:
        self._ex.wait_idle()
        return self._ex.error

    def variables(self) -> dict:
        self._ex.sync()
        return dict(self._ex.variables)

    def text_iter(self, var_name: str | None = None) -> Iterator[str]:
        """Yield text as it is produced (``run(stream=True)``): of the whole state, or of one variable.

        Without streaming, yields the final text (or value) once.
        """
        ex = self._ex
        if not ex.ctx.stream:
            yield self.text() if var_name is None else str(self[var_name])
            return
        prev = 0
        while True:
            with ex.changed:
                cur = ex.text if var_name is None else str(ex.variables.get(var_name, ""))
                done = ex.ctx.returned and ex._idle.is_set()
                if len(cur) <= prev and not done:
                    ex.changed.wait(timeout=0.05)
                    continue
            if len(cur) > prev:
                yield cur[prev:]
                prev = len(cur)
            elif done:
                break
        ex.ctx.sync_all()

    def __repr__(self) -> str:
        return f"ProgramState({self._ex.ctx.name!r}, {len(self._ex.text)} chars)"


class ForkGroup:
    """The children of ``s.fork(n)``: indexable, iterable, and ``+=``-able as a group."""

    def __init__(self, states: list, parent: ProgramState):
        self.states = states
        self.parent = parent

    def __len__(self) -> int:
        return len(self.states)

    def __getitem__(self, i: int) -> ProgramState:
        return self.states[i]

    def __setitem__(self, i: int, value: ProgramState) -> None:
        if value is not self.states[i]:  # `forks[i] += x` stores the same state back
            raise ProgramError("cannot replace a fork; add to it with forks[i] += ...")

    def __iter__(self) -> Iterator[ProgramState]:
        return iter(self.states)

    def __iadd__(self, other: Any) -> ForkGroup:
        """Add to every child: an expression/str to each, ``f(i)`` to child i, or ``other[i]``."""
        for i, state in enumerate(self.states):
            if isinstance(other, (list, tuple)):
                state += other[i]
            elif callable(other) and not isinstance(other, Expr):
                state += other(i)
            else:
                state += other
        return self

    def join(self, mode: str = "gather_variable") -> ProgramState:
        """Bring the children back into the parent.

        ``"gather_variable"``: every variable a child set that the parent did not have becomes,
        in the parent, the list of the children's values. ``"concate_and_append"``: the text each
        child added after the fork is appended to the parent, child by child.
        """
        for s in self.states:
            s.sync()
        if mode == "gather_variable":
            pex = self.parent._ex
            new = [k for k in self.states[0]._ex.variables if k not in pex.variables]
            for k in new:
                self.parent[k] = [s._ex.variables.get(k) for s in self.states]
        elif mode == "concate_and_append":
            self.parent += "".join(s._ex.text[s._ex.fork_start:] for s in self.states)
        else:
            raise ProgramError(f"join(mode={mode!r}): use 'gather_variable' or 'concate_and_append'")
        self.parent.sync()
        return self.parent


class _SetVar(Expr):
    """Sets a variable from the program (``s[name] = value``) in queue order."""

    def __init__(self, name: str, value: Any):
        self.name, self.value = name, value

    def run(self, ex: Executor) -> None:
        ex.variables[self.name] = self.value


def _to_expr(other: Any, where: str) -> Expr:
    if other is None:
        raise ProgramError(f"{where}: cannot add None to a program state")
    if isinstance(other, (list, tuple)) and all(isinstance(x, (Expr, str)) for x in other):
        out: Any = Text("")
        for x in other:
            out = out + x
        return out
    if isinstance(other, (int, float)) and not isinstance(other, bool):
        return Text(str(other))
    try:
        return _as_expr(other)
    except ProgramError as e:
        raise ProgramError(f"{where}: {e}") from None
