"""Paper 2: *Weakly Informed Audio Source Separation* (WASPAA 2019).

``model``: the attention-based informed separator (and the BL1 / BL2 baselines);
``side_info``: the artificial side information of section 4.3 (M1, M2, A1, A2, A3.1, A3.2) with
its true alignment to the mixture frames, and measures of the learned attention's alignment;
``configurations``: the experiment registry (BL1 ... A3.2: model variant, side-information kind);
``data``: 8.192 s fragments, the 513 x 256 STFT, splits and augmentation; ``remix``: remixed
training examples and gated evaluation fragments; ``references``: the reference levels a model
must beat; ``train``: resumable training with the best checkpoint by validation loss;
``evaluate``: BSS Eval, PES/EPS and alignment rows; ``study_data`` and ``study``: the study's data
and runs; ``tables``, ``captions``, ``figure2``, ``figure3`` and ``plots``: what notebooks 07 and
08 publish (they call ``study`` and ``plots``).
"""

from dap.wiass.model import (  # noqa: F401
    PAPER_HIDDEN,
    PAPER_N_FREQ,
    VARIANTS,
    InformedSeparator,
    ones_side_info,
)
from dap.wiass.side_info import (  # noqa: F401
    DEFAULT_LENGTH,
    DEFAULT_SHIFT,
    KINDS,
    PAD_VALUE,
    PAPER_ACTIVITY_THRESHOLD,
    SideInfo,
    activity_from_target,
    alignment_accuracy,
    alignment_matrix,
    binarize,
    make_side_info,
    segment_accuracy,
    stack_side_info,
    total_magnitude,
)
