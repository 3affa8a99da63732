"""Install mmcv into a virtual environment from a wheel cache outside the clone.

mmcv 2.x has no wheels for our torch, so ``make install`` builds it from source against the
installed torch (``--no-build-isolation``): about 20 minutes on 2 cores. This script builds that
wheel once per *build key* and keeps it in a cache shared by every clone on the machine:

    ${RESNEXT_PLUGIN_WHEEL_CACHE:-${XDG_CACHE_HOME:-~/.cache}/resnext_plugin/mmcv-wheels}/<key>/
        mmcv-2.1.0-cp311-cp311-linux_x86_64.whl
        manifest.json     # the full key, the wheel's name, size and sha256

The key holds everything the compiled extension depends on: the mmcv distribution (``mmcv``, or
``onedl-mmcv`` for the OneDL stack: ``--dist``) and its version (the pin in the stack's constraints
file, ``requirements/constraints.txt`` or ``requirements/stack-<name>.txt``), so each stack that
builds a different mmcv has entries of its own; torch's version and git revision, its CUDA version
and whether the build compiles CUDA ops, the C++ ABI flag, the Python tag and the platform, plus
the mmcv build variables set in the environment (``MMCV_WITH_OPS``, ``FORCE_CUDA``,
``TORCH_CUDA_ARCH_LIST``, ...), and the C++ standard torch's headers require (C++17; C++20 from
torch 2.14). mmcv's setup.py hard-codes ``-std=c++14`` (mmcv 2.0) or ``-std=c++17``, so every build
unpacks the sdist and raises the flags older than that standard before compiling it
(:func:`raise_cxx_std`). A cached wheel is never trusted blindly: its manifest must name this exact
key, its sha256 and size must match and its zip members must pass their CRC checks; after
installing it, ``mmcv.ops`` must import and run ``nms`` and ``RoIAlign`` on the CPU with known
results. Any failure is logged with its reason, the entry is deleted, and the wheel is built again.

Entries are written atomically (built in a hidden staging folder of the cache, then renamed), and a
lock file per key makes a second clone wait for a build in progress instead of starting its own.
Standard library only: it runs before the stack exists.

Example (what ``make install`` runs)::

    python tools/install_mmcv.py --python .venv/bin/python \\
        --constraints requirements/constraints.txt --uv "python3 -m uv"
    MMCV_WITH_OPS=1 python tools/install_mmcv.py --python .venv-onedl/bin/python \\
        --dist onedl-mmcv --constraints requirements/stack-onedl.txt   # make install STACK=onedl
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

#: Overrides the cache folder.
CACHE_ENV = "RESNEXT_PLUGIN_WHEEL_CACHE"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
#: The C++ standard torch 2.x's headers require up to 2.13 (2.14 on: C++20).
BASELINE_CXX_STD = "c++17"
#: Environment variables that change what mmcv's setup.py compiles.
BUILD_ENV_VARS = ("MMCV_WITH_OPS", "FORCE_CUDA", "FORCE_MLU", "FORCE_NPU", "FORCE_MPS",
                  "TORCH_CUDA_ARCH_LIST", "MMCV_CUDA_ARGS")

# Run by the target interpreter: what the compiled extension depends on.
_PROBE = r"""
import json, os, re, sys, sysconfig
import torch
cuda_ops = bool(torch.version.cuda) and (
    torch.cuda.is_available() or os.environ.get("FORCE_CUDA", "0") == "1")
# The standard torch's headers require ("#error C++20 or later ..." from torch 2.14).
header = os.path.join(os.path.dirname(torch.__file__), "include", "ATen", "ATen.h")
needed = re.findall(r"__cplusplus < (\d+)L", open(header).read()) if os.path.isfile(header) else []
year = max((int(value) for value in needed), default=201703)
cxx_std = f"c++{str(year)[2:4]}"
print(json.dumps(dict(
    torch=torch.__version__,
    torch_git=getattr(torch.version, "git_version", "unknown"),
    cuda=torch.version.cuda or "none",
    ops="cuda" if cuda_ops else "cpu",
    cxx11_abi=int(torch.compiled_with_cxx11_abi()),
    python=f"cp{sys.version_info.major}{sys.version_info.minor}",
    platform=sysconfig.get_platform(),
    cxx_std=cxx_std,
)))
"""

# Run by the target interpreter after installing: mmcv's compiled ops work, with known answers.
SMOKE_TEST = r"""
import sys
import torch
import mmcv
from mmcv.ops import RoIAlign, nms

