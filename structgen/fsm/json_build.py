"""The schema walker: refs, allOf gathering, anyOf/oneOf distribution, not/if, drops.

``Builder.compile(schema, ptr)`` returns a ``Result``: the expression and whether it is
*complement-safe* ("complete"): it accepts every U-text (``json_lex``) of every value it
accepts. Objects whose members can come in more than one order are the incomplete case under
``property_order="schema"`` (only the schema order is generated; ``"any"`` has every order), as
are ``multipleOf`` (plain notation only) and recursion cut off at the depth limit. ``not``,
``if`` and overlapping ``oneOf`` complement languages, which is only exact for complete ones;
otherwise they raise ``SchemaError``. By default ``enum``/``const`` strings are generated only
in ``json.dumps``'s spellings and integers as plain digits (both incomplete); whatever is
complemented is compiled with ``full_spellings`` (``compile_full``), where they accept every
U-spelling, so complements exclude every spelling of what they negate.

Whitespace depends on the nesting level a value starts at (a line break indents it), so the
Builder compiles for one level at a time (``level``; ``deeper()`` for members and items) and
memoises per level; complements are taken at the level of what they negate.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import threading
from typing import Any, NamedTuple

from ..errors import CompileLimitError, SchemaError
from .json_lex import Lex
from .json_merge import (
    ANNOTATIONS,
    Atom,
    absent,
    merge,
    negate_schema,
    negated_required,
)
from .json_numbers import Bounds, NumberBuilder
from .json_objects import ContainerBuilder
from .json_refs import Refs
from .json_strings import StringBuilder
from .rx import ExprPool

MAX_ALTERNATIVES = 64
MAX_NESTING = 1000  # nested compiles (subschemas inside subschemas), a bound on work and stack
MAX_REF_NESTING = 100  # refs open at once (any targets); deeper ones count as recursion cut off
UNSUPPORTED = ("unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$recursiveRef")


class Result(NamedTuple):
    expr: int
    complete: bool


class Branch(NamedTuple):
    """One alternative of a disjunctive normal form: atoms to merge, results to intersect, and
    the ref targets that were open (once per opening) while the atoms were gathered: compiling
    the atoms reopens them, so recursion through ``anyOf``/``allOf`` of ``$ref`` counts towards
    ``max_recursion_depth`` like recursion through a property does."""

    atoms: tuple
    results: tuple
    refs: tuple = ()


class Kit(NamedTuple):
    """The schema-independent pieces a ``Builder`` starts from, all in one pool."""

    lex: Lex
    nums: NumberBuilder
    strs: StringBuilder
    cont: ContainerBuilder
    anyv: int
    formats: dict[str, int]  # format name -> encoded string content (json_types.format_content)


def _build_kit(pool: ExprPool, whitespace: str) -> Kit:
    lex = Lex(pool, whitespace)
    return Kit(lex, NumberBuilder(lex), StringBuilder(lex), ContainerBuilder(lex), lex.any_value(), {})


class _Template:
    """A pool holding the kit, built once per process and whitespace policy (``_template``).
    Formats are added the first time a schema names one; the pool only grows (ids keep their
    meaning) and is read and grown under ``lock`` only."""

    def __init__(self, whitespace: str):
        self.lock = threading.Lock()
        self.pool = ExprPool()
        self.kit = _build_kit(self.pool, whitespace)
        self.kit.strs.prepare_ascii()
        for integer, digits_only in ((False, False), (True, False), (True, True)):  # unbounded numbers
            self.kit.nums.number(Bounds(), integer, digits_only)

    def copy_into(self, pool: ExprPool, formats: set[str]) -> Kit | None:
        """The kit in fresh ``pool`` (``ExprPool.adopt``), holding the supported ``formats``;
        None when the template is larger than ``pool.max_nodes``."""
        from .json_formats import FORMATS
        from .json_types import format_content

        kit = self.kit
        with self.lock:
            for fmt in sorted(formats):
                if fmt in FORMATS and fmt not in kit.formats:
                    kit.formats[fmt] = format_content(kit.strs, fmt)
            if len(self.pool) > pool.max_nodes:
                return None
            pool.adopt(self.pool)
            lex = _rebound(kit.lex, pool, None)
            return Kit(lex, _rebound(kit.nums, pool, lex), _rebound(kit.strs, pool, lex),
                       _rebound(kit.cont, pool, lex), kit.anyv, dict(kit.formats))


@functools.cache
def _template(whitespace: str) -> _Template:
    return _Template(whitespace)


def _kit_for(pool: ExprPool, whitespace: str, schema: Any) -> Kit:
    """The kit in ``pool``: a fresh pool (one per compiled constraint, the usual case) becomes a
    copy of the template, holding the formats ``schema`` names, which costs a table copy instead
    of rebuilding the lexical pieces and formats (milliseconds per schema); any other pool gets
    the kit built in place."""
    if pool.is_fresh():
        kit = _template(whitespace).copy_into(pool, _format_names(schema))
        if kit is not None:
            return kit
    return _build_kit(pool, whitespace)


def _format_names(schema: Any) -> set[str]:
    """Every string value of a ``format`` key anywhere in ``schema`` (a superset of the formats
    its subschemas use)."""
    out, stack = set(), [schema]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            fmt = x.get("format")
            if isinstance(fmt, str):
                out.add(fmt)
            stack.extend(v for v in x.values() if isinstance(v, (dict, list)))
        elif isinstance(x, list):
            stack.extend(v for v in x if isinstance(v, (dict, list)))
    return out


def _rebound(obj: Any, pool: ExprPool, lex: Lex | None) -> Any:
    """A shallow copy of a kit object moved to ``pool`` (ids are equal there after ``adopt``):
    its pool and Lex references replaced, its memo dicts copied so the template stays as is."""
    new = copy.copy(obj)
    for name, value in vars(obj).items():
        if isinstance(value, ExprPool):
            setattr(new, name, pool)
        elif isinstance(value, Lex):
            setattr(new, name, lex)
        elif isinstance(value, dict):
            setattr(new, name, dict(value))
    return new


class Builder:
    def __init__(self, pool: ExprPool, refs: Refs, *, whitespace: str, strict: bool, max_depth: int,
                 property_order: str = "schema"):
        self.pool = pool
        self.property_order = property_order
        self.refs = refs
        self.strict = strict
        self.max_depth = max_depth
        kit = _kit_for(pool, whitespace, refs.root)
        self.lex, self.nums, self.strs, self.cont = kit.lex, kit.nums, kit.strs, kit.cont
        self.level = 0  # nesting level of the value being compiled (0: the document)
        self.format_cache: dict[str, int] = kit.formats
        self.dropped: list[tuple[str, str]] = []
        self._ref_depth: dict[str, int] = {}
        self._open_refs = 0
        self._nesting = 0
        self._reach: dict[int, frozenset] = {}
        self._memo: dict[tuple, tuple] = {}
        self._wrappers: dict[tuple, dict] = {}
        self._keep: list = []  # nodes whose id keys a cache entry stay alive
        self._ref_memo: dict[tuple[str, int, bool, int], Result] = {}
        self.full_spellings = False  # enum/const strings: every U-spelling (True) or json.dumps's

    @property
    def anyv(self) -> int:
        """Any JSON value at the current level."""
        return self.lex.any_value(self.level)

    @contextlib.contextmanager
    def deeper(self):
        """Compile one nesting level down (an object's member values, an array's items)."""
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1

    # ------------------------------------------------------------------ errors
    def drop(self, keyword: str, ptr: str, why: str) -> None:
        """An unenforceable keyword: error when strict, else remembered for the one warning."""
        if self.strict:
            raise SchemaError(why, keyword=keyword, pointer=ptr)
        self.dropped.append((keyword, ptr))

    # ------------------------------------------------------------------ entry points
    def compile(self, schema: Any, ptr: str) -> Result:
        """Result for one schema located at JSON pointer ``ptr``."""
        if schema is True or schema == {}:
            return Result(self.anyv, True)
        if schema is False:
            return Result(self.pool.nothing, True)
        if not isinstance(schema, dict):
            raise SchemaError("a schema must be an object or a boolean", pointer=ptr)
        if "$ref" in schema and (self.refs.draft <= 7 or all(k in ANNOTATIONS or k == "$ref" for k in schema)):
            return self.compile_ref(schema["$ref"], ptr + "/$ref")
        key = (id(schema), self._depths_seen_by(schema), self.full_spellings, self.level)
        found = self._memo.get(key)
        if found is not None:
            return found[1]
        self._nesting += 1
        try:
            if self._nesting > MAX_NESTING:
                raise CompileLimitError(f"schemas nest more than {MAX_NESTING} levels deep at {ptr or '/'}")
            results = [self.compile_branch(br, ptr) for br in self.expand(schema, ptr)]
        finally:
            self._nesting -= 1
        out = Result(self.pool.alt_of(r.expr for r in results), all(r.complete for r in results))
        self._memo[key] = (schema, out)  # holding ``schema`` keeps its id from being reused
        return out

    def compile_full(self, schema: Any, ptr: str) -> Result:
        """``compile`` with every U-spelling of enum/const strings, as complements need: by
        default those strings are generated only as ``json.dumps`` prints them (raw or
        ASCII-escaped), a language that is not complement-safe."""
        saved = self.full_spellings
        self.full_spellings = True
        try:
            return self.compile(schema, ptr)
        finally:
            self.full_spellings = saved

    def compile_all(self, schemas: list[tuple[Any, str]]) -> Result:
        """Result for the conjunction of ``schemas`` (merged like ``allOf``)."""
        real = [(s, p) for s, p in schemas if s is not True and s != {}]
        if not real:
            return Result(self.anyv, True)
        if len(real) == 1:
            return self.compile(*real[0])
        if any(s is False for s, _ in real):
            return Result(self.pool.nothing, True)
        ids = tuple(id(s) for s, _ in real)
        wrapper = self._wrappers.get(ids)
        if wrapper is None:  # one wrapper per combination, so compile's memo recognises it
            wrapper = self._wrappers[ids] = {"allOf": [s for s, _ in real]}
        return self.compile(wrapper, real[0][1])

    def compile_ref(self, ref: Any, ptr: str) -> Result:
        target, tptr = self.refs.resolve(ref, ptr)
        depth = self._ref_depth.get(tptr, 0)
        if depth > self.max_depth or self._open_refs >= MAX_REF_NESTING:
            return Result(self.pool.nothing, False)
        key = (tptr, depth, self.full_spellings, self.level)
        found = self._ref_memo.get(key)
        if found is None:
            found = self._inside(tptr, depth, lambda: self.compile(target, tptr))
            self._ref_memo[key] = found
        return found

    # ------------------------------------------------------------------ gathering
    def expand(self, schema: Any, ptr: str) -> list[Branch]:
        """Disjunctive normal form of ``schema``: a list of branches (their union)."""
        if schema is True or schema == {}:
            return [Branch((), ())]
        if schema is False:
            return [Branch((), (Result(self.pool.nothing, True),))]
        if not isinstance(schema, dict):
            raise SchemaError("a schema must be an object or a boolean", pointer=ptr)
        self._check_keywords(schema, ptr)
        if "$ref" in schema and self.refs.draft <= 7:  # siblings ignored; merged like allOf
            return self._expand_ref(schema["$ref"], ptr + "/$ref")
        branches = [Branch((Atom(schema, ptr),), ())]
        if "$ref" in schema:
            branches = self._product(branches, self._expand_ref(schema["$ref"], ptr + "/$ref"), ptr, None)
        for i, sub in enumerate(schema.get("allOf", [])):
            branches = self._product(branches, self.expand(sub, f"{ptr}/allOf/{i}"), ptr, None)
        for kind, alts, where in self._disjunctions(schema, ptr):
            options: list[Branch] = []
            for i, sub in enumerate(alts):
                options.extend(self.expand(sub, f"{where}/{i}"))
            if kind == "oneOf":
                from .json_oneof import one_of

                fixed = one_of(self, alts, where)
                if isinstance(fixed, list):  # overlapping branches, xor with positive keywords
                    options = [br for i, sub in enumerate(fixed) for br in self.expand(sub, f"{where}/{i}")]
                elif fixed is not None:  # overlapping branches: exact xor by complement
                    options = [Branch((), (fixed,))]
            fallback = None
            if len(options) * len(branches) > MAX_ALTERNATIVES:
                fallback = Result(self.pool.alt_of(self.compile_branch(o, where).expr for o in options), False)
            branches = self._product(branches, options, where, fallback)
        return branches

    def _expand_ref(self, ref: Any, ptr: str) -> list[Branch]:
        target, tptr = self.refs.resolve(ref, ptr)
        depth = self._ref_depth.get(tptr, 0)
        if depth > self.max_depth or self._open_refs >= MAX_REF_NESTING:
            return [Branch((), (Result(self.pool.nothing, False),))]
        branches = self._inside(tptr, depth, lambda: self.expand(target, tptr))
        return [Branch(b.atoms, b.results, b.refs + (tptr,)) for b in branches]

    def _inside(self, tptr: str, depth: int, work):
        """Run ``work`` with ref target ``tptr`` open one level deeper."""
        self._ref_depth[tptr] = depth + 1
        self._open_refs += 1
        try:
            return work()
        finally:
            self._ref_depth[tptr] = depth
            self._open_refs -= 1

    # ------------------------------------------------------------------ memo keys
    def _depths_seen_by(self, schema: Any) -> tuple:
        """Open-ref depths that compiling ``schema`` can observe: those of the ref targets
        reachable from it. Equal keys give equal results, so the memo is exact."""
        reach = self._reachable(schema)
        return tuple(sorted((t, d) for t, d in self._ref_depth.items() if d and t in reach))

    def _reachable(self, node: Any) -> frozenset:
        """Ref targets (pointers) reachable from ``node`` through any chain of local refs."""
        found = self._reach.get(id(node))
        if found is not None:
            return found
        seen: set[str] = set()
        todo = list(self._direct_refs(node))
        while todo:
            t, target = todo.pop()
            if t in seen:
                continue
            seen.add(t)
            cached = self._reach.get(id(target))
            if cached is not None:
                seen |= cached
                continue
            todo.extend(self._direct_refs(target))
        out = frozenset(seen)
        self._reach[id(node)] = out
        self._keep.append(node)
        return out

    def _direct_refs(self, node: Any) -> list:
        """(pointer, target) of every resolvable $ref written inside ``node``."""
        out, stack = [], [node]
        while stack:
            x = stack.pop()
            if isinstance(x, dict):
                ref = x.get("$ref")
                if isinstance(ref, str):
                    try:
                        target, tptr = self.refs.resolve(ref, "")
                        out.append((tptr, target))
                    except SchemaError:
                        pass
                stack.extend(v for k, v in x.items() if k not in ("enum", "const", "default", "examples"))
            elif isinstance(x, list):
                stack.extend(x)
        return out

    def compile_branch(self, br: Branch, ptr: str) -> Result:
        from .json_types import build_flat

        saved = dict(self._ref_depth)
        for t in br.refs:
            self._ref_depth[t] = self._ref_depth.get(t, 0) + 1
        self._open_refs += len(br.refs)
        try:
            r = build_flat(self, merge(list(br.atoms)), ptr)
        finally:
            self._ref_depth = saved
            self._open_refs -= len(br.refs)
        exprs = [r.expr] + [x.expr for x in br.results]
        return Result(self.pool.and_(*exprs), r.complete and all(x.complete for x in br.results))

    def _product(self, left: list[Branch], right: list[Branch], ptr: str, fallback) -> list[Branch]:
        if fallback is not None:
            return [Branch(b.atoms, b.results + (fallback,), b.refs) for b in left]
        return [Branch(a.atoms + b.atoms, a.results + b.results, a.refs + b.refs) for a in left for b in right]

    def _disjunctions(self, s: dict, ptr: str):
        """anyOf / oneOf / dependency keywords as (kind, alternatives, pointer)."""
        for kind in ("anyOf", "oneOf"):
            if kind in s:
                if not isinstance(s[kind], list) or not s[kind]:
                    raise SchemaError(f"{kind} must be a non-empty array", keyword=kind, pointer=ptr)
                yield kind, s[kind], f"{ptr}/{kind}"
        rewritten = negated_required(s.get("not"))
        if rewritten is not None:
            yield "anyOf", rewritten, f"{ptr}/not"
        elif negate_schema(s.get("not")) is not None:
            yield "anyOf", negate_schema(s["not"])["anyOf"], f"{ptr}/not"
        if "if" in s and ("then" in s or "else" in s) and negate_schema(s["if"]) is not None:
            yes = {"allOf": [s["if"], s.get("then", True)]}
            no = {"allOf": [negate_schema(s["if"]), s.get("else", True)]}
            yield "anyOf", [yes, no], f"{ptr}/if"
        deps = dict(s.get("dependentRequired", {}))
        schemas = dict(s.get("dependentSchemas", {}))
        for k, v in s.get("dependencies", {}).items():
            (deps if isinstance(v, list) else schemas)[k] = v
        for k, v in deps.items():
            if v:
                yield "anyOf", [absent(k), {"required": [k, *v]}], f"{ptr}/dependentRequired/{k}"
        for k, v in schemas.items():
            yield "anyOf", [absent(k), {"allOf": [{"required": [k]}, v]}], f"{ptr}/dependentSchemas/{k}"

    def _check_keywords(self, s: dict, ptr: str) -> None:
        for kw in UNSUPPORTED:
            if kw in s and not (kw.startswith("unevaluated") and s[kw] is True):
                self.drop(kw, ptr, f"{kw} is not supported")
        if self.refs.draft <= 7:  # content keywords may assert before 2019-09
            for kw in ("contentMediaType", "contentEncoding"):
                if kw in s:
                    self.drop(kw, ptr, f"{kw} is not enforced (it is an annotation from draft 2019-09 on)")

    # ------------------------------------------------------------------ helpers used by json_types
    def negate(self, r: Result, keyword: str, ptr: str) -> int:
        """JSON values at the current level outside ``r``; needs a complete ``r``."""
        if not r.complete:
            self.drop(keyword, ptr, f"{keyword} needs a complement of a schema whose language is not "
                      "complement-safe (objects with several properties in one order, multipleOf, "
                      "or recursion cut off)")
            return self.anyv
        if r.expr == self.anyv:
            return self.pool.nothing
        if r.expr == self.pool.nothing:
            return self.anyv
        return self.pool.diff(self.anyv, r.expr)

    def key_json(self, key: str) -> bytes:
        return json.dumps(key, ensure_ascii=False).encode("utf-8")
