"""``load_model``: a ``ModelRunner`` from the embedded default, a folder, a GGUF file or a hub id.

Sources, in the order ``model_path`` is interpreted:

* ``None`` — the embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF). The first use
  dequantises it through transformers' GGUF reader (~15 s) and caches the result as safetensors
  under ``assets.cache_dir()/models/<name>-converted/``; later loads read that (~1 s).
* a folder holding ``config.json`` and ``*.safetensors`` — read with ``safetensors`` straight into
  our weights (no transformers model is built).
* a ``.gguf`` file — converted once like the default model, cached next to it.
* ``"org/name"`` — a Hugging Face hub id, through ``huggingface_hub.snapshot_download`` (the local
  hub cache first, then the network).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from .. import assets
from ..errors import ModelLoadError
from .model_runner import ModelRunner
from .models.config import ModelConfig
from .models.decoder import DecoderModel
from .models.quant import Int4Weight, int4_supported
from .models.weights import build_weights

log = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}  # fmt: skip
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def load_model(
    model_path: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    tokenizer=None,
    tp_size: int = 1,
    quantization: str = "auto",
) -> ModelRunner:
    """Load a model for ``ModelRunner.forward``.

    ``device="auto"`` picks CUDA when available, else the CPU. ``dtype=None`` (or ``"auto"``) means
    bfloat16 on CUDA and on CPUs that compute bfloat16 natively (AVX512-BF16 / AMX), else float32.
    ``quantization``: ``"auto"`` keeps projection weights that are exactly 4-bit group-quantised
    (a GGUF ``Q4_1`` file, such as the default model) 4-bit when running bfloat16 on the CPU
    (``models/quant.py``; a decode step then reads a quarter of the bytes); ``"none"`` always
    dequantises; ``"int4"`` requires the 4-bit path (``ModelLoadError`` when it cannot be used). ``tokenizer`` overrides the tokenizer found with the
    model; when neither exists ``runner.tokenizer`` is None (a warning is logged).
    ``tp_size > 1`` shards the model over that many ranks of ``torch.distributed`` (one process
    per rank, e.g. under ``torchrun``; see ``parallel.py``); on CUDA rank ``r`` uses ``cuda:r``
    (``LOCAL_RANK`` when set). Every rank must call ``load_model`` with the same arguments.
    Raises ``ModelLoadError`` (missing files, unreachable hub) or ``UnsupportedModelError``.
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    int4 = _want_int4(quantization, dev, dt, tp_size)
    if tp_size > 1:
        from .parallel import init_tensor_parallel, shard_runner

        rank = init_tensor_parallel(tp_size, dev.type)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
            torch.cuda.set_device(dev)
        full = load_model(model_path, device=dev, dtype=dt, tokenizer=tokenizer, quantization="none")
        return shard_runner(full, rank, tp_size)
    if tp_size < 1:
        raise ModelLoadError(f"tp_size must be >= 1, got {tp_size}")
    if model_path is None:
        folder = _convert_gguf(assets.default_model_file(), f"{assets.DEFAULT_MODEL_NAME}-converted")
        tok = tokenizer if tokenizer is not None else assets.load_default_tokenizer()
        return _checked(load_folder(folder, dev, dt, tok, name=assets.DEFAULT_MODEL_NAME, int4=int4), quantization)
    path = Path(model_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        runner = load_folder(_convert_gguf(path, _gguf_cache_name(path)), dev, dt, tokenizer, name=path.stem, int4=int4)
        return _checked(runner, quantization)
    if path.is_dir():
        return _checked(load_folder(path, dev, dt, tokenizer, name=path.name, int4=int4), quantization)
    if not path.exists() and _HUB_ID.match(str(model_path)):
        runner = load_folder(_snapshot(str(model_path)), dev, dt, tokenizer, name=str(model_path), int4=int4)
        return _checked(runner, quantization)
    raise ModelLoadError(
        f"{model_path!s} is neither a folder with config.json + *.safetensors, a .gguf file, "
        "nor a hub id like 'org/name'"
    )


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → cuda when available else cpu; other values as ``torch.device`` understands them."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' requested but no CUDA device is available; use device='cpu'")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/``"auto"`` → bfloat16 on CUDA and on CPUs with native bfloat16 arithmetic, else
    float32; names like ``"bf16"`` accepted."""
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" or cpu_native_bf16() else torch.float32
    if isinstance(dtype, torch.dtype):
        chosen = dtype
    elif str(dtype).lower().removeprefix("torch.") in _DTYPES:
        chosen = _DTYPES[str(dtype).lower().removeprefix("torch.")]
    else:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
    if chosen not in (torch.float32, torch.bfloat16, torch.float16):
        raise ModelLoadError(f"dtype {chosen} is not supported; use float32, bfloat16 or float16")
    return chosen


def cpu_native_bf16() -> bool:
    """True when this CPU computes bfloat16 matmuls natively (oneDNN: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


QUANTIZATIONS = ("auto", "none", "int4")


def _want_int4(quantization: str, device: torch.device, dtype: torch.dtype, tp_size: int) -> bool:
    """Whether to try 4-bit projections (see ``load_model``); ``ModelLoadError`` for a bad request."""
    if quantization not in QUANTIZATIONS:
        raise ModelLoadError(f"unknown quantization {quantization!r}; use one of {', '.join(QUANTIZATIONS)}")
    usable = device.type == "cpu" and dtype == torch.bfloat16 and tp_size == 1 and int4_supported()
    if quantization == "int4" and not usable:
        raise ModelLoadError(
            "quantization='int4' needs device='cpu', dtype='bfloat16', tp_size=1 and a CPU/PyTorch with the "
            "int4 kernel and native bfloat16; use quantization='auto' or 'none'"
        )
    return quantization != "none" and usable


def _checked(runner: ModelRunner, quantization: str) -> ModelRunner:
    """``runner``, after checking that ``quantization="int4"`` really packed the weights."""
    if quantization == "int4" and not isinstance(runner.model.weights.layers[0].w_qkv, Int4Weight):
        raise ModelLoadError(
            f"{runner.name}: quantization='int4' but the weights are not 4-bit group-quantised "
            "(only dequantised GGUF Q4_1 checkpoints are); use quantization='auto' or 'none'"
        )
    return runner


def read_config(folder: Path) -> ModelConfig:
    """The ``ModelConfig`` of a folder's ``config.json`` (``UnsupportedModelError`` if unsupported).

    EOS ids listed in ``generation_config.json`` (Llama 3 chat models end turns there) are added.
    """
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise ModelLoadError(f"{folder} has no config.json; pass a Hugging Face model folder")
    with open(cfg_file, encoding="utf-8") as f:
        config = ModelConfig.from_hf(json.load(f))
    gen_file = folder / "generation_config.json"
    if gen_file.is_file():
        with open(gen_file, encoding="utf-8") as f:
            extra = ModelConfig.eos_ids(json.load(f).get("eos_token_id"))
        eos = config.eos_token_ids + tuple(i for i in extra if i not in config.eos_token_ids)
        config = dataclasses.replace(config, eos_token_ids=eos)
    return config


def load_folder(folder: Path, device: torch.device, dtype: torch.dtype, tokenizer=None, name: str = "",
                int4: bool = False) -> ModelRunner:
    """Build a ``ModelRunner`` from ``config.json`` + ``*.safetensors`` in ``folder`` (``int4``: see
    ``build_weights``)."""
    from safetensors import safe_open

    config = read_config(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{folder} has no *.safetensors weights (other weight formats are not supported)")
    log.info("loading %s (%s, %d file(s)) on %s as %s", name or folder, config.architecture, len(files), device, dtype)
    handles = [safe_open(str(f), framework="pt", device="cpu") for f in files]
    where = {key: h for h in handles for key in h.keys()}  # noqa: SIM118 (safe_open is not a dict)
    weights = build_weights(config, lambda key: where[key].get_tensor(key), set(where), device, dtype, int4=int4)
    if tokenizer is None:
        tokenizer = _folder_tokenizer(folder)
    return ModelRunner(config, DecoderModel(config, weights, device, dtype), tokenizer, name=name)


def _folder_tokenizer(folder: Path):
    if not any((folder / f).exists() for f in _TOKENIZER_FILES):
        log.warning("%s has no tokenizer files; runner.tokenizer is None", folder)
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def _gguf_cache_name(path: Path) -> str:
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]
    return f"{path.stem}-{key}-converted"


def _convert_gguf(gguf: Path, cache_name: str) -> Path:
    """Dequantise ``gguf`` once into ``cache_dir()/models/<cache_name>/`` (config + safetensors)."""
    from filelock import FileLock

    dest = assets.cache_dir() / "models" / cache_name
    if (dest / "config.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if (dest / "config.json").is_file():  # another process converted it meanwhile
            return dest
        log.info("converting %s to safetensors (first use only, ~15 s)", gguf.name)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".convert-"))
        os.chmod(tmp, 0o755)
        try:
            _write_converted(gguf, tmp)
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _write_converted(gguf: Path, out: Path) -> None:
    """Write ``model.safetensors``, ``config.json`` (last) and the tokenizer of ``gguf`` into ``out``."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # transformers raises many types for unreadable/unsupported GGUF
        raise ModelLoadError(f"transformers could not read {gguf}: {exc}") from exc
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["architectures"] = [type(model).__name__]
    ModelConfig.from_hf(cfg)  # fail before writing anything we cannot run
    tied = bool(cfg.get("tie_word_embeddings"))
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt", "source": gguf.name})
    tok.save_pretrained(str(out))
    with open(out / "config.json", "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, default=str)


def _snapshot(repo_id: str) -> Path:
    """Local folder of hub model ``repo_id``: the hub cache first, then a download."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise ModelLoadError("loading a hub id needs huggingface_hub (pip install huggingface_hub)") from exc
    patterns = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.jinja"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except OSError:  # not in the local hub cache (LocalEntryNotFoundError): try the network
        log.debug("%s is not in the local hub cache", repo_id)
    try:
        log.info("downloading %s from the Hugging Face hub", repo_id)
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:  # network, auth, missing repo: all mean the same to the user
        raise ModelLoadError(
            f"could not fetch {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: {exc}); "
            "check the network or pass a local folder with config.json + *.safetensors"
        ) from exc
