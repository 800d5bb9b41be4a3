"""Read Rasa NLU YAML files into (text, intent, file, line) examples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


class DataError(ValueError):
    """A training or test file cannot be read; `where` is "file:line" (or the file alone)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class Example:
    """One example message with the intent it stands for and where it is written."""

    text: str
    intent: str
    path: Path
    line: int


def read_examples(path: Path) -> list[Example]:
    """Read every example of one Rasa NLU file, with its line number."""
    try:
        source = path.read_text(encoding="utf-8")
        doc = yaml.compose(source)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise DataError(where, f"YAML does not parse: {err.problem or err.context}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DataError(str(path), f"cannot read: {err}") from None
    if doc is None:
        return []
    data = yaml.safe_load(source)
    examples: list[Example] = []
    nlu_node = next((v for k, v in doc.value if k.value == "nlu"), None) if isinstance(doc, yaml.MappingNode) else None
    if nlu_node is None or not isinstance(data.get("nlu"), list):
        raise DataError(str(path), "no 'nlu:' list")
    for node, item in zip(nlu_node.value, data["nlu"]):
        if not isinstance(item, dict) or "intent" not in item:
            continue
        block = next((v for k, v in node.value if k.value == "examples"), None)
        if block is None:
            raise DataError(f"{path}:{node.start_mark.line + 1}", f"intent {item['intent']} has no examples")
        if not isinstance(block, yaml.ScalarNode):
            raise DataError(f"{path}:{block.start_mark.line + 1}", f"the examples of {item['intent']} must be a block: 'examples: |' and one '- ' line each")
        first_line = block.start_mark.line + (1 if block.style == "|" else 0)
        for offset, raw in enumerate(str(item["examples"]).splitlines()):
            stripped = raw.strip()
            if stripped.startswith("- "):
                examples.append(Example(stripped[2:].strip(), str(item["intent"]), path, first_line + offset + 1))
    return examples


def read_dir(directory: Path) -> list[Example]:
    """Read every *.yml file in a directory, in name order."""
    return [e for path in sorted(directory.glob("*.yml")) for e in read_examples(path)]
