"""Question sets: the procedural colour-digit task (`synthetic`) and user data in the same schema (`loader`)."""

from synergy_ray.data.loader import LoadReport, load_user_dataset
from synergy_ray.data.synthetic import (
    FEATURES,
    build_dataset,
    build_splits,
    generate_items,
    make_item,
    render_image,
    save_dataset,
)

__all__ = [
    "FEATURES",
    "LoadReport",
    "build_dataset",
    "build_splits",
    "generate_items",
    "load_user_dataset",
    "make_item",
    "render_image",
    "save_dataset",
]
