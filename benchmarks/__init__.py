"""`make bench`: batchbench's figures measured against hand-written Keras (see bench.py)."""
