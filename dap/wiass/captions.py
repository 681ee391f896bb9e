"""The parts of paper 2's captions both figures share: data, model and training, deviations."""

from __future__ import annotations

from dap.priors import count_parameters
from dap.wiass.data import N_FREQ
from dap.wiass.model import InformedSeparator
from dap.wiass.references import l1_loss, silence_loss
from dap.wiass.study_data import StudyData
from dap.wiass.train_settings import TrainResult

#: Settings of the paper (section 4), for the deviation list of the captions.
PAPER = {"hidden": 513, "lr": 1e-4, "batch_size": 128, "patience": 100, "copies": 4,
         "gain_db": 2.0, "pitch": 2, "activity_threshold": 0.1}
#: What each profile is for, stated in every caption.
PROFILE_NOTES = {
    "smoke": "smoke profile: a code check (tiny model, a couple of training steps, one test "
             "fragment); the numbers mean nothing",
    "quick": "quick profile: a reduced model (hidden 64) and a fixed budget of 2400 steps per "
             "configuration on a 330-fragment generated corpus (240 / 60 / 30; 30 validation "
             "and 15 test fragments used): the learning curve of docs/wiass.md shows the models' SDR "
             "still rising there (about 8 dB; 1 dB at 600 steps, 10 dB at 4800), so this is a budget "
             "where they separate, not the paper's converged models; ./run_all.sh --plan says what it "
             "costs on this machine",
    "paper": "paper profile: the paper's sizes and protocol (hidden 513, batch 128, lr 1e-4, early "
             "stopping with patience 100); meant for a GPU",
}


def model_summary(p: dict, results: dict[str, TrainResult], data: StudyData | None = None) -> str:
    """One line: model size and the training actually run per configuration (with the best
    validation loss, next to the loss of predicting silence when ``data`` is given)."""
    n_inf = count_parameters(InformedSeparator(N_FREQ, p.hidden, n_layers=p.n_layers))
    n_bl1 = count_parameters(InformedSeparator(N_FREQ, p.hidden, variant="bl1",
                                               n_layers=p.n_layers))
    note = PROFILE_NOTES.get(p.profile, "")
    runs = "; ".join(f"{c}: {r.steps} steps / {r.epochs} epochs, best epoch {r.best_epoch} "
                     f"(val L1 {r.best_val:.5f}), {r.seconds:.0f} s on {r.device}"
                     for c, r in results.items())
    if data is not None:
        runs += (f". Validation L1 of the references: silence {silence_loss(data.valid_set):.5f}, "
                 f"best constant per-frequency mask "
                 f"{l1_loss('constant-mask', data.valid_set, data.constant_mask):.5f} (a model "
                 "near them has not learned to separate)")
    return ((note[0].upper() + note[1:] + ". " if note else "")
            + f"Model: hidden {p.hidden} per direction, {p.n_layers} BiLSTM layers "
            f"({n_inf:,} parameters informed, {n_bl1:,} BL1; the paper's hidden 513 gives 32.2 M). "
            f"Training: {'AdamW' if p.decay == 'decoupled' else 'Adam (L2 decay)'} lr "
            f"{p.lr:g}, weight decay {p.weight_decay:g}, batch "
            f"{p.batch_size}, at most {p.epochs} epochs"
            + (f" / {p.max_steps} steps" if p.max_steps else "")
            + (f", patience {p.patience}" if p.patience else "") + f". Runs: {runs}.")


