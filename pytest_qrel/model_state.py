"""What the store holds with a base model and drops with it: the base's digests and each measure's declared per-model state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .models import LoadedModel
    from .variant_cache import BaseDigests


class ModelState:
    """A measure's state for one base model, declared as torchmetrics' ``add_state`` declares a
    metric's: a dataclass subclass, each field one thing computed once per model, typed, with a
    default and a comment on when it is set. The store makes it with its defaults at the model's
    first ``state()`` of that kind and drops it with the base (``release``), resetting every field."""


S = TypeVar("S", bound=ModelState)


@dataclass
class HeldBase:
    """The base model the store holds and what it keeps with it, all dropped together when
    the store moves to another model (``release``)."""

    name: str  # the model's name (Variant.model)
    loaded: LoadedModel | None  # None: its weights released while a variant is measured (ModelStore.release_base_weights)
    device_type: str  # where it runs ("cpu", "cuda"): part of stored outputs' keys, known without its weights
    digests: BaseDigests | None = None  # computed at the model's first ``digests()``
    states: dict[type[ModelState], ModelState] = field(default_factory=dict)  # made at the first ``state()`` of a kind
