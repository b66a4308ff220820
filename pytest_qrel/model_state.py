"""What the store holds with a base model and drops with it: the base's digests and each measure's declared per-model state."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, TypeVar

from . import options, progress
from .engine import device_for_worker
from .errors import VariantError, one_line

if TYPE_CHECKING:
    from .config import QrelConfig
    from .models import LoadedModel
    from .variant_cache import BaseDigests
    from .variants import Variant

# base weights below this are kept while a variant is measured: reloading them would cost more
# time than the memory saved (every zoo model, under 4 MB); a real checkpoint's are released
RELEASE_BASE_BYTES = 32 << 20


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

    def release_weights(self) -> None:
        """Drop the base's weights (issue 38 item 3) if they are at least ``RELEASE_BASE_BYTES``;
        ``ModelStore.base`` loads them again from disk when they are needed next."""
        if self.loaded is None or sum(t.numel() * t.element_size() for t in self.loaded.model.parameters()) < RELEASE_BASE_BYTES:
            return
        self.loaded = None
        gc.unfreeze()  # frozen when it loaded (ModelStore.hold): its cycles must be collectable
        gc.collect()


def load_held(variant: Variant, config: QrelConfig, errors: dict[str, str],
              load_base: Callable[..., LoadedModel]) -> LoadedModel:
    """``variant``'s base loaded with ``load_base`` (models.load_base, as the store names it); VariantError if it
    cannot be, its message kept in ``errors`` (reported once per model, never retried per variant)."""
    try:
        loaded = load_base(variant.model, variant.source, device_for_worker(config.placement.gpus_per_worker),
                           config.allow_pickle, config.placement)
    except Exception as exc:  # any failure
        message = one_line(exc)
        if not message.startswith(options.MODELS):
            message = f"{options.MODELS}: cannot load {variant.source!r}: {type(exc).__name__}: {message}"
        errors[variant.model] = message
        raise VariantError(message) from None
    progress.name_model(loaded.model, "base")
    return loaded
