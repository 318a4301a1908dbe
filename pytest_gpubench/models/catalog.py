"""The shipped model catalog: load and validate it once, resolve names, parse each config once.

A model is named by catalog id ('openai/gpt-oss-20b'), alias ('gpt-oss:20b'), a local
``config.json`` (or the folder holding one), a Hugging Face cache folder
(``.../models--org--name``, its latest snapshot is used), or an 'org/name' already in the
local Hugging Face cache. Anything else is an error that suggests the closest catalog ids.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import formats
from pytest_gpubench.models.spec import ModelSpec, spec_from_config

_REQUIRED = ("id", "aliases", "family", "kind", "license", "config", "default_formats")
_KINDS = ("llm", "vlm", "image_generation", "object_detection")


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    aliases: tuple[str, ...]
    family: str
    kind: str
    license: str
    config: str | None
    config_source: str
    default_formats: tuple[str, ...]
    published_params_b: float | None
    published_active_params_b: float | None
    params_source: str
    params_config_derived: int | None
    params_hf_safetensors_total: int | None
    components: tuple[tuple[str, int], ...] = ()
    unconfirmed: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def short_name(self) -> str:
        return self.id.split("/")[-1]

    @property
    def default_quant(self) -> str:
        """The first listed format the estimator knows (formats such as 'int4/nvfp4 (nunchaku)'
        are kept as documentation only)."""
        for name in self.default_formats:
            fmt = formats.resolve(name)
            if fmt is not None:
                return fmt.name
        return "bf16"


def _configs_dir() -> Path:
    return Path(str(resources.files("pytest_gpubench.models").joinpath("catalog", "configs")))


def catalog_config_path(model_id: str) -> Path:
    """The catalog's config file for ``model_id`` (``org/name`` -> ``org--name.json``)."""
    return _configs_dir() / f"{model_id.lower().replace('/', '--')}.json"


def catalog_config(model_id: str) -> dict[str, Any]:
    """The model's config as shipped with the catalog (its ``_`` notes dropped); nothing is
    fetched."""
    path = catalog_config_path(model_id)
    if not path.is_file():
        known = sorted(p.stem.replace("--", "/") for p in _configs_dir().glob("*.json"))
        raise GpubenchError(
            f"no catalog config for model {model_id!r} (looked for {path.name}); "
            f"known: {', '.join(known)}"
        )
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _entry(raw: dict[str, Any], label: str) -> CatalogEntry:
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise GpubenchError(f"{label}: entry {raw.get('id', '?')!r} lacks {', '.join(missing)}")
    if raw["kind"] not in _KINDS:
        raise GpubenchError(
            f"{label}: entry {raw['id']!r} has kind {raw['kind']!r}; expected one of {_KINDS}"
        )
    if raw["config"] is not None and not (_configs_dir() / raw["config"]).is_file():
        raise GpubenchError(f"{label}: entry {raw['id']!r} names missing config {raw['config']}")
    components = tuple(
        (str(c["name"]), round(float(c["params_b"]) * 1e9))
        for c in raw.get("components") or ()
        if c.get("params_b") is not None
    )
    return CatalogEntry(
        id=str(raw["id"]),
        aliases=tuple(str(a) for a in raw["aliases"]),
        family=str(raw["family"]),
        kind=str(raw["kind"]),
        license=str(raw["license"]),
        config=raw["config"],
        config_source=str(raw.get("config_source", "")),
        default_formats=tuple(str(f) for f in raw["default_formats"]),
        published_params_b=raw.get("published_params_b"),
        published_active_params_b=raw.get("published_active_params_b"),
        params_source=str(raw.get("params_source", "")),
        params_config_derived=raw.get("params_config_derived"),
        params_hf_safetensors_total=raw.get("params_hf_safetensors_total"),
        components=components,
        unconfirmed=tuple(raw.get("unconfirmed") or ()),
        raw=raw,
    )


@lru_cache(maxsize=1)
def load_catalog() -> tuple[CatalogEntry, ...]:
    label = "pytest_gpubench/models/catalog/catalog.json"
    text = resources.files("pytest_gpubench.models").joinpath("catalog", "catalog.json").read_text()
    entries = tuple(_entry(raw, label) for raw in json.loads(text))
    seen: dict[str, str] = {}
    for e in entries:
        for key in (e.id, *e.aliases):
            k = key.lower()
            if k in seen and seen[k] != e.id:
                raise GpubenchError(f"{label}: name {key!r} used by {seen[k]} and {e.id}")
            seen[k] = e.id
    return entries


@lru_cache(maxsize=1)
def _index() -> dict[str, CatalogEntry]:
    return {key.lower(): e for e in load_catalog() for key in (e.id, *e.aliases)}


def catalog_ids() -> list[str]:
    return [e.id for e in load_catalog()]


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # as shown in reasons and tables
    config_path: Path
    entry: CatalogEntry | None


