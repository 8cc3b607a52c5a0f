"""authvision: tell genuine from counterfeit products in e-commerce listing photos."""

from __future__ import annotations

__version__ = "0.1.0"
