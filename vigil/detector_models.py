"""Names of detector models in the Triton repository: a camera's fine-tune of a base model is `<base>__<name>`
(e.g. `yolox_nano__car-park`). One place for the convention that adaptation writes and infer and the stack read."""

from __future__ import annotations

NAME_SEPARATOR = "__"


def adapted_name(base: str, name: str) -> str:
    return f"{base}{NAME_SEPARATOR}{name}"


def base_of(model: str) -> str:
    """The base model of an adapted one (a base model is its own base)."""
    return model.split(NAME_SEPARATOR, 1)[0]


def is_adapted(model: str) -> bool:
    return NAME_SEPARATOR in model
