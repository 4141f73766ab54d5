"""The synthetic pedestrian world: a procedural renderer written in Market-1501 layout.

``write_world(root, WorldSpec(...))`` renders a whole world; ``render_image(identity, camera, seed)``
renders one picture, with ``world_identity(seed, pid)`` and ``make_camera(seed, index)`` giving the
identities and cameras of the world made with ``seed`` (or ``sample_identity(rng)`` any person).
"""

from dgnet_edge.data.synth.identity import Identity, sample_identity
from dgnet_edge.data.synth.render import SynthImage, render_image
from dgnet_edge.data.synth.scene import Camera, make_camera
from dgnet_edge.data.synth.world import WorldSpec, WorldSummary, world_identity, write_world

__all__ = [
    "Camera",
    "Identity",
    "SynthImage",
    "WorldSpec",
    "WorldSummary",
    "make_camera",
    "render_image",
    "sample_identity",
    "world_identity",
    "write_world",
]
