"""The asset catalog reads like documentation: every asset says in one line what it holds,
sits in its use case's layer group, has an owner, shows the engine that builds it and links
to the code that defines it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from lakeloop import keys
from lakeloop.catalog import CODE_REFERENCES, code_reference, with_code_references
from lakeloop.definitions import build_definitions, use_case_assets
from lakeloop.settings import PROJECT_ROOT, Settings
from lakeloop.usecase import load_use_cases

LAYERS = (keys.RAW, keys.LAKEHOUSE, keys.FEATURES, keys.TRAINING, keys.DEPLOYMENT,
          keys.MONITORING)
# Kinds that name the engine doing the work (formats such as csv or file do not).
ENGINE_KINDS = {"spark", "delta", "feast", "xgboost", "mlflow", "seldon", "evidently",
                "kubernetes", "python", "pandas", "onnx", "redis", "sqlite"}
SUMMARY_MAX = 120


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    settings = Settings.from_env({}).with_data_root(tmp_path_factory.mktemp("catalog"))
    graph = build_definitions(settings).resolve_asset_graph()
    owners = {u.name: u.owner for u in load_use_cases(settings.use_case_dirs)}
    nodes = {key: graph.get(key) for key in graph.get_all_asset_keys()}
    assert len(nodes) > 20
    return nodes, owners


def _offenders(nodes, problem) -> list[str]:
    found = ((key.to_user_string(), problem(node)) for key, node in sorted(nodes.items()))
    return [f"{key}: {why}" for key, why in found if why]


def test_every_asset_has_a_one_line_description(catalog):
    def problem(node):
        text = (node.description or "").strip()
        if not text:
            return "no description"
        summary = text.splitlines()[0]
        if len(summary) > SUMMARY_MAX:
            return f"first line has {len(summary)} characters (at most {SUMMARY_MAX})"
        if not summary[0].isupper():
            return f"first line starts in lower case: {summary[:30]!r}"
        return None

    offenders = _offenders(catalog[0], problem)
    assert not offenders, "\n".join(offenders)


def test_every_asset_sits_in_its_use_case_layer_group_with_an_owner(catalog):
    nodes, owners = catalog

    def problem(node):
        use_case, layer = node.key.path[:2]
        if layer not in LAYERS:
            return f"{layer!r} is not a layer"
        if node.group_name != f"{use_case}_{layer}":
            return f"group {node.group_name!r}, expected {use_case}_{layer}"
        if list(node.owners) != [owners[use_case]]:
            return f"owners {node.owners}, expected [{owners[use_case]!r}]"
        return None

    offenders = _offenders(nodes, problem)
    assert not offenders, "\n".join(offenders)


def test_every_asset_shows_its_engine_as_a_kind(catalog):
    offenders = _offenders(catalog[0], lambda node: None if node.kinds & ENGINE_KINDS else
                           f"kinds {sorted(node.kinds)} name no engine")
    assert not offenders, "\n".join(offenders)


def _local_reference_problem(reference) -> str | None:
    path = Path(reference.file_path)
    if not path.is_file():
        return f"{path} does not exist"
    lines = path.read_text().splitlines()
    if not 1 <= reference.line_number <= len(lines):
        return f"{path}:{reference.line_number} is past the end of the file"
    return None


def test_every_asset_links_to_its_code(catalog):
    def problem(node):
        references = node.metadata.get(CODE_REFERENCES)
        if references is None or not references.code_references:
            return f"no {CODE_REFERENCES} metadata"
        for reference in references.code_references:
            if isinstance(reference, dg.LocalFileCodeReference):
                return _local_reference_problem(reference)
        return None

    offenders = _offenders(catalog[0], problem)
    assert not offenders, "\n".join(offenders)


# --- the helper itself ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def items():
    use_case = load_use_cases(Settings.from_env({}).use_case_dirs)[0]
    return use_case_assets(use_case)


def _references(item) -> list:
    specs = item.specs if isinstance(item, dg.AssetsDefinition) else [item]
    return [ref for spec in specs
            for ref in spec.metadata[CODE_REFERENCES].code_references]


def test_code_references_point_at_each_asset_function(items):
    linked = with_code_references(items, environ={})
    assert len(linked) == len(items)
    definitions = [a for a in linked if isinstance(a, dg.AssetsDefinition)
                   and not isinstance(a, dg.AssetChecksDefinition)]
    assert definitions
    for item in definitions:
        for reference in _references(item):
            assert isinstance(reference, dg.LocalFileCodeReference)
            assert _local_reference_problem(reference) is None
            path = Path(reference.file_path)
            assert path.is_relative_to(PROJECT_ROOT / "assets"), path
            # inspect reports a decorated function from its first decorator
            assert path.read_text().splitlines()[reference.line_number - 1].strip()[:4] in (
                "@dg.", "def ")
    # Checks stay checks; a multi-asset keeps the checks it declares.
    for before, after in zip(items, linked, strict=True):
        assert type(after) is type(before)
        if isinstance(before, dg.AssetsDefinition):
            assert after.check_keys == before.check_keys


def test_code_references_become_git_links_when_a_repository_is_configured(items):
    spec = dg.AssetSpec(["x", "raw", "y"], metadata=code_reference(code_reference))
    linked = with_code_references([*items, spec], environ={
        "LAKELOOP_GIT_URL": "https://github.com/example/lakeloop/", "LAKELOOP_GIT_BRANCH": "dev"})
    urls = [ref.url for item in linked if not isinstance(item, dg.AssetChecksDefinition)
            and (isinstance(item, dg.AssetSpec) and CODE_REFERENCES in item.metadata
                 or isinstance(item, dg.AssetsDefinition))
            for ref in _references(item)]
    assert urls and all(u.startswith("https://github.com/example/lakeloop/tree/dev/") for u in urls)
    assert any(u.split("/tree/dev/")[1].startswith("assets/raw/snapshots.py#L") for u in urls)
    assert urls[-1].split("/tree/dev/")[1].startswith("platform/lakeloop/catalog.py#L")


def test_a_git_url_dagster_cannot_link_is_named_in_the_error(items):
    with pytest.raises(ValueError, match="LAKELOOP_GIT_URL='https://git.example.org/x'"):
        with_code_references(items, environ={"LAKELOOP_GIT_URL": "https://git.example.org/x"})
