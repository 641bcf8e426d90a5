"""exwatch's data files parse to the same documents with libyaml's loader as with PyYAML's
pure-Python one (the C loader is what `yamldoc.parse` uses where PyYAML has it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import exwatch
from exwatch import yamldoc

PACKAGE = Path(exwatch.__file__).resolve().parent
SHIPPED = sorted(p for p in PACKAGE.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_the_shipped_data_files_are_all_here() -> None:
    names = {p.name for p in SHIPPED}
    assert {"fingerprints.yaml", "cves.yaml", "file_rules.yaml", "ioc_hashes.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_each_shipped_file_parses_the_same_with_either_loader(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert yamldoc.parse(text) == yaml.load(text, Loader=yaml.SafeLoader)
    with path.open(encoding="utf-8") as fh:  # a stream too (the catalogue reads files)
        assert yamldoc.parse(fh) == yaml.load(text, Loader=yaml.SafeLoader)


def test_the_c_loader_is_used_where_pyyaml_has_it() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML was built without libyaml")
    assert yamldoc.LOADER is yaml.CSafeLoader


@pytest.mark.parametrize("text", ["a: [1, 2", "!!python/object:os.system ls", "a: *missing"])
def test_bad_or_unsafe_yaml_is_a_yaml_error(text: str) -> None:
    with pytest.raises(yaml.YAMLError):
        yamldoc.parse(text)
