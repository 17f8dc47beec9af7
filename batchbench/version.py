"""What this batchbench is: its version, its name on PyPI, and the results schema it writes."""

__version__ = "0.1.0"
DISTRIBUTION = "keras-batchbench"  # the name on PyPI (PyPI's "batchbench" is another project)
RESULTS_SCHEMA_VERSION = 2