expected = sys.argv[1]
if mmcv.__version__ != expected:
    raise SystemExit(f"mmcv {mmcv.__version__} is installed, expected {expected}")
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
if keep.tolist() != [0, 2]:
    raise SystemExit(f"mmcv.ops.nms kept {keep.tolist()}, expected [0, 2]")
# 4x4 feature map with value 4y + x; one RoI over all of it, 2x2 bins, one sample per bin centre.
feature = torch.arange(16.).view(1, 1, 4, 4)
pooled = RoIAlign((2, 2), 1.0, sampling_ratio=1, aligned=False)(
    feature, torch.tensor([[0., 0., 0., 4., 4.]]))
if pooled.flatten().tolist() != [5., 7., 13., 15.]:
    raise SystemExit(f"mmcv.ops.RoIAlign gave {pooled.flatten().tolist()}, "
                     "expected [5, 7, 13, 15]")
print(f"mmcv {mmcv.__version__}: mmcv.ops nms and RoIAlign OK")
"""


class CacheEntryError(Exception):
    """A cache entry that must not be used (the message says why)."""


class InstallError(Exception):
    """mmcv could not be built, installed or verified."""


@dataclass(frozen=True)
class BuildKey:
    """Everything a built mmcv wheel depends on; a cached wheel is reused only for an equal key."""

    mmcv: str
    torch: str
    torch_git: str
    cuda: str
    ops: str
    cxx11_abi: int
    python: str
    platform: str
    build_env: tuple[tuple[str, str], ...] = ()
    #: The distribution built (``mmcv`` or ``onedl-mmcv``). Left out of the stored key when it is
    #: ``mmcv``, so entries written before this field existed keep their folder and stay valid.
    dist: str = "mmcv"
    #: The C++ standard torch's headers require (``c++17``; ``c++20`` from torch 2.14): the build
    #: raises older ``-std`` flags of mmcv's setup.py to it. Left out of the stored key when it is
    #: ``c++17``, which every torch the cache served before this field existed required.
    cxx_std: str = BASELINE_CXX_STD

    def as_dict(self) -> dict:
        """The key as JSON-compatible data (what the manifest stores)."""
        data = asdict(self)
        data["build_env"] = [list(pair) for pair in self.build_env]
        if self.dist == "mmcv":
            del data["dist"]
        if self.cxx_std == BASELINE_CXX_STD:
            del data["cxx_std"]
        return data

    @property
    def wheel_prefix(self) -> str:
        """How this key's wheel file name starts (``mmcv-2.1.0-``, ``onedl_mmcv-2.3.6-``)."""
        return f"{wheel_name_of(self.dist)}-{self.mmcv}-"

    @classmethod
    def from_dict(cls, data: dict) -> BuildKey:
        """Inverse of :meth:`as_dict`.

        Raises:
            CacheEntryError: ``data`` is not a complete key.
        """
        try:
            values = dict(data)
            values["build_env"] = tuple(tuple(pair) for pair in values.get("build_env", ()))
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise CacheEntryError(f"manifest key is malformed ({err})") from err

    def dirname(self) -> str:
        """Readable folder name; the hash covers every field, so different keys never share it."""
        digest = hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()
        torch_version = re.sub(r"[^A-Za-z0-9.+_-]", "_", self.torch)
        return (f"{self.dist}-{self.mmcv}_torch-{torch_version}_{self.ops}_{self.python}_"
                f"{self.platform}_{digest[:12]}")


def wheel_name_of(dist: str) -> str:
    """A distribution's name as wheel file names spell it (PEP 427: ``onedl-mmcv`` ->
    ``onedl_mmcv``)."""
    return re.sub(r"[-_.]+", "_", dist).lower()


def log(message: str) -> None:
    print(f"install_mmcv: {message}", flush=True)


def default_cache_root(env: dict[str, str] | None = None) -> Path:
    """The cache folder: ``$RESNEXT_PLUGIN_WHEEL_CACHE`` if set, else the user's cache.

    The default is ``${XDG_CACHE_HOME:-~/.cache}/resnext_plugin/mmcv-wheels``.
    """
    env = os.environ if env is None else env
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "resnext_plugin" / "mmcv-wheels"


