"""The sidecar's JSON Schema (``sidecar.schema.json``, shipped with the package), checked
on every read and write."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema

__all__ = ("SCHEMA_NAME", "SCHEMA_VERSION", "SidecarError", "check", "schema")

SCHEMA_NAME = "schedlab.sidecar"
SCHEMA_VERSION = 1


class SidecarError(ValueError):
    """A sidecar that is unreadable or does not match its schema (one line: where, what)."""


@functools.cache
def schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("sidecar.schema.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema())
    cls.check_schema(schema())
    return cls(schema())


def check(doc: Any, where: str = "sidecar") -> dict[str, Any]:
    """``doc`` unchanged if it matches the schema.

    :raises SidecarError: the first (most relevant) mismatch, named by its JSON path.
    """
    if isinstance(doc, dict) and doc.get("schema_version") not in (None, SCHEMA_VERSION):
        raise SidecarError(
            f"{where}: schema_version {doc.get('schema_version')!r} is not {SCHEMA_VERSION}"
            " (written by another schedlab version)"
        )
    err = jsonschema.exceptions.best_match(_validator().iter_errors(doc))
    if err is not None:
        path = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        raise SidecarError(f"{where}{path}: {err.message}")
    return doc  # type: ignore[no-any-return]
