"""dap: a reproducible companion for two audio papers.

1. *On the Design of Deep Priors for Unsupervised Audio Restoration* (Interspeech 2021);
2. *Weakly Informed Audio Source Separation* (WASPAA 2019).

Modules (dependencies flow downwards): ``audio`` <- ``data``; ``priors`` <- ``fit`` <- ``tasks``
<- ``experiments`` <- ``report``; ``metrics``, ``paper``, ``profiles`` and ``results`` stand alone.
"""

__version__ = "0.1.0"

from dap.errors import AudioError, DapError, DatasetError, FitDiverged  # noqa: E402,F401