def mmcv_pin(constraints: str | os.PathLike, dist: str = "mmcv") -> str:
    """The ``<dist>==X`` version pinned in the constraints file (``dist``: ``mmcv`` by default).

    Raises:
        InstallError: the file is missing or pins no exact version of ``dist``.
    """
    path = Path(constraints)
    if not path.is_file():
        raise InstallError(f"constraints file {path} does not exist")
    name = re.escape(dist)
    for line in path.read_text().splitlines():
        match = re.fullmatch(rf"\s*{name}\s*==\s*([A-Za-z0-9.+!-]+)\s*(#.*)?", line,
                             flags=re.IGNORECASE)
        if match:
            return match.group(1)
    raise InstallError(f"{path} pins no exact {dist} version (expected a line "
                       f"'{dist}==X.Y.Z')")


def probe_build_key(python: str, mmcv_version: str, env: dict[str, str] | None = None,
                    dist: str = "mmcv") -> BuildKey:
    """Ask ``python`` (the target interpreter, torch installed) for the build key.

    Raises:
        InstallError: the interpreter cannot import torch.
    """
    env = dict(os.environ if env is None else env)
    result = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise InstallError(f"{python} could not report its torch build (install torch first):\n"
                           f"{result.stderr.strip()}")
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    build_env = tuple((name, env[name]) for name in BUILD_ENV_VARS if env.get(name))
    return BuildKey(mmcv=mmcv_version, build_env=build_env, dist=dist, **facts)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_entry(entry: Path, key: BuildKey) -> Path:
    """Check a cache entry against ``key``; return its wheel.

    Raises:
        CacheEntryError: anything is missing, malformed, for another key or corrupt.
    """
    manifest_path = entry / MANIFEST
    if not manifest_path.is_file():
        raise CacheEntryError(f"{manifest_path} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CacheEntryError(f"{manifest_path} is not valid JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise CacheEntryError(f"{manifest_path} is not a format-{MANIFEST_FORMAT} manifest")
    for field in ("key", "wheel", "sha256", "size"):
        if field not in manifest:
            raise CacheEntryError(f"{manifest_path} has no '{field}'")
    cached_key = BuildKey.from_dict(manifest["key"])
    if cached_key != key:
        changed = {name: (value, getattr(key, name))
                   for name, value in asdict(cached_key).items() if getattr(key, name) != value}
        raise CacheEntryError(f"built for another key: {changed} (cached, wanted)")
    name = manifest["wheel"]
    if not (isinstance(name, str) and name.startswith(key.wheel_prefix)
            and name.endswith(".whl") and "/" not in name):
        raise CacheEntryError(f"manifest names {name!r}, not a {key.dist} {key.mmcv} wheel")
    wheel = entry / name
    if not wheel.is_file():
        raise CacheEntryError(f"{wheel} is missing")
    size = wheel.stat().st_size
    if size != manifest["size"]:
        raise CacheEntryError(f"{wheel.name} has {size} bytes, the manifest says "
                              f"{manifest['size']} (truncated or replaced)")
    digest = sha256_of(wheel)
    if digest != manifest["sha256"]:
        raise CacheEntryError(f"{wheel.name} has sha256 {digest}, the manifest says "
                              f"{manifest['sha256']}")
    try:
        with zipfile.ZipFile(wheel) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
        raise CacheEntryError(f"{wheel.name} is not a readable wheel ({err})") from err
    if bad is not None:
        raise CacheEntryError(f"{wheel.name}: member {bad} fails its CRC check")
    return wheel


def store_wheel(cache_root: Path, key: BuildKey, staging: Path, wheel: Path,
                build_seconds: float | None = None) -> Path:
    """Write the manifest next to ``wheel`` in ``staging`` and move it into place atomically.

    ``staging`` must be a folder in ``cache_root`` (same file system) holding only the wheel.
    Returns the wheel's final path.
    """
    manifest = dict(format=MANIFEST_FORMAT, key=key.as_dict(), wheel=wheel.name,
                    sha256=sha256_of(wheel), size=wheel.stat().st_size,
                    built_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                    build_seconds=None if build_seconds is None else round(build_seconds))
    manifest_path = staging / MANIFEST
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    for path in (wheel, manifest_path):
        with open(path, "rb") as stream:
            os.fsync(stream.fileno())
    entry = cache_root / key.dirname()
    if entry.exists():
        shutil.rmtree(entry)
    os.rename(staging, entry)
    return entry / wheel.name


@contextlib.contextmanager
def key_lock(cache_root: Path, key: BuildKey) -> Iterator[None]:
    """Hold the key's lock file: one build per key at a time, across clones."""
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / f".{key.dirname()}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another process is building or installing {key.dirname()}; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _staging_prefix(key: BuildKey) -> str:
    return f".staging-{key.dirname()}-"


def cached_or_built_wheel(cache_root: Path, key: BuildKey,
                          build: Callable[[Path], Path]) -> tuple[Path, bool]:
    """The verified cached wheel for ``key``, or a freshly built and stored one.

    ``build(out_dir)`` builds the wheel into ``out_dir`` and returns its path. Call with the
    key's lock held. Returns ``(wheel, built)``.
    """
    entry = cache_root / key.dirname()
    if entry.exists():
        try:
            wheel = verify_entry(entry, key)
            log(f"reusing cached wheel {wheel} (sha256 and CRCs verified)")
            return wheel, False
        except CacheEntryError as err:
            log(f"cache entry {entry} rejected, rebuilding: {err}")
            shutil.rmtree(entry)
    else:
        log(f"no cached wheel for this key ({entry}); building {key.dist} {key.mmcv} from source")
    for leftover in cache_root.glob(_staging_prefix(key) + "*"):
        log(f"removing {leftover}, left by an interrupted build")
        shutil.rmtree(leftover, ignore_errors=True)
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(key), dir=cache_root))
    try:
        start = time.perf_counter()
        wheel = build(staging)
        seconds = time.perf_counter() - start
        wheels = sorted(staging.glob("*.whl"))
        if wheels != [wheel]:
            raise InstallError(f"the build left {[w.name for w in wheels]} in {staging}, "
                               f"expected exactly {wheel.name}")
        stored = store_wheel(cache_root, key, staging, wheel, seconds)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"built and cached {stored} in {seconds / 60:.1f} min")
    return stored, True


