"""The archives `make image` writes: Docker's manifest.json added beside the OCI index, and the
sizes it prints, checked on a small OCI archive built here."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from localparts import image

LAYER = b"\0" * 300_000 + b"streamtrain"
"""An uncompressed layer that gzip shrinks a lot, so the two sizes differ."""


def _blob(data: bytes) -> tuple[str, bytes]:
    return f"sha256:{hashlib.sha256(data).hexdigest()}", data


def _oci_archive(path: Path, name: str) -> tuple[str, str]:
    """A one-layer OCI archive as `buildah push oci-archive:` writes it; (config, layer) digests."""
    layer_digest, layer = _blob(gzip.compress(LAYER))
    config_digest, config = _blob(json.dumps({"rootfs": {"type": "layers", "diff_ids": [
        f"sha256:{hashlib.sha256(LAYER).hexdigest()}"]}}).encode())
    manifest_digest, manifest = _blob(json.dumps({
        "schemaVersion": 2, "config": {"digest": config_digest, "size": len(config)},
        "layers": [{"digest": layer_digest, "size": len(layer)}]}).encode())
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "digest": manifest_digest, "annotations": {"org.opencontainers.image.ref.name": name}}]})
    with tarfile.open(path, "w") as archive:
        for member, data in [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
                             ("index.json", index.encode())] + [
                (f"blobs/{digest.replace(':', '/')}", data)
                for digest, data in ((layer_digest, layer), (config_digest, config),
                                     (manifest_digest, manifest))]:
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return config_digest, layer_digest


def test_it_should_add_a_docker_manifest_naming_the_same_blobs(tmp_path: Path) -> None:
    archive, name = tmp_path / "image.tar", "ghcr.io/streamtrain/streamtrain-operator:0.1.0"
    config, layer = _oci_archive(archive, name)
    image.add_docker_manifest(archive, name)
    with tarfile.open(archive) as written:
        members = set(written.getnames())
        manifest = json.load(written.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert {"oci-layout", "index.json", "manifest.json"} <= members
    entry = {"Config": f"blobs/{config.replace(':', '/')}", "RepoTags": [name],
             "Layers": [f"blobs/{layer.replace(':', '/')}"]}
    assert manifest == [entry]
    assert {entry["Config"], *entry["Layers"]} <= members


def test_it_should_read_the_archived_image_id_only_from_a_complete_archive(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    assert image.archived_id(archive) is None, "no archive"
    config, _ = _oci_archive(archive, "x:1")
    assert image.archived_id(archive) is None, "manifest.json (written last) missing: not complete"
    image.add_docker_manifest(archive, "x:1")
    assert image.archived_id(archive) == config.removeprefix("sha256:")


def test_it_should_measure_layers_compressed_and_uncompressed(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    _oci_archive(archive, "x:1")
    image.add_docker_manifest(archive, "x:1")
    compressed, uncompressed = image.layer_sizes(archive)
    assert uncompressed == len(LAYER)
    assert compressed == len(gzip.compress(LAYER))


def test_it_should_name_images_after_the_registry_target_and_version() -> None:
    assert image.image_name("operator") == f"{image.REGISTRY}/streamtrain-operator:{image.version()}"
    assert image.archive_path("workload").name == "streamtrain-workload.tar"
