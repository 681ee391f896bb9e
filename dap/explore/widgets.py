"""ipywidgets explorer of deep priors (notebook ``09_explore_deep_priors``).

:class:`Explorer` is the UI only: controls for the clip (an embedded data set or an uploaded file),
the corruption, the design, the network size and the iteration budget; Run / Stop buttons; a
picture (score and loss curves, spectrograms of clean / corrupted / restored) and three audio
players that update every few iterations while the fit runs. The work is :mod:`dap.explore`:
the fit runs in a background thread (:class:`dap.explore.LiveFit`), so the notebook keeps
receiving clicks and Stop works. Widget updates from that thread only set widget values
(``Image.value``, ``Audio.value``, ``HTML.value``), which ipywidgets sends as comm messages.

Headless (papermill) the same object works without a browser: ``run(wait=True)`` runs the fit to
the end, and :meth:`Explorer.figure` / :meth:`Explorer.signals` give static plots and players.

CSS classes (``dap-run``, ``dap-stop``, ``dap-status``, ``dap-plot``, ``dap-design``,
``dap-iterations``, ``dap-audio-clean`` / ``-corrupted`` / ``-restored``) name the widgets for
the browser test (tests/test_browser.py).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from dap.data import DATASETS
from dap.core.errors import DapError
from dap.explore import (CLIP_SECONDS, OUTPUT_NOTES, OUTPUT_RULES, SIZE_NOTES, SIZES, ExplorerError, LiveFit,
                         Problem, Choices, Snapshot, describe_budget, embedded_clip, embedded_ids, figure_png,
                         make_problem, playback_gain, progress_figure, read_upload, wav_bytes)
from dap.priors import DESIGN_LABELS, DESIGNS

UPLOAD = "upload"
_TABLE_CSS = "<style>.dap-table td, .dap-table th {padding: 0.1em 0.8em; text-align: right}</style>"
_SILENCE = wav_bytes(np.zeros(160, dtype=np.float32))  # placeholder: an empty Audio value fails to load
_PLAYERS = ("clean", "corrupted", "restored")

HELP = ("<b>Run</b> fits the chosen design to the corrupted clip in the background: the curves, the "
        "restored spectrogram and the <i>restored</i> player update every few iterations; <b>Stop</b> ends "
        "the fit after the current iteration and keeps what it computed. A run started by a notebook cell "
        "(Run All) holds the notebook until it ends: stop that one with the kernel's interrupt (&#9632;). "
        "<i>Compare the four designs</i> fits them one after the other on the same clip and overlays their "
        "curves (four times the time).")


class Explorer:
    """The deep-prior explorer: ``Explorer(settings).show()`` in a notebook.

    settings: the initial choices (:class:`dap.explore.Choices`, e.g. from a profile).
    Attributes after a run: ``live`` (:class:`dap.explore.LiveFit`: results, histories, summary),
    ``problem`` (:class:`dap.explore.Problem`).
    """

    def __init__(self, settings: Choices | None = None):
        import ipywidgets as W  # here: optional (notebooks only); dap.explore works without it

        s = settings or Choices()
        if s.dataset not in DATASETS:
            raise ExplorerError(f"dataset must be one of {DATASETS} (upload files with the upload button), "
                                f"not {s.dataset!r}")
        embedded_clip(s.dataset, s.clip_index)  # an index out of range stops here, naming the range
        self.live: LiveFit | None = None
        self.problem: Problem | None = None
        self._upload: tuple[np.ndarray, str] | None = None
        self._gain = 1.0
        self._quiet = False  # set while the code (not the user) changes controls
        self._settings_extra = {"update_every": s.update_every, "seed": s.seed, "precision": s.precision,
                                "lr": s.lr}
        self._make_controls(W, s)
        self._wire()
        self.ui = self._layout(W)
        self.ui.add_class("dap-explorer")
        self._sync_task_controls()
        self._show_budget()
        self._preview()

    def _make_controls(self, W, s: Choices) -> None:
        """Every control, set from the initial settings ``s``."""
        style = {"description_width": "7em"}

        def wide():  # one Layout per widget: hiding one must not hide the others
            return W.Layout(width="24em")

        sources = [(f"embedded: {d}" + (" (mixture)" if d == "stems" else ""), d) for d in DATASETS]
        self.w_dataset = W.Dropdown(options=sources, value=s.dataset, description="clip from", style=style,
                                    layout=wide())
        self.w_clip = W.Dropdown(options=self._clip_options(self.w_dataset.value), description="clip",
                                 style=style, layout=wide())
        self.w_clip.value = s.clip_index
        self.w_upload = W.FileUpload(accept="audio/*,.wav,.flac,.ogg,.mp3", multiple=False,
                                     description="upload audio", layout=W.Layout(width="12em"))
        seconds = sorted(set(CLIP_SECONDS) | {s.seconds})
        self.w_seconds = W.Dropdown(options=[(f"{x:.3f} s", x) for x in seconds], value=s.seconds,
                                    description="length", style=style, layout=wide())
        self.w_task = W.ToggleButtons(options=[("denoise", "denoise"), ("inpaint", "inpaint")], value=s.task,
                                      description="corruption", style={**style, "button_width": "7em"})
        self.w_sigma = W.FloatSlider(value=s.sigma, min=0.0, max=0.5, step=0.01, continuous_update=False,
                                     description="noise std", readout_format=".2f", style=style, layout=wide())
        self.w_gaps = W.IntSlider(value=s.n_gaps, min=1, max=4, continuous_update=False, description="gaps",
                                  style=style, layout=wide())
        self.w_gap_s = W.FloatSlider(value=s.gap_s, min=0.05, max=0.25, step=0.01, continuous_update=False,
                                     description="gap length (s)", readout_format=".2f", style=style, layout=wide())
        self.w_design = W.Dropdown(options=[(DESIGN_LABELS[d], d) for d in DESIGNS], value=s.design,
                                   description="design", style=style, layout=wide())
        sizes = [(SIZE_NOTES[n].split(" (")[0] + " " + "/".join(map(str, w)), n) for n, w in SIZES.items()]
        if s.size_name not in SIZES:
            sizes.append((s.size_name, s.size_name))
        self._widths = {**SIZES, s.size_name: s.widths}
        self.w_size = W.Dropdown(options=sizes, value=s.size_name, description="network", style=style, layout=wide())
        self.w_iterations = W.IntSlider(value=s.iterations, min=1, max=max(2000, s.iterations), step=1,
                                        continuous_update=False, description="iterations", style=style, layout=wide())
        self.w_output = W.Dropdown(options=[(f"{r}: {OUTPUT_NOTES[r]}", r) for r in OUTPUT_RULES], value=s.output,
                                   description="play", style=style, layout=W.Layout(width="34em"))
        self.w_mode = W.ToggleButtons(options=[("one design", "single"), ("compare the four designs", "compare")],
                                      value="single", style={"button_width": "14em"})
        self.w_run = W.Button(description="Run", button_style="success", icon="play")
        self.w_stop = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.w_status = W.HTML(value="ready: press Run")
        self.w_budget = W.HTML()
        self.w_plot = W.Image(format="png", layout=W.Layout(width="100%", max_width="900px"))
        self.w_audio = {k: W.Audio(value=_SILENCE, format="wav", autoplay=False, loop=False, controls=True,
                                   layout=W.Layout(visibility="hidden")) for k in _PLAYERS}
        self.w_table = W.HTML()

    def _wire(self) -> None:
        """CSS classes (the browser test finds controls by them) and the event handlers."""
        for name, widget in (("run", self.w_run), ("stop", self.w_stop), ("status", self.w_status),
                             ("plot", self.w_plot), ("design", self.w_design), ("iterations", self.w_iterations),
                             ("dataset", self.w_dataset), ("mode", self.w_mode), ("upload", self.w_upload)):
            widget.add_class(f"dap-{name}")
        for name, widget in self.w_audio.items():
            widget.add_class(f"dap-audio-{name}")

        self.w_dataset.observe(self._dataset_changed, "value")
        self.w_upload.observe(self._uploaded, "value")
        for w in (self.w_clip, self.w_seconds, self.w_task, self.w_sigma, self.w_gaps, self.w_gap_s):
            w.observe(self._problem_changed, "value")
        for w in (self.w_design, self.w_size, self.w_iterations, self.w_mode):
            w.observe(lambda _: self._show_budget(), "value")
        self.w_output.observe(self._output_changed, "value")
        self.w_run.on_click(lambda _: self.run())
        self.w_stop.on_click(lambda _: self.stop())


    def _layout(self, W):
        """The controls arranged: clip and corruption, prior and output, run / stop, results."""
        players = W.HBox([W.VBox([W.HTML(f"<b>{k}</b>"), self.w_audio[k]]) for k in _PLAYERS])
        return W.VBox([
            W.HTML(f"<h3>Deep-prior explorer</h3><p style='max-width:60em'>{HELP}</p>"),
            W.HBox([W.VBox([self.w_dataset, self.w_clip, W.HBox([self.w_upload]), self.w_seconds]),
                    W.VBox([self.w_task, self.w_sigma, self.w_gaps, self.w_gap_s])]),
            W.HBox([W.VBox([self.w_design, self.w_size, self.w_iterations]), W.VBox([self.w_output, self.w_mode])]),
            self.w_budget,
            W.HBox([self.w_run, self.w_stop]),
            self.w_status,
            self.w_plot,
            players,
            self.w_table,
        ])

    # ------------------------------------------------------------------ public API
    def show(self) -> None:
        """Display the explorer in the notebook."""
        from IPython.display import display  # here: only a notebook has IPython

        display(self.ui)

    def settings(self) -> Choices:
        """The current choices as :class:`dap.explore.Choices` (raises ExplorerError when invalid)."""
        return Choices(dataset=self.w_dataset.value, clip_index=int(self.w_clip.value or 0),
                        seconds=float(self.w_seconds.value), task=self.w_task.value, sigma=float(self.w_sigma.value),
                        n_gaps=int(self.w_gaps.value), gap_s=float(self.w_gap_s.value), design=self.w_design.value,
                        widths=self._widths[self.w_size.value], iterations=int(self.w_iterations.value),
                        output=self.w_output.value, **self._settings_extra)

    def make_problem(self, settings: Choices | None = None) -> Problem:
        """The corrupted clip of the current choices (an embedded clip or the upload)."""
        s = settings or self.settings()
        if s.dataset == UPLOAD:
            if self._upload is None:
                raise ExplorerError("no uploaded file: use the upload button first")
            audio, label = self._upload
        else:
            audio, label = embedded_clip(s.dataset, s.clip_index)
        return make_problem(audio, s, label)

    def run(self, mode: str | None = None, wait: bool = False) -> LiveFit | None:
        """Start a fit with the current choices (``mode``: ``single`` / ``compare``; default the toggle).

        In the background; ``wait=True`` blocks until it ends (papermill, tests), and then raises
        when the run failed. Invalid choices show one line in the status (and raise with ``wait``).
        """
        if self.live is not None and self.live.running:
            self._status("a fit is already running: press Stop first", "warning")
            return None
        if mode is not None:
            self._quiet = True
            self.w_mode.value = mode
            self._quiet = False
        try:
            s = self.settings()
            problem = self.make_problem(s)
        except DapError as exc:
            self._status(str(exc), "error")
            if wait:
                raise
            return None
        designs = DESIGNS if self.w_mode.value == "compare" else (s.design,)
        self.problem, self._gain = problem, playback_gain(problem)
        self._set_players(problem, restored=None)
        self.w_table.value = ""
        self.live = LiveFit(problem, s, designs, on_update=self._on_update)
        self.w_run.disabled, self.w_stop.disabled = True, False
        self._status(f"starting {', '.join(DESIGN_LABELS[d] for d in designs)} on {html.escape(problem.label)} ...")
        self.live.start()
        if wait:
            self.live.wait()
            if self.live.state == "failed":
                raise ExplorerError(self.live.error)
        return self.live

    def stop(self) -> None:
        """Stop the running fit after its current iteration."""
        if self.live is not None and self.live.running:
            self.live.stop()
            self._status("stopping after the current iteration ...")

    def wait(self) -> None:
        """Block until the running fit ends."""
        if self.live is not None:
            self.live.wait()

    def figure(self):
        """Static picture of the last run (or of the corrupted clip before any run): a ``Figure``."""
        problem = self.problem or self.make_problem()
        live = self.live
        if live is not None and live.results:
            design = list(live.results)[-1]
            current = live.output(design, self.w_output.value)
            label = f"restored: {DESIGN_LABELS[design]} ({self.w_output.value})"
            return progress_figure(problem, live.histories, current, title=self._title(), dpi=100, restored_label=label)
        return progress_figure(problem, title=self._title(), dpi=100)

    def signals(self) -> dict[str, np.ndarray]:
        """Waveforms ``(L,)`` to listen to: clean (if any), corrupted, restored (if run)."""
        problem = self.problem or self.make_problem()
        out = {}
        if problem.clean is not None:
            out["clean"] = problem.clean
        out["corrupted"] = problem.observed
        if self.live is not None and self.live.results:
            design = list(self.live.results)[-1]
            out[f"restored ({DESIGN_LABELS[design]}, {self.w_output.value})"] = self.live.output(design, self.w_output.value)
        return out

    def summary(self) -> pd.DataFrame:
        """One row per design of the last run (see :meth:`dap.explore.LiveFit.summary`)."""
        return self.live.summary() if self.live is not None else pd.DataFrame()

    # ------------------------------------------------------------------ callbacks
    def _on_update(self, snap: Snapshot) -> None:
        """Called from the fit's thread every few iterations: redraw, update the restored player."""
        try:
            label = f"restored: {DESIGN_LABELS[snap.design]}, iteration {snap.iteration}"
            self.w_plot.value = figure_png(progress_figure(self.problem, snap.histories, snap.current,
                                                           title=self._title(snap), restored_label=label))
            if snap.current is not None:
                self._set_audio("restored", snap.current)
        except Exception as exc:  # a drawing problem must not kill the fit
            self._status(f"could not redraw: {exc}", "warning")
        kind = {"failed": "error", "stopped": "warning"}.get(snap.state, "")
        self._status(html.escape(snap.message), kind)
        if snap.state != "running":
            self.w_run.disabled, self.w_stop.disabled = False, True
            if self.live is not None and self.live.results:
                self.w_table.value = _TABLE_CSS + self.live.summary().to_html(index=False, border=0, classes="dap-table")

    def _dataset_changed(self, change) -> None:
        if change["new"] != UPLOAD:
            self._quiet = True
            self.w_clip.options = self._clip_options(change["new"])
            self.w_clip.value = 0
            self._quiet = False
        self.w_clip.disabled = change["new"] == UPLOAD
        self._preview()

    def _uploaded(self, change) -> None:
        files = change["new"]
        if files:
            self.use_upload(bytes(files[0]["content"]), files[0].get("name", "upload"))

    def use_upload(self, content: bytes, name: str) -> bool:
        """Decode an uploaded file and select it as the clip; on failure show one line, keep the clip."""
        try:
            audio = read_upload(content, name)
        except DapError as exc:
            self._status(html.escape(str(exc)), "error")
            return False
        self._upload = (audio, f"your file {name}")
        options = [o for o in self.w_dataset.options if o[1] != UPLOAD]
        self.w_dataset.options = options + [(f"uploaded: {name} ({audio.shape[0] / 16000:.1f} s)", UPLOAD)]
        if self.w_dataset.value == UPLOAD:
            self._preview()
        else:
            self.w_dataset.value = UPLOAD  # previews
        self._status(f"loaded {html.escape(name)}: {audio.shape[0] / 16000:.2f} s; the loudest "
                     f"{self.w_seconds.value:.3f} s are used")
        return True

    def _problem_changed(self, _change) -> None:
        self._sync_task_controls()
        if not self._quiet:
            self._preview()

    def _output_changed(self, _change) -> None:
        if self.live is not None and self.live.results and not self.live.running and self.problem is not None:
            self._set_players(self.problem, self.live.output(rule=self.w_output.value))

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _clip_options(dataset: str) -> list[tuple[str, int]]:
        return [(cid, i) for i, cid in enumerate(embedded_ids(dataset))]

    def _sync_task_controls(self) -> None:
        denoise = self.w_task.value == "denoise"
        for w in (self.w_sigma,):
            w.layout.display = "" if denoise else "none"
        for w in (self.w_gaps, self.w_gap_s):
            w.layout.display = "none" if denoise else ""

    def _show_budget(self) -> None:
        try:
            s = self.settings()
        except DapError as exc:
            self.w_budget.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            return
        designs = DESIGNS if self.w_mode.value == "compare" else (s.design,)
        self.w_budget.value = f"<p style='max-width:60em;font-size:90%'>{html.escape(describe_budget(s, designs))}</p>"

    def _preview(self) -> None:
        """Show the clean / corrupted clip before a run (skipped while a fit runs)."""
        if self.live is not None and self.live.running:
            return
        try:
            problem = self.make_problem()
        except DapError as exc:
            self._status(html.escape(str(exc)), "error")
            return
        self.problem, self._gain, self.live = problem, playback_gain(problem), None
        self._set_players(problem, restored=None)
        self.w_plot.value = figure_png(progress_figure(problem, title=self._title()))
        self.w_table.value = ""
        self._status(f"ready: {html.escape(problem.label)}; press Run")

    def _set_players(self, problem: Problem, restored: np.ndarray | None) -> None:
        self._set_audio("clean", problem.clean)
        self._set_audio("corrupted", problem.observed)
        self._set_audio("restored", restored)

    def _set_audio(self, name: str, x: np.ndarray | None) -> None:
        """Load ``x`` ``(L,)`` into player ``name`` at the shared gain, or hide the player (None)."""
        player = self.w_audio[name]
        if x is None:
            player.layout.visibility = "hidden"
            return
        player.value = wav_bytes(x, self._gain)
        player.layout.visibility = "visible"

    def _title(self, snap: Snapshot | None = None) -> str:
        p = self.problem
        if p is None:
            return ""
        what = (f"noise std {self.w_sigma.value:.2f}" if p.task == "denoise" and p.clean is not None else
                "fitted as it is" if p.clean is None else f"{p.mask.n_gaps} gap(s) of {self.w_gap_s.value:.2f} s")
        tail = f" - {DESIGN_LABELS[snap.design]}, iteration {snap.iteration}/{snap.total}" if snap else ""
        return f"{p.label}, {what}{tail}"

    def _status(self, message: str, kind: str = "") -> None:
        colour = {"error": "#b00", "warning": "#a60"}.get(kind, "inherit")
        prefix = {"error": "&#9888; ", "warning": ""}.get(kind, "")
        self.w_status.value = f"<span style='color:{colour}'>{prefix}{message}</span>"