def _hf_cache_roots() -> list[Path]:
    """Where Hugging Face caches may be, read from the environment at each call (the
    ``huggingface_hub`` constants are read once, when it is first imported)."""
    roots = []
    if os.environ.get("HF_HUB_CACHE"):
        roots.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        roots.append(Path(os.environ["HF_HOME"]) / "hub")
    roots.append(Path.home() / ".cache" / "huggingface" / "hub")
    return roots


def hf_cached_file(repo_id: str, filename: str, cache_dir: Path | None = None) -> Path | None:
    """``filename`` of ``repo_id`` in a local Hugging Face cache (``cache_dir``, else each of
    ``_hf_cache_roots``), through ``huggingface_hub``: the snapshot ``refs/main`` names, else
    the newest snapshot that has the file. Nothing is downloaded."""
    from huggingface_hub import CacheNotFound, scan_cache_dir, try_to_load_from_cache

    for root in [cache_dir] if cache_dir is not None else _hf_cache_roots():
        found = try_to_load_from_cache(repo_id, filename, cache_dir=root)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
        try:
            repos = [r for r in scan_cache_dir(root).repos if r.repo_id == repo_id]
        except CacheNotFound:
            continue
        revisions = sorted(
            (rev for repo in repos for rev in repo.revisions),
            key=lambda rev: rev.last_modified,
            reverse=True,
        )
        for rev in revisions:  # no refs/main: a revision fetched by its hash
            if (rev.snapshot_path / filename).is_file():
                return rev.snapshot_path / filename
    return None


def _repo_id(folder: Path) -> str | None:
    """``org/name`` of a cache folder ``models--org--name``."""
    if not folder.name.startswith("models--"):
        return None
    return folder.name.removeprefix("models--").replace("--", "/")


def _local_config(name: str) -> Path | None:
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / "config.json").is_file():
            return path / "config.json"
        repo_id = _repo_id(path)
        if repo_id and (path / "snapshots").is_dir():
            return hf_cached_file(repo_id, "config.json", cache_dir=path.parent)
        return None
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return hf_cached_file(name, "config.json")
    return None


def unknown_model_message(name: str) -> str:
    keys = [k for e in load_catalog() for k in (e.id, *e.aliases)]
    lowered = {k.lower(): k for k in keys}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.5)
    ids: list[str] = []
    for c in close:
        cid = _index()[c].id
        if cid not in ids:
            ids.append(cid)
    hint = f" Did you mean {', '.join(ids[:3])}?" if ids else ""
    return (
        f"unknown model {name!r}.{hint} Name a catalog id or alias (`pytest-gpubench fit "
        "--matrix` lists them), a local config.json or model folder, or a Hugging Face cache "
        "folder (models--org--name)."
    )


def resolve_model(name: str) -> ResolvedModel:
    if not isinstance(name, str) or not name.strip():
        raise GpubenchError(f"model must be a non-empty string, got {name!r}")
    entry = _index().get(name.strip().lower())
    if entry is not None:
        if entry.config is None:
            raise GpubenchError(f"catalog model {entry.id} has no config file; use needs_vram")
        return ResolvedModel(entry.short_name, _configs_dir() / entry.config, entry)
    local = _local_config(name)
    if local is not None:
        label = local.parent.name if local.name == "config.json" else local.stem
        if local.parent.parent.name == "snapshots":
            label = local.parent.parent.parent.name.removeprefix("models--").replace("--", "/")
        return ResolvedModel(label, local, None)
    raise GpubenchError(unknown_model_message(name))


@lru_cache(maxsize=256)
def _parse(path: str, mtime: float) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GpubenchError(
            f"{path}: not a JSON model config ({exc}); name a config.json, a model folder, "
            "a catalog id, or a .gguf file"
        ) from None
    except RecursionError:
        raise GpubenchError(
            f"{path}: not a JSON model config (nested too deeply to read); name a "
            "config.json, a model folder, a catalog id, or a .gguf file"
        ) from None
    except OSError as exc:
        raise GpubenchError(f"{path}: cannot read the model config ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise GpubenchError(f"{path}: a model config must be a JSON object")
    return data


@lru_cache(maxsize=256)
def _spec(path: str, mtime: float, name: str, entry: CatalogEntry | None) -> ModelSpec:
    data = _parse(path, mtime)
    components = dict(entry.components) if entry else None
    if components is not None and "text_encoder" in components and "text_encoder" in data:
        enc = data["text_encoder"]
        if enc.get("num_attention_heads") or (enc.get("_derived_not_published") or {}):
            components.pop("text_encoder")  # computed from its config instead
    return spec_from_config(data, path, name, components, entry.kind if entry else None)


def load_spec(name: str) -> tuple[ModelSpec, ResolvedModel]:
    """The ModelSpec for a model name or path; each config is parsed once per process."""
    resolved = resolve_model(name)
    path = resolved.config_path
    mtime = path.stat().st_mtime
    return _spec(str(path), mtime, resolved.name, resolved.entry), resolved