def provide_mmcv(cache_root: Path, key: BuildKey, build: Callable[[Path], Path],
                 install: Callable[[Path], None], smoke_test: Callable[[], None]) -> Path:
    """Install a verified wheel for ``key``: cached if it passes every check, else rebuilt.

    A cached wheel whose installed ``mmcv.ops`` fails ``smoke_test`` is deleted and rebuilt
    (once: the rebuilt entry is fresh); a freshly built one that fails is deleted and raises.

    Raises:
        InstallError: building, installing or the smoke test of a fresh build failed.
    """
    with key_lock(cache_root, key):
        while True:
            wheel, built = cached_or_built_wheel(cache_root, key, build)
            install(wheel)
            try:
                smoke_test()
                return wheel
            except InstallError as err:
                # Never leave a wheel in the cache that failed once.
                shutil.rmtree(wheel.parent)
                if built:
                    raise InstallError(f"the freshly built {wheel.name} fails its smoke test "
                                       f"(removed from the cache): {err}") from err
                log(f"cached wheel {wheel} installed but fails its smoke test, deleted it; "
                    f"rebuilding: {err}")


def run_smoke_test(python: str, mmcv_version: str, env: dict[str, str] | None = None) -> None:
    """Import ``mmcv.ops`` in ``python`` and run ``nms`` and ``RoIAlign`` with known answers.

    Raises:
        InstallError: with the interpreter's error output.
    """
    result = subprocess.run([python, "-c", SMOKE_TEST, mmcv_version], capture_output=True,
                            text=True, env=env)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise InstallError(f"mmcv.ops check failed in {python}:\n{tail}")
    log(result.stdout.strip())


def pip_wheel_command(python: str, source: Path, out_dir: Path) -> list[str]:
    """The command that compiles the unpacked sdist ``source`` against ``python``'s torch.

    ``--no-cache-dir``: pip's own wheel cache is keyed by the sdist alone, so without it a wheel
    compiled against another torch is handed back as if built now (seen: onedl-mmcv built for
    torch 2.13.0 returned in a torch 2.15.0 venv).
    """
    return [python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-cache-dir",
            "--wheel-dir", str(out_dir), str(source)]


_STD_FLAG = re.compile(r"(-std=|/std:)c\+\+(\d\d)\b")


def _std_year(two_digits: str) -> int:
    """``98`` -> 1998, ``17`` -> 2017: the order of the standards."""
    year = int(two_digits)
    return 1900 + year if year >= 90 else 2000 + year


