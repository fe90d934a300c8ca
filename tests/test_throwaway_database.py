"""The test suite's own PostgreSQL database is dropped at the end of a run, failed or not."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.databases import database_exists, on_postgresql

TESTS = Path(__file__).resolve().parent


@pytest.mark.skipif(not on_postgresql(), reason="needs PostgreSQL (TEST_DATABASE_URL)")
def test_the_run_database_is_dropped_even_when_tests_fail(tmp_path):
    seen = tmp_path / "database_url.txt"
    (tmp_path / "test_fails.py").write_text(
        "def test_fails(app, database_url):\n"
        f"    open({str(seen)!r}, 'w').write(database_url)\n"
        "    assert False, 'fails on purpose'\n"
    )
    # A separate pytest run using this suite's conftest as a plugin, on a failing test.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path / "test_fails.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])},
    )
    assert result.returncode == 1 and "fails on purpose" in result.stdout, result.stdout + result.stderr
    name = sa.make_url(seen.read_text()).database
    assert name.startswith("idp_test_")
    assert not database_exists(name)
