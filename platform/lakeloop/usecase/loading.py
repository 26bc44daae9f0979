"""Loading use-case files: YAML to a validated UseCase, every mistake reported with the
line of the file that holds it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from lakeloop.usecase.model import UseCase
from lakeloop.usecase.schema import FieldError, KeyPath


@dataclass(frozen=True)
class Problem:
    """One mistake in a use-case file: its line (1-based), the key path that holds it (e.g.
    ``features.request[1]``; empty for a syntax error) and what is wrong."""

    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line or '?'}: {self.where + ': ' if self.where else ''}{self.message}"


class UseCaseError(ValueError):
    """A use-case file is invalid; ``str()`` lists every problem with its line number."""

    def __init__(self, path: Path, problems: list[Problem]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: invalid use case\n" + "\n".join(f"  {p}" for p in problems))

    def located(self, shown_as: str | None = None) -> list[str]:
        """Each problem as ``file:line: where: message``, the way compilers report errors."""
        name = shown_as or str(self.path)
        return [f"{name}:{p.line or '?'}: {p.where + ': ' if p.where else ''}{p.message}"
                for p in self.problems]




def _line_index(node: yaml.Node, prefix: KeyPath = ()) -> dict[KeyPath, int]:
    """Map each key path in a YAML document to its 1-based line number."""
    lines: dict[KeyPath, int] = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            lines[path] = key.start_mark.line + 1
            lines.update({k: v for k, v in _line_index(value, path).items() if k != path})
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_line_index(item, (*prefix, i)))
    return lines


def _where(path: KeyPath) -> str:
    """``("features", "request", 1)`` -> ``features.request[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


_MESSAGES = {"missing": "required key is missing",
             "extra_forbidden": "unknown key (not part of a use case; a typo?)"}


_SHOULD = "Input should be "


def _problems(exc: ValidationError, lines: dict[KeyPath, int]) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        loc: KeyPath = tuple(err["loc"])
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, FieldError):
            loc = (*loc, *error.path)
        cut = next(c for c in range(len(loc), -1, -1) if loc[:c] in lines)
        # A missing key is named even though it is not in the file; anything past the last
        # key the file holds is pydantic's own bookkeeping (a union's member types).
        shown = loc if err["type"] == "missing" else loc[:cut]
        message = _MESSAGES.get(err["type"], err["msg"].removeprefix("Value error, "))
        problem = Problem(lines.get(loc[:cut]), _where(shown) or "(top level)", message)
        same = next((p for p in problems if (p.line, p.where) == (problem.line, problem.where)),
                    None)
        if same is None:
            problems.append(problem)
        elif same.message.startswith(_SHOULD) and message.startswith(_SHOULD):
            # A union reports each member it tried: one problem, every accepted kind named.
            merged = f"{same.message}, or {message.removeprefix(_SHOULD)}"
            problems[problems.index(same)] = Problem(same.line, same.where, merged)
    return problems


def _parse(text: str, path: Path) -> tuple[UseCase, dict[KeyPath, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or exc
        opened = getattr(exc, "context_mark", None)
        context = getattr(exc, "context", None)
        if context and opened is not None and mark is not None and opened.line != mark.line:
            problem = f"{problem}; {context} that started on line {opened.line + 1}"
        raise UseCaseError(path, [Problem(mark.line + 1 if mark else None, "",
                                          f"not valid YAML ({problem})")]) from None
    finally:
        loader.dispose()
    if node is None or not isinstance(data, dict):
        raise UseCaseError(path, [Problem(1, "", "a use case is a YAML mapping")])
    lines = _line_index(node)
    try:
        return UseCase.model_validate(data), lines
    except ValidationError as exc:
        raise UseCaseError(path, _problems(exc, lines)) from None


def parse_use_case(text: str, path: Path) -> UseCase:
    return _parse(text, path)[0]


def _load(path: Path) -> tuple[UseCase, dict[KeyPath, int]]:
    path = Path(path)
    use_case, lines = _parse(path.read_text(encoding="utf-8"), path)
    if use_case.name != path.stem:
        raise UseCaseError(path, [Problem(lines.get(("name",), 1), "name",
                                          f"{use_case.name!r} must match the file name "
                                          f"{path.stem!r}")])
    return use_case, lines


def load_use_case(path: Path) -> UseCase:
    return _load(path)[0]


def load_use_cases(dirs: tuple[Path, ...] | list[Path]) -> list[UseCase]:
    found: dict[str, UseCase] = {}
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.yaml")):
            use_case, lines = _load(path)
            if use_case.name in found:
                raise UseCaseError(path, [Problem(lines.get(("name",), 1), "name",
                                                  f"a use case named {use_case.name!r} is "
                                                  "already defined in another file")])
            found[use_case.name] = use_case
    return list(found.values())