def raise_cxx_std(setup_py: Path, cxx_std: str) -> int:
    """Raise every ``-std=c++NN`` (and MSVC ``/std:c++NN``) in setup.py older than ``cxx_std``.

    mmcv's setup.py hard-codes the standard after anything the environment sets: mmcv 2.0.1
    passes ``-std=c++14`` where torch 2.x's headers need C++17, and every mmcv ``-std=c++17``
    where torch >= 2.14's need C++20. Flags already at ``cxx_std`` or newer stay. Returns the
    number of flags rewritten.
    """
    wanted = _std_year(cxx_std.removeprefix("c++"))
    raised = []

    def raise_flag(match: re.Match) -> str:
        if _std_year(match.group(2)) >= wanted:
            return match.group(0)
        raised.append(match.group(0))
        return match.group(1) + cxx_std

    setup_py.write_text(_STD_FLAG.sub(raise_flag, setup_py.read_text()))
    return len(raised)


def unpacked_sdist(python: str, dist: str, version: str, workdir: Path) -> Path:
    """Download ``dist==version``'s sdist with ``python``'s pip and unpack it under ``workdir``.

    ``--no-build-isolation``: pip reads the sdist's metadata by running its setup.py, which for
    mmcv imports torch and (mmcv 2.0) ``pkg_resources``: the venv's own, not a fresh setuptools.

    Raises:
        InstallError: the download failed or the archive is not one sdist folder with a setup.py.
    """
    _run([python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
          "--no-build-isolation", "--dest", str(workdir), f"{dist}=={version}"])
    archives = list(workdir.glob("*.tar.gz"))
    if len(archives) != 1:
        raise InstallError(f"pip download left {[p.name for p in workdir.iterdir()]} in "
                           f"{workdir}, expected one {dist} {version} sdist")
    with tarfile.open(archives[0]) as archive:
        archive.extractall(workdir / "src", filter="data")
    setups = list((workdir / "src").glob("*/setup.py"))
    if len(setups) != 1:
        raise InstallError(f"{archives[0].name} does not unpack to one folder with a setup.py")
    return setups[0].parent


def _run(command: list[str], **kwargs) -> None:
    log("$ " + shlex.join(command))
    result = subprocess.run(command, **kwargs)
    if result.returncode != 0:
        raise InstallError(f"command failed with exit code {result.returncode}: "
                           f"{shlex.join(command)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True,
                        help="the virtual environment's interpreter (torch already installed)")
    parser.add_argument("--constraints", default="requirements/constraints.txt",
                        help="the pins (<dist>==X is read from it; every install step uses it)")
    parser.add_argument("--dist", default="mmcv",
                        help="the mmcv distribution to build: mmcv (upstream) or onedl-mmcv")
    parser.add_argument("--uv", default="uv", help="how to run uv, e.g. 'python3 -m uv'")
    parser.add_argument("--cache-dir", default=None,
                        help=f"the wheel cache (default: ${CACHE_ENV}, else "
                             "${XDG_CACHE_HOME:-~/.cache}/resnext_plugin/mmcv-wheels)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    uv_pip = [*shlex.split(args.uv), "pip"]
    target = ["--python", args.python]
    pins = ["-c", args.constraints]
    try:
        version = mmcv_pin(args.constraints, args.dist)
    except InstallError as err:
        print(f"install_mmcv: error: {err}", file=sys.stderr)
        return 1

    def build(out_dir: Path) -> Path:
        # pip in the venv downloads the sdist (uv has no download command) and compiles it
        # against the venv's torch.
        _run([*uv_pip, "install", *target, *pins, "pip"])
        try:
            with tempfile.TemporaryDirectory(prefix="mmcv-sdist-") as workdir:
                source = unpacked_sdist(args.python, args.dist, version, Path(workdir))
                count = raise_cxx_std(source / "setup.py", key.cxx_std)
                if count:
                    log(f"torch {key.torch}'s headers need {key.cxx_std}: raised {count} older "
                        f"-std flags of {args.dist} {version}'s setup.py to it")
                _run(pip_wheel_command(args.python, source, out_dir))
        finally:
            _run([*uv_pip, "uninstall", *target, "pip"])
        wheels = list(out_dir.glob(f"{key.wheel_prefix}*.whl"))
        if len(wheels) != 1:
            raise InstallError(f"pip wheel left {[w.name for w in out_dir.iterdir()]} in "
                               f"{out_dir}, expected one {args.dist} {version} wheel")
        return wheels[0]

    def install(wheel: Path) -> None:
        _run([*uv_pip, "install", *target, *pins, "--reinstall-package", args.dist, str(wheel)])

    try:
        key = probe_build_key(args.python, version, dist=args.dist)
        cache_root = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_root()
        log(f"key {key.as_dict()}")
        provide_mmcv(cache_root, key, build, install,
                     lambda: run_smoke_test(args.python, version))
    except InstallError as err:
        print(f"install_mmcv: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
