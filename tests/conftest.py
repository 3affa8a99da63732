import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


def _drop_new_default_scopes() -> Iterator[None]:
    """An mmengine Runner leaves its DefaultScope behind as the process-wide current scope; drop
    the scopes created meanwhile so that the next test builds in the scope it asks for."""
    from mmengine.registry import DefaultScope

    from resnext_plugin.engine.instances import forget_new_global_instances

    with forget_new_global_instances(DefaultScope):
        yield


@pytest.fixture(autouse=True)
def _isolate_default_scope() -> Iterator[None]:
    yield from _drop_new_default_scopes()


@pytest.fixture(autouse=True, scope="module")
def _isolate_default_scope_of_module_fixtures() -> Iterator[None]:
    """The same for module-scoped fixtures (runners started once per test file)."""
    yield from _drop_new_default_scopes()
