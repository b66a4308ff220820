"""optimum-quanto's pure-torch unpack for its 2- and 4-bit weights, for the tests' processes: the
test session's (tests/conftest.py) and pytest runs a test starts in a directory of its own, which
take this file as their conftest.py (tests/e2e/test_scaling_gate.py: its xdist workers)."""

import torch


def use_torch_unpack() -> None:
    """optimum-quanto unpacks its 2- and 4-bit weights on CPU with a C++ kernel it compiles with
    ninja into its own site-packages folder at first use (measured: 40 s of a fresh venv's first
    test_backends run, 70 s of its setup, the rest of CI's 135 s contention); its pure-torch
    kernel (``quanto::unpack``'s "default": the same shifts and masks) gives the same bytes. Tests
    use the torch kernel, as they use gptqmodel's Python packing (tests/conftest.py)."""
    try:
        from optimum.quanto.library.extensions.cpp import ext
    except ImportError:  # another quanto layout: it compiles as it always did
        return
    import types

    def unpack(packed: torch.Tensor, bits: int) -> torch.Tensor:  # quanto's default kernel (library/unpack.py)
        shares = [(packed & (2 ** (bits * (i + 1)) - 1)) >> (bits * i) for i in range(8 // bits)]
        return torch.cat(shares).to(torch.uint8)

    ext._lib = types.SimpleNamespace(unpack=unpack)

