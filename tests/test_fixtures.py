"""The suite runs from a plain clone: no test reads the benchmark data beside the repository, the fixtures
in tests/data are small, each has its line in tests/data/README.md, and make_fixtures.py writes the very
files committed."""

from __future__ import annotations

import re
import runpy

from conftest import DATA

TESTS = DATA.parent
# the folder beside the repository by a relative path, by its data subfolder, or built with / and its name
# (the pattern written so as not to match itself)
OUTSIDE = re.compile(rb"""\.\./share[d]|share[d][/\\]data|/\s*["']share[d]["']""")


def test_no_file_under_tests_refers_to_the_shared_data():
    offenders = [
        str(path.relative_to(TESTS))
        for path in sorted(TESTS.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and OUTSIDE.search(path.read_bytes())
    ]
    assert offenders == []


def test_fixtures_are_small_and_each_is_described():
    files = [p for p in DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in files) < 512 * 1024
    readme = (DATA / "README.md").read_text()
    for path in files:
        if path.name != "README.md":
            assert f"`{path.relative_to(DATA).as_posix()}`" in readme, path


def test_make_fixtures_writes_the_committed_files():
    script = runpy.run_path(str(DATA / "make_fixtures.py"))
    written = script["fixtures"]()
    assert len(written) >= 5
    for name, content in written.items():
        assert (DATA / name).read_bytes() == content, name
