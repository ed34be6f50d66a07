"""The expressions a program appends to its state: text, ``gen``, ``select`` and role markers.

An expression is plain data; nothing runs until it is added to a ``ProgramState``
(``s += expr``). Expressions concatenate with ``+`` (with each other and with ``str``), so
``s += "Answer: " + gen("a", stop="\\n") + "\\n"`` appends three operations in order.

``gen`` and ``select`` accept the argument names of SGLang's ``sgl.gen`` / ``sgl.select``;
arguments structgen cannot honour raise ``ProgramError`` at once instead of being ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..constraints import Choice, Constraint, JsonSchema, Regex, as_constraint
from ..errors import ProgramError

ROLES = ("system", "user", "assistant")

# choices_method values (SGLang exposes objects of these names; we accept the names or objects).
TOKEN_LENGTH_NORMALIZED = "token_length_normalized"
GREEDY_TOKEN_SELECTION = "greedy_token_selection"
CHOICES_METHODS = (TOKEN_LENGTH_NORMALIZED, GREEDY_TOKEN_SELECTION)

# Regexes for SGLang's ``dtype=`` argument (the value stays a str, as in SGLang).
_DTYPE_REGEX = {
    "int": r"[-+]?[0-9]+",
    "float": r"[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?",
    "bool": r"(True|False)",
    "str": r'"([^"\\]|\\.)*"',
}


class Expr:
    """Base of every program expression; ``a + b`` concatenates into an ``ExprList``."""

    def __add__(self, other: Any) -> ExprList:
        return ExprList(_flatten(self) + _flatten(_as_expr(other)))

    def __radd__(self, other: Any) -> ExprList:
        return ExprList(_flatten(_as_expr(other)) + _flatten(self))


@dataclass
class Text(Expr):
    """Literal text appended to the prompt."""

    value: str


@dataclass
class ExprList(Expr):
    """Expressions run one after the other."""

    items: list


@dataclass
class RoleBegin(Expr):
    """Opens a chat turn of ``role``: appends the chat template's prefix for it."""

    role: str


@dataclass
class RoleEnd(Expr):
    """Closes the open turn: appends the template's suffix and records the message."""

    role: str


@dataclass
class Gen(Expr):
    """Generate text into variable ``name``.

    ``sampling`` holds only the options the caller set (None means "use the program's
    default"). ``constraint`` is a structgen ``Constraint`` or None. ``parse`` says how the
    variable's value is built from the generated text: ``"text"`` (the str), ``"json"``
    (``json.loads``) or ``"model"`` (an instance of ``constraint.model``).
    """

    name: str | None
    sampling: dict = field(default_factory=dict)
    constraint: Constraint | None = None
    parse: str = "text"
    return_logprob: bool = False


@dataclass
class Select(Expr):
    """Pick one of ``choices`` into variable ``name`` (see ``select``)."""

    name: str | None
    choices: tuple
    temperature: float = 0.0
    method: str = TOKEN_LENGTH_NORMALIZED


def _as_expr(x: Any) -> Expr:
    if isinstance(x, Expr):
        return x
    if isinstance(x, str):
        return Text(x)
    raise ProgramError(f"cannot add a {type(x).__name__} to a program; add a str, gen(...), select(...) or a role")


def _flatten(x: Expr) -> list:
    return list(x.items) if isinstance(x, ExprList) else [x]


_UNSUPPORTED_IF_SET = ("stop_regex", "logprob_start_len", "top_logprobs_num", "return_text_in_logprobs")


