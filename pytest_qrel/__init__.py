"""pytest-qrel: gate quantized LLM checkpoints on reliability, measured from logits."""

from .variants import effective_bits, total_model_bits

__version__ = "0.1.0"
__all__ = ["effective_bits", "total_model_bits", "__version__"]
