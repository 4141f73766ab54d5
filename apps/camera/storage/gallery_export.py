"""A gallery written out for other systems: ``gallery.json`` and the template crops as JPEG files.

    OUT/gallery.json                 {"format": "dgnet-edge-gallery-export", "version": 1, "feature_dim": D,
                                      "identities": [{"id", "name", "created", "updated",
                                                      "templates": [{"id", "kind", "camera", "time", "source",
                                                                     "enrolment", "crop", "feature": [D floats]}],
                                                      "sightings": [{"camera", "track", "first", "last"}]}]}
    OUT/crops/<identity>/<template>.jpg

The folder is built beside OUT and renamed into place, so OUT is either the old export or the new
one, never a mix. An existing OUT is replaced only if it is empty or an earlier gallery export, and
never when it holds the gallery file itself.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from dgnet_edge.apps.camera.storage.gallery_base import GalleryBase
from dgnet_edge.errors import OutputPathError
from dgnet_edge.paths import prepare_output_dir, refuse_overwriting_inputs

FORMAT = "dgnet-edge-gallery-export"
VERSION = 1
INDEX = "gallery.json"


def _replaceable(out: Path) -> bool:
    if not out.exists():
        return True
    if not out.is_dir():
        return False
    names = os.listdir(out)
    if not names:
        return True
    try:
        return json.loads((out / INDEX).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def export_gallery(gallery: GalleryBase, out: str | Path) -> dict[str, int]:
    """Write ``gallery`` to folder ``out``; counts of identities, templates and crops written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"output folder {out} is a file, not a folder: choose another path")
    refuse_overwriting_inputs(out, [gallery.spec] if isinstance(gallery.spec, Path) else [], "output folder")
    if not _replaceable(out):
        raise OutputPathError(f"output folder {out} exists and is not a gallery export: choose another path")
    parent = prepare_output_dir(out.parent, f"folder of {out}")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes 0700 folders
        with gallery.snapshot():
            counts = _write(gallery, staging)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return counts


def _write(gallery: GalleryBase, folder: Path) -> dict[str, int]:
    identities, n_templates, n_crops = [], 0, 0
    for identity in gallery.identities():
        features = gallery.template_features(identity.id)
        templates = []
        for template, feature in zip(gallery.templates(identity.id), features):
            crop = None
            jpeg = gallery.thumbnail(template.id) if template.has_thumbnail else None
            if jpeg is not None:
                crop = f"crops/{identity.id}/{template.id}.jpg"
                (folder / crop).parent.mkdir(parents=True, exist_ok=True)
                (folder / crop).write_bytes(jpeg)
                n_crops += 1
            templates.append({"id": template.id, "kind": template.kind, "camera": template.camera,
                              "time": template.time, "source": template.source, "enrolment": template.enrolment,
                              "crop": crop, "feature": [round(float(v), 6) for v in feature]})
        n_templates += len(templates)
        sightings = [{"camera": s.camera, "track": s.track, "first": s.first, "last": s.last}
                     for s in gallery.sightings(identity.id)]
        identities.append({"id": identity.id, "name": identity.name, "created": identity.created,
                           "updated": identity.updated, "templates": templates, "sightings": sightings})
    body = {"format": FORMAT, "version": VERSION, "feature_dim": gallery.feature_dim, "identities": identities}
    (folder / INDEX).write_text(json.dumps(body, indent=1) + "\n")
    return {"identities": len(identities), "templates": n_templates, "crops": n_crops}
