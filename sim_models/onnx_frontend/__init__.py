"""ONNX front end: run int8-quantized ONNX models (onnxruntime's QOperator and QDQ formats)
on knpu, bit-exact with onnxruntime's CPU kernels.

>>> from sim_models.onnx_frontend import import_model, execute
>>> graph = import_model("model.onnx")                        # doctest: +SKIP
>>> run = execute(graph, {"input": x}, NPUConfig())            # doctest: +SKIP

See :mod:`.graph` (import), :mod:`.lower` (zero points, groups, dilation onto the
compiler), :mod:`.host_ops` (what still runs on the host) and :mod:`.executor`.
"""

from .executor import Execution, execute, functional_runner
from .graph import Graph, OnnxImportError, import_model

__all__ = ["import_model", "execute", "Execution", "Graph", "OnnxImportError",
           "functional_runner"]
