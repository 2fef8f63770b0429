"""tamis: recent research methods in recommendation, LLM post-training and
virtual screening, behind one CLI and one library."""

from importlib import metadata

try:
    __version__ = metadata.version("tamis")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
