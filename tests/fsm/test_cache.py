"""Compile cache: memory LRU hits, disk reloads in a fresh cache/process, keys, corrupt entries."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor

from structgen.constraints import Choice, Regex
from structgen.fsm.cache import FSMCache, cache_key
from structgen.fsm.index import compile_token_fsm
from structgen.fsm.vocabulary import Vocabulary


def _fail():
    raise AssertionError("should have been served from the cache")


def test_memory_hit_returns_the_same_object(toy_vocab):
    cache = FSMCache(None)
    a = compile_token_fsm(Regex("[a-z]+"), toy_vocab, cache=cache)
    b = compile_token_fsm(Regex("[a-z]+"), toy_vocab, cache=cache)
    c = compile_token_fsm(Regex("[a-y]+"), toy_vocab, cache=cache)
    assert a is b and c is not a


def test_lru_evicts_least_recently_used(toy_vocab):
    cache = FSMCache(None, max_entries=2)
    opts = {}
    first = cache.get_or_build(Choice(["a"]), toy_vocab, opts, lambda: "A")
    cache.get_or_build(Choice(["b"]), toy_vocab, opts, lambda: "B")
    assert cache.get_or_build(Choice(["a"]), toy_vocab, opts, _fail) == first  # refreshes "a"
    cache.get_or_build(Choice(["c"]), toy_vocab, opts, lambda: "C")  # evicts "b"
    assert cache.get_or_build(Choice(["b"]), toy_vocab, opts, lambda: "B2") == "B2"


def test_disk_entry_serves_a_fresh_cache(tmp_path, toy_vocab):
    fsm = compile_token_fsm(Regex(r'\{"a": [0-9]+\}'), toy_vocab, cache=FSMCache(tmp_path))
    fresh = FSMCache(tmp_path)
    key = cache_key(Regex(r'\{"a": [0-9]+\}'), toy_vocab,
                    {"max_states": 100_000, "max_dfa_states": 200_000, "max_nodes": 2_000_000})
    assert fresh.path_of(key).exists()
    again = fresh.get_or_build(Regex(r'\{"a": [0-9]+\}'), toy_vocab,
                               {"max_states": 100_000, "max_dfa_states": 200_000, "max_nodes": 2_000_000}, _fail)
    assert again is not fsm and again.vocab is toy_vocab
    s = again.initial_state
    assert again.allowed_tokens(s).tolist() == fsm.allowed_tokens(s).tolist()
    assert again.matches('{"a": 12}') and not again.matches('{"a": }')


def test_key_depends_on_constraint_options_and_vocabulary(toy_vocab):
    other = Vocabulary.from_tokens([b"a", b"b"], eos_token_ids=[2])
    base = cache_key(Regex("a"), toy_vocab, {"max_states": 1})
    assert base == cache_key(Regex("a"), toy_vocab, {"max_states": 1})
    assert len({base, cache_key(Regex("b"), toy_vocab, {"max_states": 1}),
                cache_key(Regex("a"), toy_vocab, {"max_states": 2}), cache_key(Regex("a"), other, {"max_states": 1})}) == 4


def test_corrupt_entry_is_rebuilt(tmp_path, toy_vocab):
    cache = FSMCache(tmp_path)
    opts = {"max_states": 100_000, "max_dfa_states": 200_000, "max_nodes": 2_000_000}
    path = cache.path_of(cache_key(Regex("x+"), toy_vocab, opts))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a pickle")
    fsm = compile_token_fsm(Regex("x+"), toy_vocab, cache=cache)
    assert fsm.matches("xxx")
    assert FSMCache(tmp_path).get_or_build(Regex("x+"), toy_vocab, opts, _fail).matches("x")


def _compile_in_child(directory: str) -> bool:
    vocab = Vocabulary.byte_level()
    fsm = compile_token_fsm(Regex(r"[0-9]{1,5}-[a-z]+"), vocab, cache=FSMCache(directory))
    return fsm.matches("123-abc")


def test_concurrent_processes_share_one_entry(tmp_path):
    with ProcessPoolExecutor(2) as ex:
        assert all(ex.map(_compile_in_child, [str(tmp_path)] * 4))
    entries = list(tmp_path.rglob("*.pkl"))
    assert len(entries) == 1 and not list(tmp_path.rglob(".tmp-*"))


def test_default_cache_second_process_reads_the_file(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from structgen.constraints import Regex
        from structgen.fsm.index import compile_token_fsm
        from structgen.fsm.vocabulary import Vocabulary
        import structgen.fsm.index as index
        if sys.argv[1] == "second":  # compiling again would fail: only the disk entry can serve it
            import structgen.fsm as fsm_pkg
            fsm_pkg.compile_bytes = None
        fsm = compile_token_fsm(Regex("(yes|no)!"), Vocabulary.byte_level())
        print(fsm.matches("yes!"))
        """
    )
    env = dict(os.environ, STRUCTGEN_CACHE_DIR=str(tmp_path))
    for phase in ("first", "second"):
        out = subprocess.run([sys.executable, "-c", script, phase], env=env, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "True"
    assert list((tmp_path / "fsm").rglob("*.pkl"))