def gen(
    name: str | None = None,
    max_tokens: int | None = None,
    min_tokens: int | None = None,
    n: int | None = None,
    stop: str | Sequence[str] | None = None,
    stop_token_ids: Sequence[int] | None = None,
    stop_regex: Any = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    min_p: float | None = None,
    frequency_penalty: float | None = None,
    presence_penalty: float | None = None,
    ignore_eos: bool | None = None,
    return_logprob: bool | None = None,
    logprob_start_len: int | None = None,
    top_logprobs_num: int | None = None,
    return_text_in_logprobs: bool | None = None,
    dtype: Any = None,
    choices: Sequence[str] | None = None,
    choices_method: Any = None,
    regex: str | None = None,
    json_schema: Any = None,
    *,
    schema: Any = None,
    seed: int | None = None,
) -> Expr:
    """Generate into variable ``name`` (SGLang's ``gen`` signature, plus ``schema`` and ``seed``).

    At most one of ``regex``, ``schema``, ``json_schema``, ``dtype``, ``choices`` constrains the
    output. The value read back with ``s[name]``: a pydantic instance for ``schema=Model``, a dict
    (or list...) for ``schema={json schema}``, the JSON text for SGLang's ``json_schema=``, the
    chosen str for ``choices`` (which turns this into ``select``), else the generated str.
    Unset sampling options come from ``f.run(...)``'s defaults.

    Raises ``ProgramError`` for options structgen does not support when they are set to a
    non-default value: ``n`` > 1, ``min_tokens`` > 0, ``stop_token_ids``, ``stop_regex``,
    ``frequency_penalty`` / ``presence_penalty`` != 0, ``logprob_start_len``,
    ``top_logprobs_num``, ``return_text_in_logprobs``.
    """
    if choices is not None:
        return select(name, choices, 0.0 if temperature is None else temperature,
                      TOKEN_LENGTH_NORMALIZED if choices_method is None else choices_method)
    _reject_unsupported(locals())
    constraint, parse = _constraint_of(regex=regex, schema=schema, json_schema=json_schema, dtype=dtype)
    options = {"max_tokens": max_tokens, "stop": stop, "temperature": temperature, "top_p": top_p, "top_k": top_k,
               "min_p": min_p, "ignore_eos": ignore_eos, "seed": seed}
    sampling = {k: v for k, v in options.items() if v is not None}
    if "top_k" in sampling and sampling["top_k"] < 0:
        sampling["top_k"] = 0  # SGLang spells "no top-k" as -1
    return Gen(_check_name(name), sampling, constraint, parse, bool(return_logprob))


def gen_int(name: str | None = None, max_tokens: int | None = None, **kwargs: Any) -> Expr:
    """``gen`` constrained to an integer literal (SGLang's ``gen_int``); the value is a str."""
    return gen(name, max_tokens, dtype=int, **kwargs)


def gen_string(name: str | None = None, max_tokens: int | None = None, **kwargs: Any) -> Expr:
    """``gen`` constrained to a double-quoted string literal (SGLang's ``gen_string``)."""
    return gen(name, max_tokens, dtype=str, **kwargs)


def _reject_unsupported(args: dict) -> None:
    bad = [k for k in _UNSUPPORTED_IF_SET if args[k] is not None]
    if args["n"] not in (None, 1):
        bad.append("n")
    if args["min_tokens"] not in (None, 0):
        bad.append("min_tokens")
    if args["stop_token_ids"]:
        bad.append("stop_token_ids")
    bad += [k for k in ("frequency_penalty", "presence_penalty") if args[k] not in (None, 0, 0.0)]
    if bad:
        raise ProgramError(
            f"gen() option(s) {', '.join(bad)} are not supported by structgen; remove them "
            "(use stop=[...] strings instead of stop_token_ids, and a regex instead of stop_regex)"
        )


