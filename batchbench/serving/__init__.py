"""`batchbench serving`: dynamic batching under real load. The controller's side, pure Python
(no TensorFlow): the options, the rate search, the simulator, serving.csv, the summary and the
files servers read. The batcher and the load generator run in the worker (worker/serving.py)."""
