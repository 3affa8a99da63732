"""mmdet 3.x's and mmpretrain 1.x's own ResNet/ResNeXt backbone tests, run on our ResNeXt.

The peers' test files cannot be committed (third-party code) and are not in their wheels or sdists,
so this runs only where a local copy exists; see :mod:`peer_shim` for how they are run and what is
excepted. CI has no copy and skips; ``tests/test_models/test_peer_behaviour.py`` restates the
same checks in our own code and always runs.
"""
import pytest
from peer_shim import PEER_TESTS_ENV, SUITES, missing_files, peer_tests_dir, run_suite

HOW_TO_RUN = (
    "put mmdet v3.3.0's tests/test_models/test_backbones/{test_resnet.py,test_renext.py,utils.py} "
    "in .peer_tests/mmdet/ and mmpretrain v1.2.0's tests/test_models/test_backbones/"
    "{test_resnet.py,test_resnext.py,utils.py} in .peer_tests/mmpretrain/ (git-ignored; or set "
    f"{PEER_TESTS_ENV} to a folder with that layout), then run "
    "`.venv/bin/python -m pytest -q -s tests/test_models/test_peer_suites.py` or "
    "`.venv/bin/python tests/peer_shim.py`"
)


@pytest.mark.parametrize("name", sorted(SUITES))
def test_peer_backbone_suite_passes(name):
    suite = SUITES[name]
    base = peer_tests_dir()
    if not (base / name).is_dir():
        pytest.skip(f"{name}'s own backbone tests are not present at {base / name}: they are "
                    f"third-party files that cannot be committed or downloaded in CI. To run: "
                    f"{HOW_TO_RUN}")
    missing = missing_files(suite, base)
    assert not missing, f"incomplete peer test folder, missing {[str(p) for p in missing]}"

    report = run_suite(suite, base)
    print("\n" + "\n".join(report.lines()))

    assert report.with_status("passed"), f"{name}: no peer check ran"
    failed = report.with_status("failed")
    assert not failed, f"{len(failed)} peer checks fail:\n" + "\n".join(
        f"{c.where} [{c.title}]: {c.reason}" for c in failed)
