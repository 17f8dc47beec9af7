"""Everything that imports TensorFlow/Keras lives in this package and runs only in worker
processes: the controller talks to it through batchbench.runner."""
