"""Bring your own network: QONNX models to cimstack bundles.

- :mod:`cimstack.importer.qonnx_import` reads a QONNX file with the ``qonnx`` package
  and builds a bundle; it needs neither torch nor Brevitas. Its parts: the walk over
  the graph (:mod:`.walk`), node names and errors (:mod:`.nodes`), the offset folding
  and bipolar thresholds (:mod:`.integers`), layers on the analog macro
  (:mod:`.analog_map`);
- :mod:`cimstack.importer.brevitas_export` exports a Brevitas module to QONNX and
  imports it (:func:`cimstack.compile`);
- :mod:`cimstack.importer.cli` is the ``cimstack import`` command;
- :mod:`cimstack.importer.nir_import` reads a NIR graph (snnTorch, Norse, Sinabs, ...)
  into an integer spiking network for the event core; :mod:`.nir_cli` is
  ``cimstack snn import`` (docs/nir.md).

The supported graphs, the integer semantics and a worked example: docs/models.md.
"""
