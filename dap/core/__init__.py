"""The bottom layer: helpers every other part of ``dap`` uses, importing nothing from ``dap``
outside ``dap.core`` (``tests/test_layers.py`` checks it).

- :mod:`~dap.core.errors`: errors whose message is meant for a person;
- :mod:`~dap.core.text`: an exception in one line;
- :mod:`~dap.core.seeds`: seeds derived from the global seed;
- :mod:`~dap.core.files`: atomic writes and where results live;
- :mod:`~dap.core.audio`: audio I/O, checks, resampling and the STFT pair (signal helpers);
- :mod:`~dap.core.device`: device and precision, said as they run;
- :mod:`~dap.core.failures`: deterministic vs infrastructure failures;
- :mod:`~dap.core.provenance`: version, commit, machine;
- :mod:`~dap.core.store`: the result rows (``rows.csv``) with resume.
"""
