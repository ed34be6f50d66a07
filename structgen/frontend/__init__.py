"""Structured-generation programs: ``@function``, ``gen``, ``select``, ``fork``, roles.

See ``docs/programs.md``. The names match SGLang's frontend language, so
``import structgen as sgl`` runs SGLang programs.
"""

from .backends import Backend, RuntimeBackend, get_default_backend, set_default_backend
from .chat_template import ChatTemplate
from .primitives import (
    GREEDY_TOKEN_SELECTION,
    TOKEN_LENGTH_NORMALIZED,
    assistant,
    assistant_begin,
    assistant_end,
    gen,
    gen_int,
    gen_string,
    image,
    select,
    system,
    system_begin,
    system_end,
    user,
    user_begin,
    user_end,
    video,
)
from .program import Program, function
from .remote import RemoteRuntime
from .state import ForkGroup, ProgramState

# SGLang spells the choices methods as objects of these names.
token_length_normalized = TOKEN_LENGTH_NORMALIZED
greedy_token_selection = GREEDY_TOKEN_SELECTION

__all__ = [
    "Backend", "ChatTemplate", "ForkGroup", "Program", "ProgramState", "RemoteRuntime", "RuntimeBackend",
    "assistant", "assistant_begin", "assistant_end", "function", "gen", "gen_int", "gen_string", "get_default_backend",
    "greedy_token_selection", "image", "select", "set_default_backend", "system", "system_begin",
    "system_end", "token_length_normalized", "user", "user_begin", "user_end", "video",
]
