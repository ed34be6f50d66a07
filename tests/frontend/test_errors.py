"""Program errors are typed and point at the program line that caused them."""

from __future__ import annotations

import inspect

import pytest
from fake_runtime import FakeRuntime

import structgen.frontend as sg
from structgen.errors import GenerationError, ProgramError, RegexError


def _line_of(fn, marker: str) -> str:
    lines, start = inspect.getsourcelines(fn)
    for i, text in enumerate(lines):
        if marker in text:
            return f"{__file__}:{start + i}"
    raise AssertionError(marker)


def test_unknown_variable_names_the_line_and_known_variables(fake_rt):
    @sg.function
    def f(s):
        s += sg.gen("answer")
        s["answr"]  # typo

    with pytest.raises(ProgramError) as exc:
        f.run()
    assert _line_of(f.func, "# typo") in str(exc.value)
    assert "'answr'" in str(exc.value) and "answer" in str(exc.value)


def test_adding_after_return_is_an_error(fake_rt):
    @sg.function
    def f(s):
        s += "x"

    state = f.run()
    with pytest.raises(ProgramError, match="after it returned") as exc:
        state += "more"  # after return
    assert f"{__file__}:" in str(exc.value)


def test_constraint_error_keeps_its_type_and_names_the_line():
    def reject(constraint):
        if constraint is not None:
            return RegexError("lookahead is not supported", construct="lookahead")

    rt = FakeRuntime(reject=reject)

    @sg.function
    def f(s):
        s += "a"
        s += sg.gen("x", regex=r"(?=a)a")  # bad regex
        s += "b"

    with pytest.raises(RegexError) as exc:
        f.run(runtime=rt)
    assert exc.value.construct == "lookahead"
    assert _line_of(f.func, "# bad regex") in str(exc.value)


def test_error_surfaces_on_read_inside_the_program():
    rt = FakeRuntime(reject=lambda c: RegexError("bad") if c is not None else None)
    seen = []

    @sg.function
    def f(s):
        s += sg.gen("x", regex="a")
        try:
            s["x"]
        except RegexError as e:
            seen.append(e)
            raise

    with pytest.raises(RegexError):
        f.run(runtime=rt)
    assert seen


def test_schema_output_that_does_not_parse_is_a_generation_error():
    rt = FakeRuntime(responder=lambda p, c, r: '{"a": ')

    @sg.function
    def f(s):
        s += sg.gen("obj", schema={"type": "object"})

    with pytest.raises(GenerationError, match="not valid for its schema"):
        f.run(runtime=rt)


@pytest.mark.parametrize("kwargs, name", [
    ({"n": 2}, "n"), ({"min_tokens": 3}, "min_tokens"), ({"stop_token_ids": [1]}, "stop_token_ids"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"), ({"stop_regex": "x"}, "stop_regex"),
    ({"top_logprobs_num": 2}, "top_logprobs_num"),
])
def test_unsupported_gen_options_are_rejected(kwargs, name):
    with pytest.raises(ProgramError, match=name):
        sg.gen("x", **kwargs)


def test_conflicting_constraints_rejected():
    with pytest.raises(ProgramError, match="at most one"):
        sg.gen("x", regex="a", schema={"type": "string"})


def test_unsupported_select_method_rejected():
    with pytest.raises(ProgramError, match="choices_method"):
        sg.select("x", ["a"], choices_method="unconditional_likelihood_normalized")


def test_nested_roles_rejected(fake_rt):
    @sg.function
    def f(s):
        s += sg.user_begin()
        s += sg.assistant("x")  # nested

    with pytest.raises(ProgramError, match="inside the open user turn") as exc:
        f.run()
    assert _line_of(f.func, "# nested") in str(exc.value)


def test_adding_an_unsupported_value(fake_rt):
    @sg.function
    def f(s):
        s += object()

    with pytest.raises(ProgramError, match="cannot add a object"):
        f.run()


def test_program_needs_a_state_parameter():
    with pytest.raises(ProgramError, match="first parameter"):
        sg.function(lambda: None)


def test_streaming_program_error_is_raised_by_text_iter(fake_rt):
    @sg.function
    def f(s):
        s += "start "
        s["missing"]

    state = f.run(stream=True)
    with pytest.raises(ProgramError, match="no variable 'missing'"):
        list(state.text_iter())
