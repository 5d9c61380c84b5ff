"""bazkhord: Persian customer-feedback text mining (sentiment, aspects with their polarity, root-cause themes).

The installed package has one room per job; imports run one way, and `tests/test_layers.py` checks it:

    bazkhord.data        records, readers, the normaliser, taxonomies, errors
    bazkhord.model       the predictors (TF-IDF, transformer, themes) and their model folders; metrics
    bazkhord.training    config + data -> a model folder
    bazkhord.evaluation  scores a model folder on labelled data
    bazkhord.service     the HTTP service: settings, store, routes
    bazkhord.cli         the `bazkhord` command; nothing imports it

Benchmarks live beside the package (`benchmarks/` in the repository), not in it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bazkhord")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
