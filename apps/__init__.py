"""Applications built on the runtime: camera re-id, gallery, reports."""
