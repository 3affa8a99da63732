"""The mmcv wheel cache of tools/install_mmcv.py: keys, verification, rebuilds (no real build)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The one tool loaded by path: it runs before the package and its dependencies are installed
# (standard library only), so it cannot live in resnext_plugin.
_spec = importlib.util.spec_from_file_location("install_mmcv", ROOT / "tools" / "install_mmcv.py")
install_mmcv = importlib.util.module_from_spec(_spec)
sys.modules["install_mmcv"] = install_mmcv
_spec.loader.exec_module(install_mmcv)

KEY = install_mmcv.BuildKey(mmcv="2.1.0", torch="2.13.0+cpu", torch_git="abc123", cuda="none",
                            ops="cpu", cxx11_abi=1, python="cp311", platform="linux-x86_64")
WHEEL_NAME = "mmcv-2.1.0-cp311-cp311-linux_x86_64.whl"


class Builder:
    """Writes a small real wheel-shaped zip into the staging folder and counts its calls."""

    def __init__(self, payload: bytes = b"compiled ops") -> None:
        self.calls = 0
        self.payload = payload

    def __call__(self, out_dir: Path) -> Path:
        self.calls += 1
        wheel = out_dir / WHEEL_NAME
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("mmcv/_ext.so", self.payload * 1000)
            archive.writestr("mmcv-2.1.0.dist-info/METADATA", "Name: mmcv\nVersion: 2.1.0\n")
        return wheel


def _cache_with_entry(tmp_path: Path) -> tuple[Path, Path, Builder]:
    root = tmp_path / "cache"
    builder = Builder()
    wheel, built = install_mmcv.cached_or_built_wheel(root, KEY, builder)
    assert built and builder.calls == 1
    return root, wheel, builder


def test_key_folder_differs_for_every_field_and_is_stable():
    variants = [replace(KEY, mmcv="2.2.0"), replace(KEY, torch="2.13.0+cu126"),
                replace(KEY, torch_git="def456"), replace(KEY, cuda="12.6"),
                replace(KEY, ops="cuda"), replace(KEY, cxx11_abi=0),
                replace(KEY, python="cp312"), replace(KEY, platform="linux-aarch64"),
                replace(KEY, build_env=(("TORCH_CUDA_ARCH_LIST", "8.0"),)),
                replace(KEY, cxx_std="c++20"), replace(KEY, dist="onedl-mmcv")]
    names = {KEY.dirname()} | {variant.dirname() for variant in variants}
    assert len(names) == len(variants) + 1
    assert KEY.dirname() == replace(KEY).dirname()
    assert install_mmcv.BuildKey.from_dict(json.loads(json.dumps(variants[-1].as_dict()))) \
        == variants[-1]


def test_cache_root_honours_override_then_xdg(tmp_path):
    assert install_mmcv.default_cache_root({install_mmcv.CACHE_ENV: str(tmp_path)}) == tmp_path
    assert install_mmcv.default_cache_root({"XDG_CACHE_HOME": str(tmp_path)}) \
        == tmp_path / "resnext_plugin" / "mmcv-wheels"


def test_mmcv_pin_is_read_from_the_constraints(tmp_path):
    assert install_mmcv.mmcv_pin(ROOT / "requirements" / "constraints.txt") == "2.1.0"
    loose = tmp_path / "constraints.txt"
    loose.write_text("torch==2.13.0\nmmcv>=2\n")
    with pytest.raises(install_mmcv.InstallError, match="pins no exact mmcv"):
        install_mmcv.mmcv_pin(loose)
    with pytest.raises(install_mmcv.InstallError, match="does not exist"):
        install_mmcv.mmcv_pin(tmp_path / "missing.txt")


def test_built_wheel_is_stored_atomically_with_its_manifest_and_reused(tmp_path):
    root, wheel, builder = _cache_with_entry(tmp_path)
    manifest = json.loads((wheel.parent / "manifest.json").read_text())
    assert wheel.parent == root / KEY.dirname()
    assert manifest["sha256"] == install_mmcv.sha256_of(wheel)
    assert manifest["key"] == KEY.as_dict() and manifest["wheel"] == WHEEL_NAME
    assert not list(root.glob(".staging-*")), "staging folder left behind"
    again, built = install_mmcv.cached_or_built_wheel(root, KEY, builder)
    assert (again, built, builder.calls) == (wheel, False, 1)


@pytest.mark.parametrize("damage, reason", [
    (lambda wheel: wheel.write_bytes(wheel.read_bytes()[: wheel.stat().st_size // 2]),
     "truncated"),
    (lambda wheel: wheel.write_bytes(bytes([wheel.read_bytes()[0] ^ 1]) + wheel.read_bytes()[1:]),
     "sha256"),
    (lambda wheel: wheel.unlink(), "missing"),
    (lambda wheel: (wheel.parent / "manifest.json").write_text("{"), "not valid JSON"),
    (lambda wheel: (wheel.parent / "manifest.json").unlink(), "manifest.json is missing"),
])
def test_damaged_entry_is_detected_removed_and_rebuilt(tmp_path, capsys, damage, reason):
    root, wheel, builder = _cache_with_entry(tmp_path)
    damage(wheel)
    with pytest.raises(install_mmcv.CacheEntryError, match=reason):
        install_mmcv.verify_entry(wheel.parent, KEY)
    rebuilt, built = install_mmcv.cached_or_built_wheel(root, KEY, builder)
    assert built and builder.calls == 2
    assert reason in capsys.readouterr().out
    install_mmcv.verify_entry(rebuilt.parent, KEY)


def test_crc_damage_with_a_matching_manifest_is_detected(tmp_path):
    """A wheel corrupted before its manifest was written: sha256 agrees, the zip CRC does not."""
    root, wheel, _ = _cache_with_entry(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        info = archive.getinfo("mmcv/_ext.so")
    # Flip a byte in the middle of the member's compressed data (local header: 30 bytes + name).
    data = bytearray(wheel.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + info.compress_size // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    manifest_path = wheel.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = install_mmcv.sha256_of(wheel)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(install_mmcv.CacheEntryError, match="CRC|not a readable wheel"):
        install_mmcv.verify_entry(wheel.parent, KEY)


def test_entry_of_another_key_is_not_reused(tmp_path, capsys):
    root, wheel, builder = _cache_with_entry(tmp_path)
    other = replace(KEY, torch="2.12.0+cpu")
    # Someone copied an entry under the wrong folder: the manifest's key decides, not the name.
    (root / other.dirname()).mkdir()
    for path in wheel.parent.iterdir():
        (root / other.dirname() / path.name).write_bytes(path.read_bytes())
    with pytest.raises(install_mmcv.CacheEntryError, match="another key.*torch"):
        install_mmcv.verify_entry(root / other.dirname(), other)
    _, built = install_mmcv.cached_or_built_wheel(root, other, builder)
    assert built and builder.calls == 2
    assert "built for another key" in capsys.readouterr().out
    # The first key's entry is untouched.
    install_mmcv.verify_entry(wheel.parent, KEY)


def test_leftover_staging_folder_of_a_killed_build_is_removed(tmp_path):
    root = tmp_path / "cache"
    leftover = root / f".staging-{KEY.dirname()}-dead"
    leftover.mkdir(parents=True)
    (leftover / WHEEL_NAME).write_bytes(b"half a wheel")
    install_mmcv.cached_or_built_wheel(root, KEY, Builder())
    assert not leftover.exists()


def test_failed_build_leaves_no_entry(tmp_path):
    def failing_build(out_dir: Path) -> Path:
        (out_dir / WHEEL_NAME).write_bytes(b"partial")
        raise install_mmcv.InstallError("compiler crashed")

    root = tmp_path / "cache"
    with pytest.raises(install_mmcv.InstallError, match="compiler crashed"):
        install_mmcv.cached_or_built_wheel(root, KEY, failing_build)
    assert [path.name for path in root.iterdir() if not path.name.endswith(".lock")] == []


def test_cached_wheel_failing_its_smoke_test_is_deleted_and_rebuilt(tmp_path, capsys):
    root, wheel, builder = _cache_with_entry(tmp_path)
    installed, outcomes = [], [install_mmcv.InstallError("undefined symbol: _ZN3c10"), None]

    def smoke_test() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    result = install_mmcv.provide_mmcv(root, KEY, builder, installed.append, smoke_test)
    assert builder.calls == 2 and len(installed) == 2 and result == installed[-1]
    assert "undefined symbol" in capsys.readouterr().out
    install_mmcv.verify_entry(result.parent, KEY)


def test_fresh_wheel_failing_its_smoke_test_raises_and_is_not_cached(tmp_path):
    def smoke_test() -> None:
        raise install_mmcv.InstallError("No module named 'mmcv._ext'")

    root = tmp_path / "cache"
    with pytest.raises(install_mmcv.InstallError, match="freshly built.*mmcv._ext"):
        install_mmcv.provide_mmcv(root, KEY, Builder(), lambda wheel: None, smoke_test)
    assert not (root / KEY.dirname()).exists()


def test_probe_reports_this_interpreters_torch():
    import torch

    key = install_mmcv.probe_build_key(sys.executable, "2.1.0",
                                       env=dict(os.environ, TORCH_CUDA_ARCH_LIST="8.0"))
    assert key.torch == torch.__version__ and key.mmcv == "2.1.0"
    assert key.python == f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert key.ops == ("cuda" if torch.cuda.is_available() else "cpu")
    assert key.build_env == (("TORCH_CUDA_ARCH_LIST", "8.0"),)
    # mmcv's -std=c++17 builds against torch < 2.14 as shipped; newer torch needs C++20.
    needs_cxx20 = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2]) \
        >= (2, 14)
    assert key.cxx_std == ("c++20" if needs_cxx20 else "c++17")


def test_smoke_test_passes_on_the_installed_mmcv_and_fails_on_a_broken_one(tmp_path):
    pytest.importorskip("mmcv.ops", reason="needs the compiled mmcv (this stack has mmcv-lite)")
    import mmcv

    install_mmcv.run_smoke_test(sys.executable, mmcv.__version__)
    with pytest.raises(install_mmcv.InstallError, match="expected 9.9.9"):
        install_mmcv.run_smoke_test(sys.executable, "9.9.9")
    broken = tmp_path / "mmcv"
    broken.mkdir()
    (broken / "__init__.py").write_text("__version__ = '2.1.0'\n")
    (broken / "ops.py").write_text("from . import _ext  # the compiled ops are missing\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    with pytest.raises(install_mmcv.InstallError, match="_ext"):
        install_mmcv.run_smoke_test(sys.executable, "2.1.0", env=env)


def test_command_line_names_a_bad_constraints_file(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "install_mmcv.py"),
                             "--python", sys.executable, "--constraints",
                             str(tmp_path / "nope.txt")], capture_output=True, text=True)
    assert result.returncode == 1 and "nope.txt does not exist" in result.stderr


def test_keys_of_upstream_mmcv_keep_their_folder_and_onedl_has_its_own(tmp_path):
    # Entries written before the distribution (or the C++ standard) was part of the key stay valid.
    assert "dist" not in KEY.as_dict() and KEY.dirname().startswith("mmcv-2.1.0_torch-")
    assert KEY.cxx_std == "c++17" and "cxx_std" not in KEY.as_dict()
    assert install_mmcv.BuildKey.from_dict(replace(KEY, cxx_std="c++20").as_dict()).cxx_std \
        == "c++20"
    onedl = replace(KEY, mmcv="2.3.6", dist="onedl-mmcv")
    assert onedl.as_dict()["dist"] == "onedl-mmcv"
    assert install_mmcv.BuildKey.from_dict(onedl.as_dict()) == onedl
    assert onedl.dirname().startswith("onedl-mmcv-2.3.6_") and onedl.wheel_prefix == (
        "onedl_mmcv-2.3.6-")
    constraints = tmp_path / "stack.txt"
    constraints.write_text("torch==2.13.0\nonedl-mmcv==2.3.6  # built from its sdist\n")
    assert install_mmcv.mmcv_pin(constraints, "onedl-mmcv") == "2.3.6"
    with pytest.raises(install_mmcv.InstallError, match="pins no exact mmcv version"):
        install_mmcv.mmcv_pin(constraints)


def test_an_onedl_wheel_is_stored_under_its_key_and_an_upstream_name_is_refused(tmp_path):
    key = replace(KEY, mmcv="2.3.6", dist="onedl-mmcv")

    def build(out_dir: Path) -> Path:
        wheel = out_dir / "onedl_mmcv-2.3.6-cp311-cp311-linux_x86_64.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr("mmcv/_ext.so", b"ops")
        return wheel

    wheel, built = install_mmcv.cached_or_built_wheel(tmp_path, key, build)
    assert built and wheel.parent.name == key.dirname()
    assert install_mmcv.verify_entry(wheel.parent, key) == wheel
    manifest = json.loads((wheel.parent / install_mmcv.MANIFEST).read_text())
    manifest["wheel"] = "mmcv-2.3.6-cp311-cp311-linux_x86_64.whl"
    (wheel.parent / install_mmcv.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(install_mmcv.CacheEntryError, match="not a onedl-mmcv 2.3.6 wheel"):
        install_mmcv.verify_entry(wheel.parent, key)


def test_build_compiles_the_sdist_and_never_takes_pips_cached_wheel(tmp_path):
    # pip's wheel cache is keyed by the sdist, not by torch: a wheel built against another torch
    # came back as a "build" in 0.0 min before --no-cache-dir.
    source = tmp_path / "src" / "onedl_mmcv-2.3.6"
    command = install_mmcv.pip_wheel_command("/venv/bin/python", source, tmp_path / "out")
    assert command[:4] == ["/venv/bin/python", "-m", "pip", "wheel"]
    assert {"--no-cache-dir", "--no-deps", "--no-build-isolation"} <= set(command)
    assert command[command.index("--wheel-dir") + 1] == str(tmp_path / "out")
    assert command[-1] == str(source)


# The -std flags of mmcv 2.0.1's setup.py (CUDA, CPU, MSVC, MPS branches and a comment).
SETUP_PY_FLAGS = """\
            'nvcc': [cuda_args, '-std=c++14'] if cuda_args else ['-std=c++14'],
            'cxx': ['-std=c++14'],
            extra_compile_args['cxx'] = ['-std=c++14']
                extra_compile_args['cxx'] = ['/std:c++14']
            extra_compile_args['cxx'] = ['-Wall', '-std=c++17']
        # c++14 features, the argument ['std=c++14'] must be added here.
            extra_compile_args['nvcc'] += ['-std=c++14']
"""


@pytest.mark.parametrize("cxx_std, raised, kept", [
    ("c++17", 6, "'-std=c++17'"),  # torch 2.x before 2.14 against mmcv 2.0.1's C++14
    ("c++20", 7, "'-std=c++20'"),  # torch >= 2.14: mmcv 2.1 / onedl-mmcv's C++17 too
])
def test_std_flags_older_than_torchs_headers_need_are_raised(tmp_path, cxx_std, raised, kept):
    setup_py = tmp_path / "setup.py"
    setup_py.write_text(SETUP_PY_FLAGS)
    assert install_mmcv.raise_cxx_std(setup_py, cxx_std) == raised
    patched = setup_py.read_text()
    assert "-std=c++14" not in patched and "/std:c++14" not in patched and kept in patched
    assert "['std=c++14'] must be added" in patched  # a comment, not a flag
    assert install_mmcv.raise_cxx_std(setup_py, cxx_std) == 0  # already there: unchanged
    assert setup_py.read_text() == patched
    setup_py.write_text("flags = ['-std=c++20']\n")
    assert install_mmcv.raise_cxx_std(setup_py, "c++17") == 0  # never lowered
    assert setup_py.read_text() == "flags = ['-std=c++20']\n"
