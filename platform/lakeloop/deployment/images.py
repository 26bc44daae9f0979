"""A serving image per model version (``serving.image: per_version``): the shared serving
image with one version's model files baked in, tagged with the model's name and version and
labelled (OCI annotations) with what it was made from, so that a pod needs no model storage
and an image found on a cluster says which run, data and commit it serves.

Built with the first builder on PATH (buildah, podman or docker; ``LAKELOOP_IMAGE_BUILDER``
names one), pushed only when ``LAKELOOP_IMAGE_REGISTRY`` names a registry.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MODEL_DIR = "/models"  # where the model files are in a per-version image
MODEL_FILES = ("model.ubj", "model.onnx")
IMAGE_TAG = "serving_image"  # the model version's tag: the image built for it
BUILDERS = ("buildah", "podman", "docker")
# host[:port][/namespace...], lower case, as registries name them; nothing a shell or a
# Dockerfile could read as more than a name
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?"
                       r"(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


class ImageError(RuntimeError):
    """An image that cannot be named, built or pushed; the message says what to do."""


@dataclass(frozen=True)
class Built:
    ref: str
    image_id: str
    labels: dict[str, str]
    seconds: float
    pushed: bool


def image_ref(registry: str, model_name: str, version: str) -> str:
    """``<registry>/lakeloop-model-<name>:v<version>``; ``localhost/...`` without one (the
    builders' name for an image that exists only here)."""
    registry = registry.strip().rstrip("/")
    if registry and not _REGISTRY.match(registry):
        raise ImageError(f"LAKELOOP_IMAGE_REGISTRY={registry!r} is not a registry name "
                         "(host[:port][/path], lower case)")
    if not re.fullmatch(r"[0-9]+", str(version)):
        raise ImageError(f"model version {version!r} is not a number")
    repository = "lakeloop-model-" + re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")
    return f"{registry or 'localhost'}/{repository}:v{version}"


def labels(model_name: str, version: str, tags: dict[str, str], run_id: str, base: str,
           created: dt.datetime | None = None) -> dict[str, str]:
    """OCI annotations and Lakeloop's own: what the image serves and what that came from."""
    created = created or dt.datetime.now(dt.UTC)
    out = {
        "org.opencontainers.image.title": f"{model_name} v{version}",
        "org.opencontainers.image.version": str(version),
        "org.opencontainers.image.created": created.isoformat(timespec="seconds"),
        "org.opencontainers.image.base.name": base,
        "org.opencontainers.image.description": "Lakeloop serving image with one registered "
                                                "model version baked in",
        "io.lakeloop.model.name": model_name,
        "io.lakeloop.model.version": str(version),
        "io.lakeloop.mlflow.run_id": run_id,
    }
    # what the version and its run recorded about their inputs (``tags``: both, merged)
    for tag, label in (("model_sha256", "io.lakeloop.model.sha256"),
                       ("training_set_version", "io.lakeloop.training_set.version"),
                       ("lakeloop.source_versions", "io.lakeloop.data.delta_versions"),
                       ("lakeloop.snapshots_sha256", "io.lakeloop.data.snapshots_sha256"),
                       ("feature_service", "io.lakeloop.feature_service"),
                       ("lakeloop.git_commit", "org.opencontainers.image.revision"),
                       ("onnx_max_abs_diff", "io.lakeloop.onnx.max_abs_diff")):
        if tags.get(tag):
            out[label] = str(tags[tag])
    return out


def dockerfile(base: str, image_labels: dict[str, str], files: list[str]) -> str:
    """FROM the shared serving image, the labels, the model files (read-only, root's)."""
    lines = [f"FROM {base}"]
    lines += [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in sorted(image_labels.items())]
    lines += [f"COPY model/{name} {MODEL_DIR}/{name}" for name in files]
    return "\n".join(lines) + "\n"


def write_context(directory: Path, model_dir: Path, base: str,
                  image_labels: dict[str, str]) -> Path:
    """A build context: the Dockerfile and the model's files (the booster, and the ONNX
    export when the parity gate wrote one)."""
    files = [name for name in MODEL_FILES if (model_dir / name).is_file()]
    if "model.ubj" not in files:
        raise ImageError(f"{model_dir} holds no model.ubj")
    (directory / "model").mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copyfile(model_dir / name, directory / "model" / name)
    (directory / "Dockerfile").write_text(dockerfile(base, image_labels, files))
    return directory


def builder(name: str = "") -> str:
    """The image builder to use: ``name``, or the first of BUILDERS on PATH."""
    if name and name not in BUILDERS:
        raise ImageError(f"LAKELOOP_IMAGE_BUILDER={name!r}: one of {', '.join(BUILDERS)}")
    for candidate in (name,) if name else BUILDERS:
        if shutil.which(candidate):
            return candidate
    raise ImageError(f"no image builder found ({name or ', '.join(BUILDERS)} not on PATH): "
                     "install buildah (`make images` does) or run where docker is")


def _run(args: list[str], what: str, timeout: float = 1800) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ImageError(f"{what} took over {timeout:.0f}s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise ImageError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def build(model_dir: Path, ref: str, base: str, image_labels: dict[str, str],
          tool: str = "", push: bool = False) -> Built:
    """Build ``ref`` from ``base`` with the model files of ``model_dir`` (the base must be
    present locally or pullable), then push it when asked."""
    tool = builder(tool)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lakeloop-image-") as tmp:
        context = write_context(Path(tmp), model_dir, base, image_labels)
        if tool == "buildah":
            # chroot isolation: no daemon and no user namespaces needed (CI runners, VMs)
            args = ["buildah", "bud", "--isolation", "chroot", "--layers"]
        else:
            args = [tool, "build"]
        _run([*args, "-t", ref, "-f", str(context / "Dockerfile"), str(context)],
             f"building {ref} with {tool}")
    seconds = time.perf_counter() - started
    image_id, _ = inspect(ref, tool)
    if push:
        _run([tool, "push", ref], f"pushing {ref}")
    return Built(ref, image_id, image_labels, seconds, push)


def inspect(ref: str, tool: str = "") -> tuple[str, dict[str, str]]:
    """A built image's id and labels, as buildah, podman or docker report them."""
    tool = builder(tool)
    if tool == "buildah":
        record = json.loads(_run(["buildah", "inspect", "--type", "image", ref],
                                 f"inspecting {ref}"))
        config = (record.get("OCIv1") or {}).get("config", {})
        return str(record.get("FromImageID", "")), dict(config.get("Labels") or {})
    [record] = json.loads(_run([tool, "image", "inspect", ref], f"inspecting {ref}"))
    return str(record.get("Id", "")), dict(record.get("Config", {}).get("Labels") or {})


def versions_to_build(challenger, champion) -> list[str]:
    """The challenger's version, and the champion's when it has no image yet (the canary
    renders both predictors; one promoted before per_version was set has none) and is not
    the same version. Both: registry model versions, or None."""
    if challenger is None:
        return []
    out = [str(challenger.version)]
    if champion is not None and str(champion.version) not in out \
            and not champion.tags.get(IMAGE_TAG):
        out.append(str(champion.version))
    return out


def build_version_image(mlflow, serving, use_case, version: str) -> Built:
    """Build (and push, with a registry) ``version``'s image from the registered model's
    files, and record it on the version, where rendering a SeldonDeployment finds it."""
    from lakeloop.deployment.runtime import model_files

    client = mlflow.client()
    model_dir, _ = model_files(mlflow, use_case.name, version)
    mv = client.get_model_version(use_case.name, version)
    tags = {**client.get_run(mv.run_id).data.tags, **mv.tags}
    ref = image_ref(serving.image_registry, use_case.name, version)
    built = build(model_dir, ref, serving.image,
                  labels(use_case.name, version, tags, mv.run_id, serving.image),
                  serving.image_builder, push=bool(serving.image_registry.strip()))
    client.set_model_version_tag(use_case.name, version, IMAGE_TAG, json.dumps(
        {"ref": ref, "image_id": built.image_id, "pushed": built.pushed}))
    return built
