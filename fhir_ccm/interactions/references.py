"""Finding the references a resource makes."""

from __future__ import annotations

from typing import Any


def references_in(value: Any) -> list[str]:
    """Every ``reference`` string anywhere in a resource (or a list of resources)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if key == "reference" and isinstance(child, str):
                    found.append(child)
                else:
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
    return found
