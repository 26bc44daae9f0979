"""The asset catalog as documentation: every asset links to the code that defines it.

Locally a code reference is the file and line of the asset's function (the UI opens it in
an editor); with ``LAKELOOP_GIT_URL`` set (a GitHub or GitLab repository URL) it becomes a
link to that line on ``LAKELOOP_GIT_BRANCH`` (default ``main``). Read when the code location
loads, like every setting.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from lakeloop.settings import PROJECT_ROOT

CODE_REFERENCES = "dagster/code_references"
# Any file at the repository root anchors the mapping from local paths to repository paths.
ANCHOR = "pyproject.toml"


def code_reference(obj: Any) -> dict[str, dg.CodeReferencesMetadataValue]:
    """Metadata that points at where ``obj`` (a function or class) is defined: for an
    ``AssetSpec``, which has no function of its own for Dagster to find."""
    source = inspect.getsourcefile(obj)
    if source is None:
        raise TypeError(f"{obj!r} has no source file to reference")
    reference = dg.LocalFileCodeReference(
        file_path=str(Path(source).resolve()),
        line_number=inspect.getsourcelines(obj)[1])
    return {CODE_REFERENCES: dg.CodeReferencesMetadataValue(code_references=[reference])}


def with_code_references(assets: Sequence[Any],
                         environ: Mapping[str, str] | None = None) -> list[Any]:
    """``assets`` with a code reference on every asset definition, linked to git when
    ``LAKELOOP_GIT_URL`` is set; asset checks pass through (rebuilding one would turn it into
    a plain assets definition) and specs keep the references they declare."""
    environ = os.environ if environ is None else environ
    git_url = environ.get("LAKELOOP_GIT_URL", "").strip().rstrip("/")
    branch = environ.get("LAKELOOP_GIT_BRANCH", "").strip() or "main"
    mapping = dg.AnchorBasedFilePathMapping(local_file_anchor=PROJECT_ROOT / ANCHOR,
                                            file_anchor_path_in_repository=ANCHOR)
    out = []
    for item in assets:
        if isinstance(item, dg.AssetChecksDefinition):
            out.append(item)
            continue
        if isinstance(item, dg.AssetsDefinition):
            item = dg.with_source_code_references([item])[0]
        if git_url:
            item = _to_git(item, git_url, branch, mapping)
        out.append(item)
    return out


def _to_git(item: Any, git_url: str, branch: str, mapping: dg.FilePathMapping) -> Any:
    if isinstance(item, dg.AssetsDefinition):
        try:
            return dg.link_code_references_to_git([item], git_url=git_url, git_branch=branch,
                                                  file_path_mapping=mapping)[0]
        except ValueError as exc:  # neither GitHub nor GitLab: Dagster cannot build links
            raise ValueError(f"LAKELOOP_GIT_URL={git_url!r}: {exc}") from None
    return _spec_to_git(item, git_url, branch, mapping)


def _spec_to_git(item: Any, git_url: str, branch: str, mapping: dg.FilePathMapping) -> Any:
    """``link_code_references_to_git`` leaves specs alone; give them the same links."""
    if not isinstance(item, dg.AssetSpec) or CODE_REFERENCES not in item.metadata:
        return item
    base = f"{git_url}/-/tree/{branch}" if "gitlab" in git_url else f"{git_url}/tree/{branch}"
    references = [
        dg.UrlCodeReference(
            url=f"{base}/{mapping.convert_to_source_control_path(Path(ref.file_path))}"
                + (f"#L{ref.line_number}" if ref.line_number else ""), label=ref.label)
        if isinstance(ref, dg.LocalFileCodeReference) else ref
        for ref in item.metadata[CODE_REFERENCES].code_references]
    return item.replace_attributes(metadata={
        **item.metadata,
        CODE_REFERENCES: dg.CodeReferencesMetadataValue(code_references=references)})
