"""The model registry: a directory of `<version>/model.onnx` + `meta.json`, and `CURRENT` naming the one to serve.

The version is the content hash of `model.onnx`, so a version names exactly one set of weights, a re-fit that
gives the same weights publishes nothing new, and a file changed on disk is detected when it is loaded.
Publishing writes the version's directory, then swaps `CURRENT` atomically: a reader sees the old or the new model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decision.scoring import ModelCard
from liqbot.data import REPO
from liqbot.errors import LiqbotError
from training.onnx_model import ModelLoadError, OnnxModel

__all__ = ["DEFAULT_REGISTRY", "SCENARIO_REGISTRY", "ModelRegistry", "content_version"]

DEFAULT_REGISTRY = REPO / "training" / "models"
SCENARIO_REGISTRY = REPO / "training" / "scenario_models"  # SYNTHETIC scenario models only (`meta["synthetic"]`)
_MODEL, _META, _CURRENT = "model.onnx", "meta.json", "CURRENT"


def content_version(model: bytes) -> str:
    return hashlib.sha256(model).hexdigest()[:16]


@dataclass(frozen=True)
class ModelRegistry:
    root: Path = DEFAULT_REGISTRY

    def publish(self, model: bytes, meta: dict[str, Any]) -> str:
        """Store a model with its metadata (the version is added to it) and make it CURRENT; returns the version."""
        if meta.get("synthetic") and self.root.resolve() == DEFAULT_REGISTRY.resolve():
            raise LiqbotError(f"a synthetic scenario model must never be CURRENT in {DEFAULT_REGISTRY}, the registry "
                              f"agents serve by default: publish it to {SCENARIO_REGISTRY} (the default of "
                              "`liqbot train --scenario wick`) or another --models directory")
        version = content_version(model)
        target = self.root / version
        if not target.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
            staging.chmod(0o755)  # mkdtemp makes it private; a model is for every agent to read
            (staging / _MODEL).write_bytes(model)
            stored = {"version": version, **{k: v for k, v in meta.items() if k != "version"}}
            (staging / _META).write_text(json.dumps(stored, indent=2) + "\n")
            try:
                staging.rename(target)
            except OSError:
                if not (target / _MODEL).exists():
                    raise
                shutil.rmtree(staging)  # another process published the same bytes meanwhile: same version
        self._write_current(version)
        return version

    def _write_current(self, version: str) -> None:
        tmp = self.root / f".{_CURRENT}.tmp"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / _CURRENT)

    def current(self) -> str:
        path = self.root / _CURRENT
        if not path.exists():
            raise ModelLoadError(f"no model in {self.root} ({_CURRENT} is missing): run `liqbot train`")
        return path.read_text().strip()

    def versions(self) -> list[str]:
        """Every published version, by name."""
        return sorted(p.name for p in self.root.glob("*") if (p / _MODEL).exists()) if self.root.is_dir() else []

    def meta(self, version: str | None = None) -> dict[str, Any]:
        version = version or self.current()
        if not (self.root / version).is_dir():
            raise ModelLoadError(f"no model version {version} in {self.root}; it holds "
                                 f"{', '.join(self.versions()) or 'none'} (--models DIR names another registry)")
        path = self.root / version / _META
        try:
            meta: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{path}: unreadable model metadata ({exc}); rebuild it with `liqbot train`") from exc
        return meta

    def load(self, version: str | None = None) -> OnnxModel:
        """The model of `version` (default CURRENT), checked against its content hash and metadata."""
        version = version or self.current()
        meta, path = self.meta(version), self.root / version / _MODEL
        try:
            model = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"{path}: cannot read the model ({exc}); rebuild it with `liqbot train`") from exc
        if content_version(model) != version or meta.get("version") != version:
            raise ModelLoadError(f"{path} is corrupt: its content hash is {content_version(model)}, the registry says "
                                 f"{version}; rebuild it with `liqbot train`")
        try:
            card = ModelCard(version=version, feature_spec=meta["feature_spec"], arm_grid=meta["arm_grid"],
                             labels=meta["labels"], inputs=tuple(meta["inputs"]))
            rows = len(meta["arms"])
        except (KeyError, TypeError) as exc:
            raise ModelLoadError(f"{self.root / version / _META}: missing field {exc}; rebuild it") from exc
        return OnnxModel(model, card, rows, str(path))