def deviations(p: dict, source: str) -> list[str]:
    """What differs from the paper under profile ``p`` (docs/wiass.md)."""
    out = []
    if source == "generated":
        out.append("generated stems (Bach chorales rendered with the FluidR3 soundfont: sung "
                   "soprano vs alto, tenor and bass on instruments, gated silences; "
                   "dap.wiass.corpus) instead of MUSDB18 vocals; scores are per 8.192-s fragment, "
                   "not per song; the same models are also scored on the embedded real stems")
    elif source == "embedded":
        out.append("embedded substitute stems (lead guitar of Frets-on-Fire songs, sung Scratch "
                   "phrases over loops, rendered chorale soprano) instead of MUSDB18 vocals; "
                   "scores are per 8.192-s fragment, not per song")
    else:
        out.append("scores are per 8.192-s fragment (windows spread over the tracks), not per song")
    if p.hidden < PAPER["hidden"] or p.patience != PAPER["patience"]:
        out.append(f"reduced scale ({p.profile} profile): hidden {p.hidden} instead of 513, "
                   f"training capped at {p.epochs} epochs"
                   + (f" / {p.max_steps} steps" if p.max_steps else "")
                   + " instead of early stopping with patience 100")
    if p.lr != PAPER["lr"]:
        out.append(f"learning rate {p.lr:g} instead of 1e-4 (short budget)")
    if p.batch_size != PAPER["batch_size"]:
        out.append(f"batch {p.batch_size} instead of 128 (small training set)")
    if p.remix:
        out.append(f"training data: {p.remix} remixed examples (the target of one training "
                   "fragment over the accompaniment of another, random circular shifts, energy "
                   f"ratio +-{p.gain_db:g} dB, 1-3 random runs of the target gated to exact "
                   "silence; real stems, artificial mixtures) instead of 4 augmented copies per "
                   "fragment with pitch shifts")
    elif p.copies != PAPER["copies"]:
        out.append(f"{p.copies} augmented cop{'y' if p.copies == 1 else 'ies'} per "
                   "fragment instead of 4")
    if p.gate_eval:
        out.append("validation and test targets: whole 1-s frames gated to exact silence until "
                   "every fragment has two silent runs (so PES and the activity alignment are "
                   "defined on every fragment)")
    if p.decay == "decoupled" and p.weight_decay:
        out.append(f"weight decay {p.weight_decay:g} applied as decoupled decay (AdamW): "
                   "Adam's coupled L2 term removed the encoders' input weights (docs/wiass.md)")
    if p.mask_padding:
        out.append("the padding is masked out of the attention's softmax (the paper lets the "
                   "model learn to ignore it; unmasked it became an attention sink)")
    if p.output_leak:
        out.append(f"leaky output (slope {p.output_leak:g}) during training only; evaluation "
                   "uses the paper's ReLU (exact zeros kept)")
    if p.guide_weight:
        out.append(f"guided attention during training (weight {p.guide_weight:g}): a term "
                   "that uses the generated side information's known alignment, not in the paper")
    out.append("both spectrograms normalised by the mixture's maximum (the paper: each by its "
               "own; the target's own maximum is unknown at test time)")
    out.append("256 frames: the 257th frame of the centred STFT (half padding) is dropped")
    if p.pitch and not p.remix:
        out.append("pitch-shift ratios rounded so that resampling is fast (< 9 cents off)")
    if p.circular_shift and not p.remix:
        out.append("added augmentation: circular time shift of both stems")
    if p.activity_threshold != PAPER["activity_threshold"]:
        out.append(f"activity threshold {p.activity_threshold:g} (a frame is active unless "
                   "its target magnitude is exactly zero) instead of 0.1")
    out.append("BL2 is fed N = 256 ones (the paper does not give the length)")
    return out


def describe(p: dict, data: StudyData) -> str:
    s = data.splits
    copies = ("remixed into" if p.remix else f"x{p.copies} augmented," if p.copies
              else "giving")
    what = {"embedded": "embedded stems", "generated": "generated chorale corpus"}.get(data.source,
                                                                                    "MUSDB18-HQ")
    return (f"{what}: {len(s['train'])} training fragments {copies} "
            f"{len(data.train_set)} examples, {len(s['valid'])} validation, "
            f"{len(s['test'])} test fragments of 8.192 s at 16 kHz "
            f"({sum(f.silent_frames() for f in s['test'])} silent 1-s target frames in test"
            + (", gated" if p.gate_eval else "") + ")")
