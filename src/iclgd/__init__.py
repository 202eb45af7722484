"""iclgd: how pretrained language models learn in context (ICL vs GD, kernel regression, label relationships)."""

__version__ = "0.1.0"