def _constraint_of(*, regex, schema, json_schema, dtype) -> tuple[Constraint | None, str]:
    given = [k for k, v in {"regex": regex, "schema": schema, "json_schema": json_schema, "dtype": dtype}.items()
             if v is not None]
    if len(given) > 1:
        raise ProgramError(f"gen() takes at most one of regex=, schema=, json_schema=, dtype=; got {given}")
    if regex is not None:
        return Regex(regex), "text"
    if json_schema is not None:
        return (json_schema if isinstance(json_schema, JsonSchema) else JsonSchema(json_schema)), "text"
    if dtype is not None:
        key = dtype if isinstance(dtype, str) else getattr(dtype, "__name__", repr(dtype))
        if key not in _DTYPE_REGEX:
            raise ProgramError(f"gen(dtype={dtype!r}) is not supported; use int, float, bool or str")
        return Regex(_DTYPE_REGEX[key]), "text"
    if schema is None:
        return None, "text"
    constraint = as_constraint(schema)
    if isinstance(constraint, (Regex, Choice)):
        return constraint, "text"
    return constraint, ("json" if isinstance(constraint, JsonSchema) else "model")


def select(
    name: str | None = None,
    choices: Sequence[str] | None = None,
    temperature: float = 0.0,
    choices_method: Any = TOKEN_LENGTH_NORMALIZED,
) -> Select:
    """Pick one of ``choices`` into variable ``name`` and append it to the text.

    choices_method: ``"token_length_normalized"`` (default): every choice is scored in one
    batched prefill (``Runtime.score``) and the highest mean log-probability per token wins;
    ``"greedy_token_selection"``: constrained decoding with a ``Choice`` constraint (token by
    token, greedy unless ``temperature`` > 0). Backends without ``score`` (``RemoteRuntime``) use
    constrained decoding. With ``temperature`` > 0 the scored method samples a choice with
    probability proportional to ``exp(mean_logprob / temperature)``.
    """
    if choices is None:
        raise ProgramError("select() needs choices=[...]")
    options = Choice(list(choices)).options  # validates: non-empty list of str
    method = getattr(choices_method, "__name__", None) or _method_name(choices_method)
    if method not in CHOICES_METHODS:
        raise ProgramError(f"select(choices_method={choices_method!r}) is not supported; use one of {CHOICES_METHODS}")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ProgramError(f"select(temperature=...) must be a number >= 0, got {temperature!r}")
    return Select(_check_name(name), options, float(temperature), method)


def _method_name(m: Any) -> str:
    if isinstance(m, str):
        return m
    cls = type(m).__name__  # SGLang's method objects: TokenLengthNormalized, GreedyTokenSelection, ...
    return "".join("_" + c.lower() if c.isupper() else c for c in cls).lstrip("_")


def _check_name(name: Any) -> str | None:
    if name is not None and not isinstance(name, str):
        raise ProgramError(f"a variable name must be a str, got {name!r}")
    return name


def _role(role: str, expr: Any = None) -> ExprList:
    inner = [] if expr is None else _flatten(_as_expr(expr))
    return ExprList([RoleBegin(role), *inner, RoleEnd(role)])


def system(expr: Any = None) -> ExprList:
    """A system turn holding ``expr`` (text and/or expressions), in the model's chat template."""
    return _role("system", expr)


def user(expr: Any = None) -> ExprList:
    """A user turn holding ``expr``, in the model's chat template."""
    return _role("user", expr)


def assistant(expr: Any = None) -> ExprList:
    """An assistant turn: ``assistant(gen("a"))`` opens the turn, generates, and closes it."""
    return _role("assistant", expr)


def system_begin() -> RoleBegin:
    return RoleBegin("system")


def system_end() -> RoleEnd:
    return RoleEnd("system")


def user_begin() -> RoleBegin:
    return RoleBegin("user")


def user_end() -> RoleEnd:
    return RoleEnd("user")


def assistant_begin() -> RoleBegin:
    return RoleBegin("assistant")


def assistant_end() -> RoleEnd:
    return RoleEnd("assistant")


def image(*_args: Any, **_kwargs: Any) -> Expr:
    """Images are not supported: structgen serves text-only models."""
    raise ProgramError("image() is not supported: structgen runs text-only models")


def video(*_args: Any, **_kwargs: Any) -> Expr:
    """Videos are not supported: structgen serves text-only models."""
    raise ProgramError("video() is not supported: structgen runs text-only models")
